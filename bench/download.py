"""Download speed, CPU and memory: curl, aria2c and ours, from nginx on 127.0.0.1, interleaved.

    python -m bench download [--size 2G[,256M,...]] [--rounds 3] [--scenarios limited,unlimited]
                             [--tools curl,aria2c,ours] [--connections N] [--chunk-size 16M] [--block 256K]
                             [--parts]

Serves one file from a temporary nginx, at full speed and with `limit_rate 50m` per response (how CDNs
cap a stream), and times `curl` (one stream), `aria2c -x16 -s16` (Debian's aria2 stops at 16
connections per server) and our downloader in a process of its own, including sha256 verification,
fsync and atomic rename (the others do neither). Contenders are interleaved: each round runs every
tool once per scenario, so a change in the machine's load hits all of them alike. Printed per size,
scenario and tool: MB/s as min/median/max over the rounds, CPU seconds per GiB (user + system of the
tool's process, from `wait4`), peak RSS (the kernel's VmHWM), and the machine's other CPU use during
the runs (all busy CPU time less the tool's and nginx's, in cores: 2.0 is a fully busy 2-core machine).
Some of that "other" is the kernel writing the page cache back for the tool, so it is not zero even on
a quiet machine; the idle sample taken before the first run is the other engineers' load alone.

Each round first measures the floors (`download_floors.py`): sha256 on one core, and writing the
file's size from memory into the page cache and then fsync'd. No verified download beats the first,
none that makes its file durable beats the second (curl and aria2c do not fsync, so they can), and
the two CPU figures added are the least CPU a verified download that keeps its file can use.

`--parts` also times the inner choices one at a time (`download_parts.py`): http.client against
urllib3, `recv_into` + `pwrite` against `splice`, sha256 of `pread` copies against a mapping.

Fairness and noise: before every timed run the page cache is synced and a scratch file of the same size
is written and deleted, so each tool starts from the same state. (On these VMs, memory the guest has
handed back to the host costs five times as much to write on first touch; without the warm-up, runs of
any tool vary by 2x.) The data is a random 64 MiB block repeated: incompressible, and nothing here
compresses anyway.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.download_floors import Write, sha256_rate, warm, write_rate  # noqa: E402
from bench.download_parts import measure_parts  # noqa: E402
from tests.nginxserver import Nginx  # noqa: E402
from weightkit.env import parse_size  # noqa: E402

# The targets of issue 13 item 7: rate-limited >= 1.5x aria2c, unlimited >= 1.0x curl, CPU and memory.
TARGETS = {"limited_vs_aria2c": 1.5, "unlimited_vs_curl": 1.0, "cpu_s_per_gib": 1.2, "rss_mib": 40}
_TICK = os.sysconf("SC_CLK_TCK")

_OURS = """
import dataclasses, json, sys
from pathlib import Path
from weightkit.download import Downloader, FetchRequest
from weightkit.settings import DownloadSettings
spec = json.loads(sys.argv[1])
if spec["block"]:
    import weightkit.download.stream as stream
    stream.BLOCK = spec["block"]
settings = dataclasses.replace(DownloadSettings.from_env(), **spec["settings"])
request = FetchRequest(dest=Path(spec["dest"]), urls=(spec["url"],), size=spec["size"], sha256=spec["sha256"])
result = Downloader(settings).fetch(request)
assert result.sha256 == spec["sha256"] and not result.present
"""

_MAKE = """
import hashlib, os, sys
path, size = sys.argv[1], int(sys.argv[2])
block = os.urandom(min(size, 64 << 20))
view = memoryview(block)
digest = hashlib.sha256()
with open(path, "wb") as handle:
    left = size
    while left:
        piece = view[: min(left, len(block))]
        handle.write(piece)
        digest.update(piece)
        left -= len(piece)
print(digest.hexdigest())
"""


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of the tool's process
    rss_kib: int
    other_cores: float  # the machine's busy CPU during the run, less the tool's and nginx's, per second


def _make_file(path: Path, size: int) -> str:
    """Write the served file in a child process; returns its sha256."""
    argv = [sys.executable, "-c", _MAKE, str(path), str(size)]
    return subprocess.run(argv, check=True, capture_output=True).stdout.decode().strip()


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (every state but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def _process_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / _TICK


def _children(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return found


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _timed(argv: list[str], *, cwd: Path, nginx: list[int]) -> Run:
    """Run `argv`: its wall time, CPU, peak RSS, and the rest of the machine's CPU meanwhile."""
    busy, served = _busy_seconds(), _process_cpu(nginx)
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _vm_hwm(process.pid))
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    err = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {err.decode(errors='replace')[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    other = _busy_seconds() - busy - cpu - (_process_cpu(nginx) - served)
    return Run(seconds, cpu, max(peak, usage.ru_maxrss), max(0.0, other) / seconds)


def _tools(url: str, out: Path, size: int, sha: str, args: argparse.Namespace) -> dict[str, list[str]]:
    settings: dict[str, int] = {}
    if args.connections:
        settings["connections_per_file"] = args.connections
        settings["max_connections"] = max(args.connections, 32)
    if args.chunk_size:
        settings["chunk_size"] = args.chunk_size
    spec = {"url": url, "dest": str(out), "size": size, "sha256": sha, "settings": settings}
    spec["block"] = args.block
    aria2c = ["aria2c", "-x16", "-s16", "--file-allocation=falloc", "--allow-overwrite=true", "-q"]
    return {
        "curl": ["curl", "-sS", "--fail", "-o", str(out), url],
        "aria2c": [*aria2c, "--summary-interval=0", "-d", str(out.parent), "-o", out.name, url],
        "ours": [sys.executable, "-c", _OURS, json.dumps(spec)],
    }


def _idle_load(seconds: float = 2.0) -> float:
    """Cores busy on the machine while nothing of this benchmark runs: the other engineers' load."""
    before = _busy_seconds()
    time.sleep(seconds)
    return (_busy_seconds() - before) / seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G", help="file sizes, comma-separated (K/M/G; default 2G)")
    parser.add_argument("--rounds", "--runs", type=int, default=3, help="rounds (default 3, at least 3)")
    parser.add_argument("--connections", type=int, default=0, help="our connections per file (default: ours)")
    parser.add_argument("--chunk-size", type=parse_size, default=0, help="our chunk size (default: ours)")
    parser.add_argument("--block", type=parse_size, default=0, help="our read/write block (default: ours)")
    parser.add_argument("--tools", default="curl,aria2c,ours", help="comma-separated subset to run")
    parser.add_argument("--scenarios", default="limited,unlimited", help="limited, unlimited or both")
    parser.add_argument("--parts", action="store_true", help="also time the inner parts (download_parts.py)")
    args = parser.parse_args(argv)
    sizes = [parse_size(text) for text in args.size.split(",")]
    if not all(sizes):
        parser.error(f"--size {args.size!r} is not a list of sizes")
    tools = args.tools.split(",")
    missing = [tool for tool in tools if tool != "ours" and shutil.which(tool) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install curl aria2)")
        return 1
    # Ours starts as a fresh process each run: with bytecode compiled, as in an installed package or
    # image, so no run pays for compiling it (PYTHONDONTWRITEBYTECODE would make every run pay ~0.05 s).
    # In a child: compiling here would grow this process, and each tool's peak RSS counts from the fork.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "weightkit")], check=True)
    idle = _idle_load()
    print(f"machine load before the runs: {idle:.2f} of {os.cpu_count()} cores busy", flush=True)
    for size in sizes:
        assert size is not None
        results, hash_rates, writes = _measure(size, tools, args)
        _print(results, size, args.rounds, idle)
        _print_ceiling(results, size, hash_rates, writes)
    return 0


def _measure(
    size: int, tools: list[str], args: argparse.Namespace
) -> tuple[dict[tuple[str, str], list[Run]], list[float], list[Write]]:
    """Every run, by (scenario, tool), and the two floors measured in each round: sha256's speed, and
    the speed and CPU of a page cache write."""
    results: dict[tuple[str, str], list[Run]] = {}
    hash_rates: list[float] = []
    writes: list[Write] = []
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        (work / "www").mkdir()
        (work / "out").mkdir()
        print(f"making a {size / 2**30:.2f} GiB file ...", flush=True)
        sha = _make_file(work / "www" / "file.bin", size)
        with Nginx(work / "www", work / "nginx", limit_rate="50m", workers=2) as nginx:
            assert nginx.pid is not None
            served_by = _children(nginx.pid)
            urls = {"limited": nginx.url("/limited/file.bin"), "unlimited": nginx.url("/file.bin")}
            out = work / "out" / "file.bin"
            for round_ in range(max(3, args.rounds)):
                hash_rates.append(sha256_rate())
                print(f"  round {round_ + 1} sha256 on one core {hash_rates[-1]:7.0f} MB/s", flush=True)
                writes.append(write_rate(work / "out", size))
                write = writes[-1]
                print(
                    f"  round {round_ + 1} write, cached  {write.cached_mb_s:7.0f} MB/s"
                    f"  {write.cpu_s_per_gib:5.2f} CPU-s/GiB; fsync'd {write.durable_mb_s:5.0f} MB/s",
                    flush=True,
                )
                for scenario in args.scenarios.split(","):
                    for tool, argv in _tools(urls[scenario], out, size, sha, args).items():
                        if tool not in tools:
                            continue
                        out.unlink(missing_ok=True)
                        warm(work / "out", size)
                        run = _timed(argv, cwd=ROOT, nginx=served_by)
                        if out.stat().st_size != size:
                            raise RuntimeError(f"{tool} wrote {out.stat().st_size} bytes, not {size}")
                        results.setdefault((scenario, tool), []).append(run)
                        print(
                            f"  round {round_ + 1} {scenario:9} {tool:7} {size / run.seconds / 1e6:7.0f} MB/s"
                            f"  {run.cpu / (size / 2**30):5.2f} CPU-s/GiB  other load {run.other_cores:.2f}",
                            flush=True,
                        )
                    out.unlink(missing_ok=True)
            if args.parts:
                print(f"\nparts, one thread, {size / 2**30:.2f} GiB unlimited:     MB/s  CPU-s/GiB")
                warmed = functools.partial(warm, work / "out", size)
                # In a forked child: the parts' buffers and imports would grow this process, and every
                # later tool's peak RSS counts from its fork.
                fork = multiprocessing.get_context("fork")
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=fork) as pool:
                    job = pool.submit(measure_parts, urls["unlimited"], size, sha, work / "out", warmed)
                    parts = job.result()
                for name, rate, cpu in parts:
                    print(f"  {name:44}{rate:7.0f}{cpu:10.2f}")
    return results, hash_rates, writes


def _print(results: dict[tuple[str, str], list[Run]], size: int, rounds: int, idle: float) -> None:
    gib = size / 2**30
    print(f"\n{gib:.2f} GiB from nginx on 127.0.0.1, {max(3, rounds)} interleaved rounds")
    print(
        f"{'scenario':10}{'tool':8}{'MB/s min':>10}{'median':>8}{'max':>7}"
        f"{'CPU-s/GiB':>11}{'peak RSS MiB':>14}{'other load':>12}"
    )
    medians: dict[tuple[str, str], float] = {}
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    for (scenario, tool), runs in sorted(results.items()):
        rates = sorted(size / run.seconds / 1e6 for run in runs)
        medians[(scenario, tool)] = statistics.median(rates)
        cpu_per_gib = statistics.median(run.cpu / gib for run in runs)
        cpu[tool] = max(cpu.get(tool, 0.0), cpu_per_gib)
        rss[tool] = max(rss.get(tool, 0.0), *(run.rss_kib / 1024 for run in runs))
        other = statistics.median(run.other_cores for run in runs)
        print(
            f"{scenario:10}{tool:8}{rates[0]:10.0f}{medians[(scenario, tool)]:8.0f}{rates[-1]:7.0f}"
            f"{cpu_per_gib:11.2f}{max(run.rss_kib for run in runs) / 1024:14.0f}{other:12.2f}"
        )
    print(f"machine load before the runs (others alone): {idle:.2f} cores")
    print("Ours includes sha256 verification, fsync and atomic rename; curl and aria2c do neither.")
    checks = [
        ("limited: ours / aria2c", "limited", "aria2c", TARGETS["limited_vs_aria2c"]),
        ("limited: ours / curl", "limited", "curl", 0.0),
        ("unlimited: ours / curl", "unlimited", "curl", TARGETS["unlimited_vs_curl"]),
        ("unlimited: ours / aria2c", "unlimited", "aria2c", 0.0),
    ]
    for label, scenario, reference, target in checks:
        ours, theirs = medians.get((scenario, "ours")), medians.get((scenario, reference))
        if ours and theirs:
            verdict = (
                f"   target >= {target}x: {'meets' if ours / theirs >= target else 'BELOW'}" if target else ""
            )
            print(f"{label:26}{ours / theirs:6.2f}x{verdict}")
    if "ours" in cpu:
        limit = TARGETS["cpu_s_per_gib"]
        verdict = "meets" if cpu["ours"] <= limit else "BELOW"
        print(f"{'ours: CPU per GiB':26}{cpu['ours']:6.2f} s   target <= {limit} s: {verdict}")
        verdict = "meets" if rss["ours"] <= TARGETS["rss_mib"] else "BELOW"
        print(f"{'ours: peak RSS':26}{rss['ours']:6.0f} MiB target <= {TARGETS['rss_mib']} MiB: {verdict}")


def _print_ceiling(
    results: dict[tuple[str, str], list[Run]],
    size: int,
    hash_rates: list[float],
    writes: list[Write],
) -> None:
    """What sha256 and the page cache allow: the fastest and cheapest any verified download that keeps
    its file could be in these rounds."""
    best = max(hash_rates)
    hash_cpu = 2**30 / (best * 1e6)
    durable = [write.durable_mb_s for write in writes]
    write_cpu = min(write.cpu_s_per_gib for write in writes)
    print(
        f"sha256 on one core: {_spread(hash_rates)} MB/s, at best {hash_cpu:.2f} CPU-s/GiB by itself;"
        " a verified download cannot beat it"
    )
    print(
        f"write from memory, one thread: cached {_spread([write.cached_mb_s for write in writes])} MB/s"
        f" at best {write_cpu:.2f} CPU-s/GiB; fsync'd {_spread(durable)} MB/s"
    )
    print(
        "sha256 + the cached write: a verified download that keeps its file needs >="
        f" {hash_cpu + write_cpu:.2f} CPU-s/GiB"
    )
    fsynced = statistics.median(durable)
    for scenario in ("unlimited", "limited"):
        runs = results.get((scenario, "ours"))
        if runs:
            ours = statistics.median(size / run.seconds / 1e6 for run in runs)
            print(f"{scenario + ': ours / sha256':26}{ours / best:6.2f}x of the fastest hash in these rounds")
            print(f"{scenario + ': ours / fsync write':26}{ours / fsynced:6.2f}x of the median durable write")


def _spread(values: list[float]) -> str:
    """min / median / max, in whole units."""
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"

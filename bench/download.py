"""Download speed and memory: curl, aria2c and ours, from nginx on 127.0.0.1, in one run.

    python -m bench download [--size 2G] [--runs 3] [--connections N] [--chunk-size 16M] [--block 256K]

Serves one file from a temporary nginx, once at full speed and once with `limit_rate 50m` per
response (how CDNs cap a stream), and times, per scenario and run: `curl` (one stream), `aria2c -x16
-s16` (Debian's aria2 stops at 16 connections per server) and our downloader in a process of its own,
including sha256 verification, fsync and atomic rename (the others do neither). Prints medians, ratios
against the targets and each tool's peak RSS. A transport section reads one stream in this process
with `http.client` and with urllib3 (if installed), the evidence for `weightkit/download/httprange.py`.

Fairness and noise: before every timed run the page cache is synced and a scratch file of the same size
is written and deleted, so each tool starts from the same state. (On these VMs, memory the guest has
handed back to the host costs five times as much to write on first touch; without the warm-up, runs of
any tool vary by 2x.) Peak RSS is the kernel's VmHWM of each tool's process, read from /proc while it
runs; ours also reports its own at exit. The data is a random 64 MiB block repeated: incompressible,
and nothing here compresses anyway.
"""

from __future__ import annotations

import argparse
import json
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

from tests.nginxserver import Nginx  # noqa: E402
from weightkit.env import parse_size  # noqa: E402

TARGETS = {"limited_vs_aria2c": 1.3, "limited_vs_curl": 10.0, "unlimited_vs_curl": 1.2, "rss_mib": 256}

_OURS = """
import dataclasses, json, re, sys
from pathlib import Path
import weightkit.download.transfer as transfer
from weightkit.download import Downloader, FetchRequest
from weightkit.settings import DownloadSettings
spec = json.loads(sys.argv[1])
if spec["block"]:
    transfer.BLOCK = spec["block"]
settings = dataclasses.replace(DownloadSettings.from_env(), **spec["settings"])
request = FetchRequest(dest=Path(spec["dest"]), urls=(spec["url"],), size=spec["size"], sha256=spec["sha256"])
result = Downloader(settings).fetch(request)
assert result.sha256 == spec["sha256"] and not result.present
status = Path("/proc/self/status").read_text()
print(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
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
    rss_kib: int


def _make_file(path: Path, size: int) -> str:
    """Write the served file in a child process (this one stays small: a child inherits its parent's
    peak RSS in the kernel's accounting); returns the file's sha256."""
    argv = [sys.executable, "-c", _MAKE, str(path), str(size)]
    return subprocess.run(argv, check=True, capture_output=True).stdout.decode().strip()


def _warm(folder: Path, size: int) -> None:
    """Sync, then write and delete `size` bytes, so the next run's page cache writes hit warm memory."""
    os.sync()
    scratch = folder / "warm.bin"
    zeros = bytes(1 << 20)
    with open(scratch, "wb") as handle:
        for _ in range(0, size, len(zeros)):
            handle.write(zeros)
    scratch.unlink()
    os.sync()


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _timed(argv: list[str], *, cwd: Path) -> Run:
    """Run `argv`; its wall time and peak RSS (KiB). Raises if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _vm_hwm(process.pid))
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {err.decode(errors='replace')[-2000:]}")
    reported = out.decode().strip().splitlines()
    if reported and reported[-1].isdigit():
        peak = max(peak, int(reported[-1]))
    return Run(seconds, peak)


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


def _transport(url: str, size: int, block: int) -> dict[str, float]:
    """MB/s of one stream read into memory by http.client (readinto a reused buffer) and urllib3."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    rates: dict[str, float] = {}
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    view = memoryview(bytearray(block))
    got = 0
    while n := response.readinto(view):
        got += n
    conn.close()
    rates["http.client"] = got / (time.perf_counter() - started) / 1e6
    try:
        import urllib3
    except ImportError:
        return rates
    started = time.perf_counter()
    pool = urllib3.PoolManager()
    streamed = pool.request("GET", url, preload_content=False)
    got = sum(len(piece) for piece in streamed.stream(block))
    streamed.release_conn()
    rates["urllib3"] = got / (time.perf_counter() - started) / 1e6
    assert got == size
    return rates


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G", help="file size (K/M/G suffixes; default 2G)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and scenario (median; default 3)")
    parser.add_argument("--connections", type=int, default=0, help="our connections per file (default: ours)")
    parser.add_argument("--chunk-size", type=parse_size, default=0, help="our chunk size (default: ours)")
    parser.add_argument("--block", type=parse_size, default=0, help="our read/write block (default: ours)")
    parser.add_argument("--tools", default="curl,aria2c,ours", help="comma-separated subset to run")
    parser.add_argument("--scenarios", default="limited,unlimited", help="limited, unlimited or both")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    if not size:
        parser.error(f"--size {args.size!r} is not a size")
    tools = args.tools.split(",")
    missing = [tool for tool in tools if tool != "ours" and shutil.which(tool) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install curl aria2)")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        (work / "www").mkdir()
        (work / "out").mkdir()
        print(f"making a {size / 2**30:.2f} GiB file ...", flush=True)
        sha = _make_file(work / "www" / "file.bin", size)
        results: dict[tuple[str, str], list[Run]] = {}
        with Nginx(work / "www", work / "nginx", limit_rate="50m", workers=2) as nginx:
            urls = {"limited": nginx.url("/limited/file.bin"), "unlimited": nginx.url("/file.bin")}
            scenarios = args.scenarios.split(",")
            for run in range(args.runs):
                for scenario in scenarios:
                    out = work / "out" / "file.bin"
                    for tool, argv in _tools(urls[scenario], out, size, sha, args).items():
                        if tool not in tools:
                            continue
                        out.unlink(missing_ok=True)
                        _warm(work / "out", size)
                        outcome = _timed(argv, cwd=ROOT)
                        if out.stat().st_size != size:
                            raise RuntimeError(f"{tool} wrote {out.stat().st_size} bytes, not {size}")
                        results.setdefault((scenario, tool), []).append(outcome)
                        rate = size / outcome.seconds / 1e6
                        print(f"  run {run + 1} {scenario:9} {tool:7} {rate:7.0f} MB/s", flush=True)
                    out.unlink(missing_ok=True)
            transport = _transport(urls["unlimited"], size, args.block or 256 << 10)
    _print(results, transport, size, args.runs)
    return 0


def _print(results: dict[tuple[str, str], list[Run]], transport: dict[str, float], size: int, runs: int):
    def rate(scenario: str, tool: str) -> float | None:
        found = results.get((scenario, tool))
        return size / statistics.median(r.seconds for r in found) / 1e6 if found else None

    print(f"\nA {size / 2**30:.2f} GiB file from nginx on 127.0.0.1, MB/s, median of {runs} runs")
    tools = sorted({tool for _, tool in results}, key=["curl", "aria2c", "ours"].index)
    print(f"{'':26}" + "".join(f"{tool:>10}" for tool in tools))
    for scenario, label in (("limited", "limit_rate 50m per conn"), ("unlimited", "unlimited")):
        if any((scenario, tool) in results for tool in tools):
            cells = "".join(f"{rate(scenario, tool) or 0:10.0f}" for tool in tools)
            print(f"{label:26}{cells}")
    rss = {tool: 0 for tool in tools}
    for (_, tool), found in results.items():
        rss[tool] = max(rss[tool], *(r.rss_kib for r in found))
    print(f"{'peak RSS (MiB)':26}" + "".join(f"{rss[tool] / 1024:10.0f}" for tool in tools))
    print("\nOurs includes sha256 verification, fsync and atomic rename; curl and aria2c do neither.")
    checks = [
        ("limited: ours / aria2c", "limited", "aria2c", TARGETS["limited_vs_aria2c"]),
        ("limited: ours / curl", "limited", "curl", TARGETS["limited_vs_curl"]),
        ("unlimited: ours / curl", "unlimited", "curl", TARGETS["unlimited_vs_curl"]),
    ]
    for label, scenario, reference, target in checks:
        ours, theirs = rate(scenario, "ours"), rate(scenario, reference)
        if ours and theirs:
            verdict = "meets" if ours / theirs >= target else "BELOW"
            print(f"{label:26}{ours / theirs:6.2f}x   target >= {target}x: {verdict}")
    if "ours" in rss:
        peak, limit = rss["ours"] / 1024, TARGETS["rss_mib"]
        verdict = "meets" if peak < limit else "BELOW"
        print(f"{'ours: peak RSS':26}{peak:6.0f} MiB target < {limit} MiB: {verdict}")
    if transport:
        cells = ", ".join(f"{name} {mbps:.0f} MB/s" for name, mbps in transport.items())
        print(f"\nOne stream read into memory, unlimited: {cells}")

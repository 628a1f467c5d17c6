"""Part files left by downloads that are gone: their resume state, and whether their owner still lives.

A part file `<name>.<tag>.part` has its state beside it in `<part>.json`, rewritten at every checkpoint
(which doubles as a heartbeat). Its owner is gone when the state says it released the part, when the
process named in it is dead on this host (or a zombie), or when neither file changed for `stale_after`
seconds (another host). A process id is not proof of life on its own: after a container restart the
host name and pid are often the same again, so a part naming this process's pid is alive only if its
tag is one this process is using (`own_tag`). An `.extract` folder (a tar being unpacked) left by a
dead owner is removed. The ranges a resume may trust depend on the boot: `done` (written, so in the
page cache) only under the same kernel boot id, `durable` (after an `fdatasync`) always.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TAG",
    "Ranges",
    "ResumeState",
    "boot_id",
    "disown_tag",
    "encode_state",
    "host_tag",
    "orphans",
    "own_tag",
]

TAG = r"[A-Za-z0-9_]+-\d+-[0-9a-f]{6}"
Ranges = tuple[tuple[int, int], ...]

# The tags of the part files this process is using: a part naming our pid with another tag was left
# by an earlier process that had the same pid.
_OURS: set[str] = set()
_OURS_LOCK = threading.Lock()


def own_tag(tag: str) -> None:
    """`tag` is this process's while it downloads: its parts are alive."""
    with _OURS_LOCK:
        _OURS.add(tag)


def disown_tag(tag: str) -> None:
    """This process is done with `tag`'s part files."""
    with _OURS_LOCK:
        _OURS.discard(tag)


@dataclass(frozen=True)
class ResumeState:
    """Where the written bytes came from: `url` (without query), the file's size and validators."""

    url: str
    size: int | None
    etag: str | None
    last_modified: str | None
    done: Ranges = ()

    @property
    def done_bytes(self) -> int:
        return sum(end - start for start, end in self.done)


def encode_state(state: ResumeState, *, durable: Ranges, active: bool) -> str:
    """The state file's JSON: the state, the durable ranges, and who owns it (host, pid, boot)."""
    body = {
        "version": 2,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "boot_id": boot_id(),
        "active": active,
        "url": state.url,
        "size": state.size,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "done": [list(r) for r in state.done],
        "durable": [list(r) for r in durable],
    }
    return json.dumps(body)


def host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"


def boot_id() -> str | None:
    """This kernel boot's id: bytes in the page cache survive a process, not a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def orphans(dest: Path, stale_after: float) -> list[tuple[Path, ResumeState, Ranges]]:
    """State files of `dest`'s part files whose owners are gone, with the ranges to trust and the
    durable ones. Leftovers of dead owners that cannot be resumed (a part without state, a
    half-written state, a half-unpacked `.extract` folder) are removed."""
    pattern = re.compile(re.escape(dest.name) + rf"\.({TAG})\.(part(\.json|\.json\.tmp)?|extract)")
    groups: dict[str, dict[str, Path]] = {}
    try:
        names = os.listdir(dest.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match and match.group(2) == "extract":
            _remove_stale_extract(dest.parent / name, match.group(1), stale_after)
        elif match:
            groups.setdefault(match.group(1), {})[match.group(3) or ""] = dest.parent / name
    found: list[tuple[Path, ResumeState, Ranges]] = []
    now = time.time()
    for tag, files in groups.items():
        age = now - max(_mtime(path) for path in files.values())
        state_path = files.get(".json")
        data: dict = {}
        try:
            if state_path is None:
                raise FileNotFoundError
            data = json.loads(state_path.read_text(encoding="utf-8"))
            state, durable = _decode(data)
        except (OSError, ValueError, KeyError, TypeError):
            if not _tag_owner_alive(tag, age, stale_after):
                for path in files.values():
                    path.unlink(missing_ok=True)
            continue
        if _owner_alive(data, tag, age, stale_after):
            continue
        if ".json.tmp" in files:
            files[".json.tmp"].unlink(missing_ok=True)
        assert state_path is not None
        found.append((state_path, state, durable))
    return found


def _decode(data: dict) -> tuple[ResumeState, Ranges]:
    durable = tuple((int(s), int(e)) for s, e in data["durable"])
    same_boot = data.get("boot_id") is not None and data.get("boot_id") == boot_id()
    size = data["size"]
    state = ResumeState(
        url=str(data["url"]),
        size=None if size is None else int(size),
        etag=data.get("etag"),
        last_modified=data.get("last_modified"),
        done=tuple((int(s), int(e)) for s, e in data["done"]) if same_boot else durable,
    )
    return state, durable


def _remove_stale_extract(folder: Path, tag: str, stale_after: float) -> None:
    """Remove an `.extract` folder whose owner is gone (killed while unpacking)."""
    if not _tag_owner_alive(tag, time.time() - _mtime(folder), stale_after):
        shutil.rmtree(folder, ignore_errors=True)


def _tag_owner_alive(tag: str, age: float, stale_after: float) -> bool:
    """For files without a readable state: the owner named in the tag, judged like `_owner_alive`."""
    host, pid, _ = tag.rsplit("-", 2)
    if age > stale_after:
        return False
    return host != host_tag() or _pid_alive(int(pid), tag)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _owner_alive(data: dict, tag: str, age: float, stale_after: float) -> bool:
    """A released part, a dead process on this host or a silent owner elsewhere: all mean orphan."""
    if not data.get("active", False) or age > stale_after:
        return False
    if data.get("host") != socket.gethostname():
        return True
    return _pid_alive(int(data.get("pid", 0)), tag)


def _pid_alive(pid: int, tag: str) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        with _OURS_LOCK:
            return tag in _OURS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True

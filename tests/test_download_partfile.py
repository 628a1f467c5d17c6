"""Which leftover part files a new download may resume: dead or released owners yes, live owners no,
and after a reboot only the bytes that were made durable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from weightkit.download.partfile import PartFile, new_tag

STALE = 30.0


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _orphan(
    dest: Path, *, pid: int, host: str = "", boot_id: str = "", active: bool = True, age: float = 0.0
):
    """A part file of 1000 bytes with 600 written and 200 of them durable, as another process left it."""
    tag = f"other-{pid}-abcdef"
    part = dest.with_name(f"{dest.name}.{tag}.part")
    part.write_bytes(b"x" * 1000)
    state = {
        "version": 2,
        "host": host or socket.gethostname(),
        "pid": pid,
        "boot_id": boot_id or _boot_id(),
        "active": active,
        "url": "http://example/w.bin",
        "size": 1000,
        "etag": '"e"',
        "last_modified": None,
        "done": [[0, 600]],
        "durable": [[0, 200]],
    }
    state_path = part.with_name(part.name + ".json")
    state_path.write_text(json.dumps(state))
    if age:
        then = time.time() - age
        for path in (part, state_path):
            os.utime(path, (then, then))
    return part


def test_part_of_a_dead_process_is_claimed_with_everything_it_wrote(tmp_path):
    dest = tmp_path / "w.bin"
    left = _orphan(dest, pid=_dead_pid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert part.state is not None and part.state.done == ((0, 600),) and part.state.etag == '"e"'
    assert part.path.exists() and not left.exists()


def test_part_from_before_a_reboot_resumes_only_its_durable_bytes(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid(), boot_id="an-earlier-boot")
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert part.state is not None and part.state.done == ((0, 200),)


def test_part_of_a_live_process_here_is_left_alone(tmp_path):
    dest = tmp_path / "w.bin"
    left = _orphan(dest, pid=os.getpid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert part.state is None and left.exists()


def test_released_part_is_claimed_even_while_its_process_lives(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=os.getpid(), active=False)
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is not None


def test_part_of_another_host_is_claimed_only_once_its_heartbeat_is_stale(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=1, host="another-machine", boot_id="its-boot")
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    _orphan(dest, pid=1, host="another-machine", boot_id="its-boot", age=STALE + 5)
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert part.state is not None and part.state.done == ((0, 200),)  # another host's cache is not ours


def test_only_one_claimant_gets_an_orphan(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid())
    first = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    second = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert first.state is not None and second.state is None


def test_part_without_state_of_a_dead_process_is_removed(tmp_path):
    dest = tmp_path / "w.bin"
    host = new_tag().rsplit("-", 2)[0]
    stray = dest.with_name(f"w.bin.{host}-{_dead_pid()}-abcdef.part")
    stray.write_bytes(b"x")
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    assert not stray.exists()


def test_other_weights_part_files_are_not_touched(tmp_path):
    dest = tmp_path / "w.bin"
    other = _orphan(tmp_path / "w.bin.v2", pid=_dead_pid())
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    assert other.exists()

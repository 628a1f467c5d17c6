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

import pytest

from weightkit.download.orphans import orphans
from weightkit.download.partfile import PartFile, ResumeState, new_tag

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
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as live:
        try:
            left = _orphan(dest, pid=live.pid)
            part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
            assert part.state is None and left.exists()
        finally:
            live.kill()


def test_part_of_a_live_download_of_this_process_is_left_alone(tmp_path):
    dest = tmp_path / "w.bin"
    mine = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    mine.open(1000, fresh=True, margin=0)
    mine.checkpoint(ResumeState("http://example/w.bin", 1000, '"e"', None, ((0, 10),)))
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    mine.end()


def test_part_naming_our_pid_under_a_tag_we_do_not_use_is_an_earlier_process_and_claimed(tmp_path):
    """After a container restart the host name and pid are often the same as the dead run's."""
    dest = tmp_path / "w.bin"
    left = _orphan(dest, pid=os.getpid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert part.state is not None and part.state.done == ((0, 600),) and not left.exists()


def _stateless_part(dest: Path, pid: int) -> Path:
    """A part file of this host under `pid`, with no state beside it."""
    host = new_tag().rsplit("-", 2)[0]
    stray = dest.with_name(f"{dest.name}.{host}-{pid}-abcdef.part")
    stray.write_bytes(b"x")
    return stray


def test_part_without_state_naming_our_pid_under_a_tag_we_do_not_use_is_removed(tmp_path):
    dest = tmp_path / "w.bin"
    stray = _stateless_part(dest, os.getpid())
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    assert not stray.exists()


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
    stray = _stateless_part(dest, _dead_pid())
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    assert not stray.exists()


def test_other_weights_part_files_are_not_touched(tmp_path):
    dest = tmp_path / "w.bin"
    other = _orphan(tmp_path / "w.bin.v2", pid=_dead_pid())
    assert PartFile.claim(dest, tag=new_tag(), stale_after=STALE).state is None
    assert other.exists()


def _state_file(part: PartFile) -> dict:
    return json.loads(part.state_path.read_text())


def test_fresh_start_over_a_claimed_part_forgets_the_ranges_it_made_durable(tmp_path):
    """The remote file changed (or a 416, or a retry from scratch): the part is emptied, so the old
    durable ranges would make a resume after a reboot trust zeros under the new ETag."""
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    part.open(1000, fresh=True, margin=0)
    part.checkpoint(ResumeState("http://example/w.bin", 1000, '"new"', None, ()))
    assert _state_file(part)["durable"] == []
    part.release()
    data = _state_file(part)
    part.state_path.write_text(json.dumps(data | {"boot_id": "a-later-boot"}))
    assert [state.done for _, state, _ in orphans(dest, STALE)] == [()]


def test_discarded_part_forgets_the_ranges_it_made_durable(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    part.discard()
    part.checkpoint(ResumeState("http://example/w.bin", 1000, '"new"', None, ()))
    assert _state_file(part)["durable"] == []


def test_a_claim_made_while_another_claim_is_under_way_leaves_one_winner_holding_the_bytes(
    tmp_path, monkeypatch
):
    """Two claimants the lock did not exclude (NFS, a waiter past WEIGHTS_LOCK_TIMEOUT): the second
    claims between the first one's steps; exactly one may end up trusting the part's ranges, and it
    must read the orphan's bytes, not a new empty file."""
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid())
    first_tag, second = new_tag(), []
    real = PartFile.checkpoint

    def checkpoint(self: PartFile, state: ResumeState, *, active: bool = True) -> None:
        if self.tag == first_tag and not second:
            second.append(PartFile.claim(dest, tag=new_tag(), stale_after=STALE))
        real(self, state, active=active)

    monkeypatch.setattr(PartFile, "checkpoint", checkpoint)
    first = PartFile.claim(dest, tag=first_tag, stale_after=STALE)
    winners = [part for part in (first, second[0]) if part.state is not None]
    assert len(winners) == 1
    fd = winners[0].open(1000, fresh=False, margin=0)
    assert os.pread(fd, 600, 0) == b"x" * 600
    winners[0].end()


def test_kept_part_that_vanished_is_refused_not_recreated_empty(tmp_path):
    dest = tmp_path / "w.bin"
    _orphan(dest, pid=_dead_pid())
    part = PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    part.path.unlink()
    with pytest.raises(OSError, match="600 bytes were written"):
        part.open(1000, fresh=False, margin=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_stale_extract_folder_of_a_dead_unpacking_is_removed_and_a_live_ones_kept(tmp_path):
    dest = tmp_path / "w.bin"
    host = new_tag().rsplit("-", 2)[0]
    dead = tmp_path / f"w.bin.{host}-{_dead_pid()}-abcdef.extract"
    live = tmp_path / f"w.bin.{new_tag()}.extract"
    for folder in (dead, live):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "w.bin").write_bytes(b"x" * 10)
    PartFile.claim(dest, tag=new_tag(), stale_after=STALE)
    assert not dead.exists() and live.exists()

"""A cancel ends the local work of a download too, not only its transfers: hashing a file already in
place and unpacking a `.tar` source look at the stop between blocks."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from tests.downloadkit import fast_settings, raise_in, tar_bytes
from weightkit.download import ArchiveLimits, Downloader, FetchRequest
from weightkit.download.archive import safe_extract_tar
from weightkit.download.control import Cancelled, Stop, Stopped
from weightkit.download.install import install_from_tar
from weightkit.download.partfile import PartFile, ResumeState, new_tag

BIG = 16 << 30  # sparse: hashing its zeros takes longer than the 10 s a cancel would otherwise wait
LIMITS = ArchiveLimits(members=10, bytes=1 << 30)


class Cancel(BaseException):
    """What coglet raises in the predict thread."""


class _Seen(logging.Handler):
    """Sets `event` when a log message containing `text` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_cancel_while_a_file_in_place_is_hashed_ends_the_fetch_within_a_second(tmp_path):
    dest = tmp_path / "checkpoints" / "big.bin"
    dest.parent.mkdir()
    with open(dest, "wb") as handle:
        handle.truncate(BIG)
    request = FetchRequest(dest=dest, urls=("http://127.0.0.1:9/big.bin",), size=BIG, sha256="0" * 64)
    seen = _Seen("checking its sha256")
    logger = logging.getLogger("weightkit.download.present")
    logger.addHandler(seen)
    level = logger.level
    logger.setLevel(logging.INFO)
    outcome: list[BaseException] = []
    ended = threading.Event()

    def predict() -> None:
        try:
            Downloader(fast_settings()).fetch(request)
        except BaseException as exc:
            outcome.append(exc)
        ended.set()

    thread = threading.Thread(target=predict)
    try:
        thread.start()
        assert seen.event.wait(30)
        raise_in(thread, Cancel)
        cancelled_at = time.monotonic()
        assert ended.wait(30)
        latency = time.monotonic() - cancelled_at
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
    assert outcome and isinstance(outcome[0], Cancel)
    assert latency < 3.0, f"the cancel took {latency:.1f} s"  # milliseconds when idle; 10 s before
    assert os.stat(dest).st_size == BIG  # the file in place is left as it was


def _tar_part(tmp_path) -> tuple[FetchRequest, PartFile]:
    """A downloaded `.tar` source in its part file, complete, as the transfer leaves it."""
    data = tar_bytes({"w.bin": b"w" * (1 << 20)})
    dest = tmp_path / "w.bin"
    part = PartFile.claim(dest, tag=new_tag(), stale_after=30)
    fd = part.open(len(data), fresh=True, margin=0)
    os.pwrite(fd, data, 0)
    part.checkpoint(ResumeState("http://host/w.tar", len(data), '"e"', None, ((0, len(data)),)))
    return FetchRequest.for_url("http://host/w.tar", dest), part


def test_cancelled_unpacking_of_a_tar_source_keeps_the_downloaded_tar_and_removes_the_unpacked_files(
    tmp_path,
):
    request, part = _tar_part(tmp_path)
    stop = Stop()
    stop.set()
    with pytest.raises(Cancelled):
        install_from_tar(request, part, LIMITS, stop=stop)
    part.end()
    assert not request.dest.exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.endswith(".extract")] == []
    assert any(n.endswith(".part") for n in names) and any(n.endswith(".part.json") for n in names)


def test_extraction_reads_nothing_more_once_stopped(tmp_path):
    _, part = _tar_part(tmp_path)
    stop = Stop()
    stop.set()
    with pytest.raises(Stopped):
        safe_extract_tar(part.path, tmp_path / "out", limits=LIMITS, stop=stop)
    assert not (tmp_path / "out" / "w.bin").exists()
    part.end()

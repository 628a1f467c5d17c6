"""Progress people see: log lines with bytes, speed and ETA, a bar on a terminal, a closing summary."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from weightkit.download import (
    FetchResult,
    FetchSummary,
    LogProgress,
    TerminalProgress,
    progress_for,
)
from weightkit.units import format_bytes


def _result(**changes) -> FetchResult:
    fields = dict(
        name="vae/ae.safetensors", path=Path("w/vae/ae.safetensors"), size=335_304_388, sha256="ab" * 32
    )
    fields.update(seconds=2.0, fetched=335_304_388)
    fields.update(changes)
    return FetchResult(**fields)


def test_sizes_use_decimal_units():
    assert [format_bytes(n) for n in (512, 1_500, 23_802_932_552)] == ["512 B", "1.5 kB", "23.8 GB"]


def test_log_progress_reports_each_step_with_speed_and_eta_then_a_summary(caplog):
    caplog.set_level(logging.INFO)
    progress = LogProgress(interval=3600, step=25)
    progress.started("w.bin", 1000, 0)
    for done in (100, 200, 300, 600):
        progress.advanced("w.bin", done, 1000)
    progress.finished(_result(name="w.bin", size=1000, fetched=1000))
    progress.summarized(FetchSummary(results=(_result(),), seconds=2.0))
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[1].split(")")[0] for line in lines[:2]] == ["30%", "60%"]  # 25 % steps
    assert "MB/s" in lines[0] and "ETA" in lines[0] and "of 1.0 kB" in lines[0]
    assert lines[2].startswith("w.bin: 1.0 kB in 2.0 s")
    assert lines[3] == "Weights: 1 files, 335 MB downloaded in 2.0 s (168 MB/s)"


def test_terminal_progress_draws_one_bar_and_prints_finished_files_above_it():
    stream = io.StringIO()
    progress = TerminalProgress(stream, width=10, redraw=0)
    progress.started("a", 1000, 0)
    progress.advanced("a", 500, 1000)
    progress.finished(_result(name="a", present=True, size=1000, fetched=0))
    progress.summarized(FetchSummary(results=(_result(name="a", present=True, fetched=0),), seconds=1.0))
    text = stream.getvalue()
    assert "[#####.....] 500 B/1.0 kB" in text
    assert "a: already present (1.0 kB)\n" in text
    assert text.rstrip().endswith("1 already present")


def test_progress_for_picks_the_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_for(Tty()), TerminalProgress)
    assert isinstance(progress_for(io.StringIO()), LogProgress)

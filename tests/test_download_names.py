"""A batch whose files share a name (`x.safetensors` in `loras/` and in `checkpoints/`, both given by
URL): each is its own file in failures, the summary and progress."""

from __future__ import annotations

import pytest

from tests.downloadkit import fast_settings, payload
from weightkit.download import Downloader, FetchRequest
from weightkit.download.request import FetchResult, FetchSummary
from weightkit.errors import DownloadsFailedError


class _Progress:
    """A progress reporter that keeps the names it was told."""

    def __init__(self) -> None:
        self.started_names: list[str] = []
        self.finished_names: list[str] = []
        self.failed_names: list[str] = []

    def started(self, name: str, total: int | None, resumed: int) -> None:
        self.started_names.append(name)

    def advanced(self, name: str, done: int, total: int | None) -> None:
        pass

    def finished(self, result: FetchResult) -> None:
        self.finished_names.append(result.name)

    def failed(self, name: str, error: BaseException) -> None:
        self.failed_names.append(name)

    def summarized(self, summary: FetchSummary) -> None:
        pass


def _same_name(server, tmp_path) -> list[FetchRequest]:
    return [
        FetchRequest.for_url(server.url(f"/{folder}/x.safetensors"), tmp_path / folder / "x.safetensors")
        for folder in ("loras", "checkpoints")
    ]


def test_two_failing_files_of_one_name_are_two_failures(server, tmp_path):
    progress = _Progress()
    with pytest.raises(DownloadsFailedError) as caught:
        Downloader(fast_settings(), progress=progress).fetch_many(_same_name(server, tmp_path))
    error = caught.value
    assert len(error.failures) == 2 and len(error.summary.failed) == 2
    assert all("loras" in name or "checkpoints" in name for name in error.failures)
    assert len(set(progress.failed_names)) == 2


def test_two_files_of_one_name_each_have_their_own_progress(server, tmp_path):
    for folder, seed in (("loras", 1), ("checkpoints", 2)):
        server.serve(f"/{folder}/x.bin", payload(2 << 20, seed=seed))
    requests = [
        FetchRequest.for_url(server.url(f"/{folder}/x.bin"), tmp_path / folder / "x.bin")
        for folder in ("loras", "checkpoints")
    ]
    progress = _Progress()
    summary = Downloader(fast_settings(), progress=progress).fetch_many(requests)
    assert summary.files == 2 and len(set(progress.started_names)) == 2
    assert sorted(progress.finished_names) == sorted(progress.started_names)
    assert (tmp_path / "loras" / "x.bin").read_bytes() == payload(2 << 20, seed=1)

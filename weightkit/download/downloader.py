"""The downloader: each weight placed verified and atomically, from the first source that delivers it.

For one file: if it is already in place and verified, nothing happens. A weight whose manifest entry
leaves its size and sha256 to Hugging Face gets them from the host first (`hostfacts.py`), or is
refused. Otherwise, under a lock that only saves bandwidth, it claims any orphaned part file of an
interrupted run, and tries the sources in order (the mirror first): download (`transfer.py`), check
size, sha256 and safetensors header, then fsync, rename onto the final name and record the verified
hash with who stated it. A wrong file is discarded and the next source tried; every source failing
leaves nothing under the final name and an error naming each source and what it did. Several files
download at once and share one connection budget.

The calling thread only waits, in short steps, while other threads download: an exception raised in
it (Ctrl-C, or Cog cancelling a prediction by raising in the predict thread, which a thread blocked in
a join would not see until the download ended) stops every thread of the download at once, keeps the
part files for a resume, and is raised on within a fraction of a second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from weightkit.download.archive import ArchiveLimits
from weightkit.download.control import Slots, Stop, each_done, interruptible
from weightkit.download.hostfacts import ask_host
from weightkit.download.httprange import AuthError, SourceError
from weightkit.download.install import Mismatch, install_from_tar
from weightkit.download.lock import DownloadLock
from weightkit.download.orphans import disown_tag
from weightkit.download.partfile import PartFile, new_tag
from weightkit.download.present import present_result
from weightkit.download.progress import LogProgress, ProgressReporter, ProgressTicks
from weightkit.download.request import FetchRequest, FetchResult, FetchSummary
from weightkit.download.space import ensure_space, existing_ancestor
from weightkit.download.transfer import Outcome, Transfer
from weightkit.download.urls import credential_for, display_url, is_tar, mirror_url, request_url
from weightkit.download.verify import is_safetensors, mismatch, safetensors_problem
from weightkit.errors import DiskSpaceError, DownloadError, DownloadsFailedError, GatedWeightError
from weightkit.settings import DownloadSettings
from weightkit.verified import COMPUTED, VerifiedRecords

__all__ = ["Downloader"]

log = logging.getLogger(__name__)


class Downloader:
    """Fetches weights into place. Safe to share between threads; holds no open files between calls.

    `records` (the weights folder's verified records) lets a file already in place be recognised by a
    stat instead of a hash, and gets a record for every file downloaded. `progress` defaults to log
    lines every `settings.progress_interval` seconds.
    """

    def __init__(
        self,
        settings: DownloadSettings,
        *,
        records: VerifiedRecords | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.settings = settings
        self._records = records
        self._progress = progress or LogProgress(interval=settings.progress_interval)
        self._slots = Slots(settings.max_connections)

    def fetch(self, request: FetchRequest) -> FetchResult:
        """Place one file. Raises `DownloadError` naming each source tried and why it failed (with the
        expected and actual size and sha256 when wrong bytes arrived), `GatedWeightError` naming the
        token variable to set, `DiskSpaceError` with needed and free bytes, or the `OSError` of a local
        write. An exception raised in the calling thread meanwhile stops the download at once."""
        stop = Stop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weightkit-fetch")
        try:
            future = pool.submit(self._fetch, request, stop, request.label)
            interruptible(lambda: each_done([future]), stop, [future])
            return future.result()
        finally:
            pool.shutdown(wait=not stop.is_set())

    def fetch_many(self, requests: Iterable[FetchRequest]) -> FetchSummary:
        """Place several files, `settings.concurrent_files` at a time, sharing the connection budget.
        Checks free space for all of them first. If any fail, raises `DownloadsFailedError` naming every
        failure once the others have finished. An exception raised in the calling thread meanwhile
        stops them all at once."""
        unique: dict[Path, FetchRequest] = {}
        for request in requests:
            unique.setdefault(request.dest.absolute(), request)
        batch = list(unique.values())
        names = _names(batch)
        started = time.monotonic()
        stop = Stop()
        results: list[FetchResult] = []
        failures: dict[Path, Exception] = {}  # by destination: two files may share a name
        workers = max(1, min(self.settings.concurrent_files, len(batch)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="weightkit-fetch")
        try:
            batch = self._ask_hosts(batch, pool, stop, failures, names)
            self._check_batch_space(batch)
            futures = {
                pool.submit(self._fetch, request, stop.child(), names[request.dest]): request
                for request in batch
            }
            for future in interruptible(lambda: each_done(futures), stop, list(futures)):
                try:
                    results.append(future.result())
                except Exception as exc:
                    failures[futures[future].dest] = exc
        finally:
            pool.shutdown(wait=not stop.is_set(), cancel_futures=True)
        failed = {names[dest]: exc for dest, exc in failures.items()}
        summary = FetchSummary(
            results=tuple(results), seconds=time.monotonic() - started, failed=tuple(failed)
        )
        self._progress.summarized(summary)
        if failures:
            raise DownloadsFailedError(failed, summary)
        return summary

    def _ask_hosts(
        self,
        batch: list[FetchRequest],
        pool: ThreadPoolExecutor,
        stop: Stop,
        failures: dict[Path, Exception],
        names: dict[Path, str],
    ) -> list[FetchRequest]:
        """The batch with the sizes and sha256s their hosts state, asked for all at once, so that free
        space is checked for the whole batch with every size known; a file whose host fails it is left
        out and counted in `failures`."""
        needs = [r for r in batch if r.ask_host and self._present(r, time.monotonic(), stop) is None]
        if not needs:
            return batch
        futures = {pool.submit(self._asked, request, stop.child()): request for request in needs}
        asked: dict[Path, FetchRequest] = {}
        for future in interruptible(lambda: each_done(futures), stop, list(futures)):
            request = futures[future]
            try:
                asked[request.dest] = future.result()
            except Exception as exc:
                self._progress.failed(names[request.dest], exc)
                failures[request.dest] = exc
        return [asked.get(r.dest, r) for r in batch if r.dest not in failures]

    # -- one file ------------------------------------------------------------------------------------

    def _fetch(self, request: FetchRequest, stop: Stop, name: str) -> FetchResult:
        """One file; `name` is how progress shows it (unique within a batch)."""
        started = time.monotonic()
        try:
            result = self._present(request, started, stop)
            if result is None and request.ask_host:
                request = self._asked(request, stop)
                result = self._present(request, started, stop)
            if result is None:
                self._refuse_if_gated(request)
                self._check_space(request)
                request.dest.parent.mkdir(parents=True, exist_ok=True)
                with DownloadLock(request.dest, stale_after=self.settings.lock_timeout, stop=stop) as lock:
                    result = self._present(request, started, stop, waited=lock.waited)
                    if result is None:
                        report = ProgressTicks(self._progress, name)
                        with lock.expecting_progress(report.bytes_seen):
                            result = self._download(request, stop, started, report)
        except BaseException as exc:
            self._progress.failed(name, exc)
            raise
        self._progress.finished(replace(result, name=name))
        return result

    def _present(
        self, request: FetchRequest, started: float, stop: Stop, *, waited: bool = False
    ) -> FetchResult | None:
        return present_result(request, self._records, started, stop=stop, waited=waited)

    def _asked(self, request: FetchRequest, stop: Stop) -> FetchRequest:
        """`request` with the size and sha256 its host states, when they are the host's to state."""
        if not request.ask_host:
            return request
        self._refuse_if_gated(request)
        return ask_host(request, self.settings, stop)

    def _sources(self, request: FetchRequest) -> list[str]:
        """The mirror (for weights with a sha256 to check it by), then the request's URLs."""
        urls: list[str] = []
        if self.settings.mirror and request.sha256 and request.folder and request.name:
            urls.append(
                mirror_url(
                    self.settings.mirror, folder=request.folder, name=request.name, sha256=request.sha256
                )
            )
        urls.extend(request_url(url, self.settings) for url in request.urls)
        return list(dict.fromkeys(urls))

    def _blocked(self, request: FetchRequest, url: str) -> str | None:
        """The token variable a gated weight's source needs and lacks, or None."""
        credential = credential_for(url, self.settings.credentials)
        if request.gated and credential is not None and not credential.token:
            return credential.env_var
        return None

    def _refuse_if_gated(self, request: FetchRequest) -> None:
        """Fail before any network traffic when every source needs a token that is not set."""
        sources = self._sources(request)
        needs = [(url, self._blocked(request, url)) for url in sources]
        if sources and all(env for _, env in needs):
            url, env = needs[0]
            raise GatedWeightError(
                request.label,
                dest=str(request.dest),
                url=display_url(url),
                env_var=str(env),
                attempts=tuple((display_url(u), f"needs a token: set {e}") for u, e in needs),
            )

    def _space_needed(self, request: FetchRequest) -> int:
        if request.size is None:
            return 0
        unpack = 2 if request.unpack and any(is_tar(url) for url in self._sources(request)) else 1
        return request.size * unpack - PartFile.reusable_bytes(request.dest)

    def _check_space(self, request: FetchRequest) -> None:
        ensure_space(
            request.dest.parent, needed=self._space_needed(request), margin=self.settings.min_free_bytes
        )

    def _check_batch_space(self, requests: list[FetchRequest]) -> None:
        """Free space for the whole batch, per volume, before the first byte of any file is written."""
        by_volume: dict[int, tuple[Path, int]] = {}
        for request in requests:
            try:
                st = request.dest.stat()
                if request.size is not None and st.st_size == request.size:
                    continue  # probably present; verified later
            except OSError:
                pass
            folder = existing_ancestor(request.dest.parent)
            device = folder.stat().st_dev
            path, needed = by_volume.get(device, (folder, 0))
            by_volume[device] = (path, needed + self._space_needed(request))
        for path, needed in by_volume.values():
            ensure_space(path, needed=needed, margin=self.settings.min_free_bytes)

    def _download(
        self, request: FetchRequest, stop: Stop, started: float, report: ProgressTicks
    ) -> FetchResult:
        tag = new_tag()
        try:
            part = PartFile.claim(request.dest, tag=tag, stale_after=self.settings.lock_timeout)
        except BaseException:
            disown_tag(tag)  # what the failed claim wrote is an orphan like any other, for the next
            raise
        attempts: list[tuple[str, str]] = []
        gated: tuple[str, str] | None = None
        actual: tuple[int | None, str | None] = (None, None)
        cause: BaseException | None = None
        try:
            for url in self._sources(request):
                shown = display_url(url)
                env = self._blocked(request, url)
                if env is not None:
                    attempts.append((shown, f"needs a token: set {env}"))
                    gated = gated or (shown, env)
                    continue
                try:
                    return self._from_source(request, url, part, stop, started, report)
                except SourceError as exc:
                    attempts.append((shown, exc.reason))
                    cause = exc
                    if isinstance(exc, AuthError) and exc.credential is not None and not exc.sent:
                        gated = gated or (shown, exc.credential.env_var)
                    if isinstance(exc, Mismatch):
                        actual = (exc.size, exc.sha256)
                    log.warning("%s: %s failed: %s", request.label, shown, exc.reason)
        except DiskSpaceError:
            if not part.reserved:  # a body of unknown size: no resume would know where it ends
                part.discard()
            raise
        finally:
            part.end()  # keeps what arrived for the next attempt, by any process
        if gated is not None:
            raise GatedWeightError(
                request.label,
                dest=str(request.dest),
                url=gated[0],
                env_var=gated[1],
                attempts=tuple(attempts),
            ) from cause
        raise DownloadError(
            request.label,
            dest=str(request.dest),
            attempts=tuple(attempts),
            expected_size=request.size,
            actual_size=actual[0],
            expected_sha256=request.sha256,
            actual_sha256=actual[1],
        ) from cause

    def _from_source(
        self,
        request: FetchRequest,
        url: str,
        part: PartFile,
        stop: Stop,
        started: float,
        report: ProgressTicks,
    ) -> FetchResult:
        archive = request.unpack and is_tar(url)
        while True:
            outcome = Transfer(
                url=url,
                part=part,
                expected_size=None if archive else request.size,
                hash_content=not archive,
                resume_any_source=request.sha256 is not None,
                settings=self.settings,
                slots=self._slots,
                stop=stop,
                report=report,
                label=request.label,
                url_guard=request.url_guard,
                send_credentials=request.send_credentials,
            ).run()
            if archive:
                size, digest, st = install_from_tar(
                    request, part, ArchiveLimits.for_weights(self.settings), stop=stop
                )
                if self._records is not None:
                    self._records.record(request.dest, digest, st, source=_vouched_by(request))
                return _result(request, outcome, started, size=size, sha256=digest)
            assert part.fd is not None
            problem = mismatch(
                expected_size=request.size,
                size=outcome.size,
                expected_sha256=request.sha256,
                sha256=outcome.sha256,
            )
            if problem is None and is_safetensors(request.dest.name):
                problem = safetensors_problem(part.fd, outcome.size)
            if problem is None:
                return self._install(request, part, outcome, started)
            part.discard()
            if not outcome.resumed:
                raise Mismatch(problem, size=outcome.size, sha256=outcome.sha256)
            log.warning("%s: %s after resuming; downloading it again from the start", request.label, problem)

    def _install(
        self, request: FetchRequest, part: PartFile, outcome: Outcome, started: float
    ) -> FetchResult:
        st = part.finish(request.dest)
        if self._records is not None and outcome.sha256 is not None:
            self._records.record(request.dest, outcome.sha256, st, source=_vouched_by(request))
        return _result(request, outcome, started, size=outcome.size, sha256=outcome.sha256)


def _names(batch: list[FetchRequest]) -> dict[Path, str]:
    """How a batch's progress and failures name each file: its label, or for a label several files
    share (`x.safetensors` in `loras/` and in `checkpoints/`), the label with its destination."""
    counts = Counter(request.label for request in batch)
    return {r.dest: r.label if counts[r.label] == 1 else f"{r.label} ({r.dest})" for r in batch}


def _vouched_by(request: FetchRequest) -> str:
    """Who vouches for the hash of a file just verified: whoever stated the sha256 it matched."""
    return request.hash_from if request.sha256 is not None else COMPUTED


def _result(
    request: FetchRequest, outcome: Outcome, started: float, *, size: int, sha256: str | None
) -> FetchResult:
    return FetchResult(
        name=request.label,
        path=request.dest,
        size=size,
        sha256=sha256,
        seconds=time.monotonic() - started,
        fetched=outcome.fetched,
        resumed=outcome.resumed,
        source=outcome.url,
        hash_from=_vouched_by(request) if sha256 is not None else None,
    )

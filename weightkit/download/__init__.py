"""Weight downloads: parallel ranged, resumable, verified, atomic; one downloader per file across
processes; safe archive extraction.

    downloader = Downloader(settings.download, records=VerifiedRecords(weights_dir / ".weightkit/verified"))
    downloader.fetch(FetchRequest.for_entry(entry, weights_dir / entry.folder / entry.name))
    downloader.fetch_many(FetchRequest.for_entry(e, ...) for e in manifest.kit_entries("flux"))

See docs/DOWNLOAD.md for how it works and what it was measured to do.
"""

from weightkit.download.archive import (
    ArchiveLimits,
    check_members,
    member_path,
    safe_extract_tar,
    safe_extract_zip,
)
from weightkit.download.control import Cancelled
from weightkit.download.downloader import Downloader
from weightkit.download.progress import (
    LogProgress,
    ProgressReporter,
    TerminalProgress,
    progress_for,
)
from weightkit.download.request import FetchRequest, FetchResult, FetchSummary

__all__ = [
    "ArchiveLimits",
    "Cancelled",
    "Downloader",
    "FetchRequest",
    "FetchResult",
    "FetchSummary",
    "LogProgress",
    "ProgressReporter",
    "TerminalProgress",
    "check_members",
    "member_path",
    "progress_for",
    "safe_extract_tar",
    "safe_extract_zip",
]

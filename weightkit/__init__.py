"""weightkit: which model weights a ComfyUI workflow needs, whether they are here, and fetching them.

Independent of Cog and of the ComfyUI process: `comfyui.py` and `predict.py` are thin users of it.
"""

from weightkit.check import CheckReport, FoundWeight, check_weights, missing_weights_error, verify_present
from weightkit.download import Downloader, FetchRequest, FetchResult, FetchSummary
from weightkit.errors import (
    ArchiveTooLargeError,
    DiskSpaceError,
    DownloadError,
    DownloadsFailedError,
    ExtraModelPathsError,
    GatedWeightError,
    ManifestError,
    MissingWeightsError,
    RepairError,
    SettingsError,
    UnknownKitError,
    UnknownWeightError,
    UnsafeArchiveError,
    UnsafeWeightNameError,
    WeightkitError,
    WorkflowError,
)
from weightkit.extract import WeightRef, required_weights
from weightkit.loaders import LoaderMap, builtin_loader_map
from weightkit.manifest import Kit, Manifest, WeightEntry
from weightkit.manifest_file import load_manifest
from weightkit.modelpaths import ModelPaths, read_extra_model_paths, weight_folders, write_extra_model_paths
from weightkit.settings import DownloadSettings, WeightSettings
from weightkit.store import EnsureResult, WeightStore, apply_renames
from weightkit.units import format_bytes
from weightkit.verified import VerifiedRecords, sha256_file
from weightkit.workflow import parse_workflow

__all__ = [
    "ArchiveTooLargeError",
    "CheckReport",
    "DiskSpaceError",
    "DownloadError",
    "DownloadSettings",
    "Downloader",
    "DownloadsFailedError",
    "EnsureResult",
    "ExtraModelPathsError",
    "FetchRequest",
    "FetchResult",
    "FetchSummary",
    "FoundWeight",
    "GatedWeightError",
    "Kit",
    "LoaderMap",
    "Manifest",
    "ManifestError",
    "MissingWeightsError",
    "ModelPaths",
    "RepairError",
    "SettingsError",
    "UnknownKitError",
    "UnknownWeightError",
    "UnsafeArchiveError",
    "UnsafeWeightNameError",
    "VerifiedRecords",
    "WeightEntry",
    "WeightRef",
    "WeightSettings",
    "WeightStore",
    "WeightkitError",
    "WorkflowError",
    "apply_renames",
    "builtin_loader_map",
    "check_weights",
    "format_bytes",
    "load_manifest",
    "missing_weights_error",
    "parse_workflow",
    "read_extra_model_paths",
    "required_weights",
    "sha256_file",
    "verify_present",
    "weight_folders",
    "write_extra_model_paths",
]

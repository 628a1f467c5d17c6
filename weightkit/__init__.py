"""weightkit: which model weights a ComfyUI workflow needs, whether they are here, and fetching them.

Independent of Cog and of the ComfyUI process: `comfyui.py` and `predict.py` are thin users of it. The
names below are imported when first used, so a process that only downloads (`from weightkit.download
import Downloader`) does not pay for the manifest, the workflow parser and YAML.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name → the module that defines it.
_WHERE = {
    "ArchiveTooLargeError": "weightkit.errors",
    "CheckReport": "weightkit.check",
    "DiskSpaceError": "weightkit.errors",
    "DownloadError": "weightkit.errors",
    "DownloadSettings": "weightkit.settings",
    "Downloader": "weightkit.download",
    "DownloadsFailedError": "weightkit.errors",
    "EnsureResult": "weightkit.store",
    "ExtraModelPathsError": "weightkit.errors",
    "FetchRequest": "weightkit.download",
    "FetchResult": "weightkit.download",
    "FetchSummary": "weightkit.download",
    "FoundWeight": "weightkit.check",
    "GatedWeightError": "weightkit.errors",
    "Kit": "weightkit.manifest",
    "LoaderMap": "weightkit.loaders",
    "Manifest": "weightkit.manifest",
    "ManifestError": "weightkit.errors",
    "MissingWeightsError": "weightkit.errors",
    "ModelPaths": "weightkit.modelpaths",
    "RepairError": "weightkit.errors",
    "SettingsError": "weightkit.errors",
    "UnknownKitError": "weightkit.errors",
    "UnknownWeightError": "weightkit.errors",
    "UnsafeArchiveError": "weightkit.errors",
    "UnsafeWeightNameError": "weightkit.errors",
    "VerifiedRecords": "weightkit.verified",
    "WeightEntry": "weightkit.manifest",
    "WeightRef": "weightkit.extract",
    "WeightSettings": "weightkit.settings",
    "WeightStore": "weightkit.store",
    "WeightkitError": "weightkit.errors",
    "WorkflowError": "weightkit.errors",
    "apply_renames": "weightkit.store",
    "builtin_loader_map": "weightkit.loaders",
    "check_weights": "weightkit.check",
    "format_bytes": "weightkit.units",
    "load_manifest": "weightkit.manifest_file",
    "missing_weights_error": "weightkit.check",
    "parse_workflow": "weightkit.workflow",
    "read_extra_model_paths": "weightkit.modelpaths",
    "required_weights": "weightkit.extract",
    "sha256_file": "weightkit.verified",
    "verify_present": "weightkit.check",
    "weight_folders": "weightkit.modelpaths",
    "write_extra_model_paths": "weightkit.modelpaths",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

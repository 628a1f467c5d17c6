"""weightkit: which model weights a ComfyUI workflow needs, whether they are here, and fetching them.

Independent of Cog and of the ComfyUI process: `comfyui.py` and `predict.py` are thin users of it.
"""

from weightkit.errors import ManifestError, UnknownKitError, WeightkitError
from weightkit.manifest import Kit, Manifest, WeightEntry, load_manifest
from weightkit.settings import WeightSettings

__all__ = [
    "Kit",
    "Manifest",
    "ManifestError",
    "UnknownKitError",
    "WeightEntry",
    "WeightSettings",
    "WeightkitError",
    "load_manifest",
]

"""nodekit: custom node packs for ComfyUI, pinned like weights, installed and checked before anything runs.

`custom_nodes.json` (the lock) names each pack, its repository and commit, and what the project must
know about it for weights; `python -m nodekit install` puts the packs in ComfyUI's `custom_nodes/`;
`python -m weightkit nodes|plan WORKFLOW` says which packs a workflow needs. How the pieces fit:

```python
lock = load_lock(NodeSettings.from_env().lock_path)          # LockError naming pack and field
manifest = manifest_with_lock(weight_settings, lock)         # pack weights, loaders, needs, folders
env = lock.comfyui_env(weights_dir)                          # for ComfyUI's environment
log_status(lock, lock.selection(settings.install), custom_nodes_dir, import_failures=...)
hint = missing_class_hint(class_type, PackIndex(lock), import_failures)  # None: of no known pack
```
"""

from nodekit.classes import PackHint, PackIndex, core_classes, index_info
from nodekit.errors import (
    ComfyUINotFoundError,
    InstallBlockedError,
    LockError,
    NodekitError,
    PackFetchError,
    RequirementsError,
    UnknownPackError,
)
from nodekit.gitrepo import GitSource
from nodekit.install import Installer, InstallResult
from nodekit.lock import Clone, Lock, Pack, PackFolder, PackWeight, load_lock, parse_lock
from nodekit.required import ClassNeed, NodesReport, how_to_add, missing_class_hint, required_packs
from nodekit.settings import NodeSettings
from nodekit.status import PackState, log_status, pack_states, status_line
from nodekit.weights import link_pack_weights, manifest_with_lock, write_pack_model_paths

__all__ = [
    "ClassNeed",
    "Clone",
    "ComfyUINotFoundError",
    "GitSource",
    "InstallBlockedError",
    "InstallResult",
    "Installer",
    "Lock",
    "LockError",
    "NodeSettings",
    "NodekitError",
    "NodesReport",
    "Pack",
    "PackFetchError",
    "PackFolder",
    "PackHint",
    "PackIndex",
    "PackState",
    "PackWeight",
    "RequirementsError",
    "UnknownPackError",
    "core_classes",
    "how_to_add",
    "index_info",
    "link_pack_weights",
    "load_lock",
    "log_status",
    "manifest_with_lock",
    "missing_class_hint",
    "pack_states",
    "parse_lock",
    "required_packs",
    "status_line",
    "write_pack_model_paths",
]

"""Where ComfyUI looks for a weight file: every directory of a folder type, in ComfyUI's search order.

`ModelPaths.build()` replays what ComfyUI 0.3.64 does at start-up (`folder_paths.py`, `main.py`,
`utils/extra_config.py`):

1. each folder type starts with `<ComfyUI>/models/<subdir>` (legacy `clip`, `unet` and `t2i_adapter`
   included, see `folders.model_subdirs`);
2. `<ComfyUI>/extra_model_paths.yaml` if it exists, then each `--extra-model-paths-config` file in order,
   are applied: a path of an `is_default` section goes to the front of its folder's list (so the last
   `is_default` file loaded is searched first), any other path to the back; a path already listed is not
   added twice (an `is_default` one moves to the front);
3. `<output>/checkpoints`, `<output>/clip`, ... are appended last, as ComfyUI does for CheckpointSave;
4. custom node packs add the directories of their own folder types when ComfyUI imports them, after every
   config (`_pack_dirs`: what each pack of the lock does, read from its code).

The project's weights directory is given to ComfyUI as one more `is_default` config, loaded last
(`write_extra_model_paths`), so it is searched first. A lookup is a `stat` per directory until the file
is found, like ComfyUI's `get_full_path`; nothing is listed or read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weightkit.errors import ExtraModelPathsError
from weightkit.folders import (
    COMFYUI_FOLDERS,
    EMBEDDING_EXTENSIONS,
    EMBEDDINGS,
    MODEL_EXTENSIONS,
    OUTPUT_SUBDIRS,
    canonical_folder,
    model_subdirs,
)
from weightkit.loaders import builtin_loader_map
from weightkit.manifest import Manifest
from weightkit.settings import WeightSettings

__all__ = [
    "ModelPaths",
    "read_extra_model_paths",
    "weight_folders",
    "write_extra_model_paths",
]

WEIGHTS_SECTION = "weightkit_weights_dir"
_LISTING_LIMIT = 20_000  # files listed per folder type for near-name suggestions


@dataclass(frozen=True)
class ModelPaths:
    """For each folder type, the directories ComfyUI searches, first to last.

    A folder type that ComfyUI does not define (a custom node's, such as `ipadapter`) is searched in the
    directories the configs give it, then in those its pack adds when ComfyUI loads it, after every
    config (`_pack_dirs`: usually `<ComfyUI>/models/<folder>`, none for a pack that keeps a folder the
    configs registered); the weights directory, when given, comes first for every folder type.
    """

    models_dir: Path
    weights_dir: Path | None
    table: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(
        cls,
        comfyui_path: Path | str,
        *,
        extra_configs: Sequence[Path | str] = (),
        weights_dir: Path | str | None = None,
        output_dir: Path | str | None = None,
    ) -> ModelPaths:
        """The search order of a ComfyUI at `comfyui_path` started with `extra_configs` (in order), then
        the weights-dir config, and `--output-directory output_dir` (default `<ComfyUI>/output`).

        Reads the config files (raises `ExtraModelPathsError` for one ComfyUI could not load); touches
        nothing else.
        """
        base = Path(os.path.abspath(comfyui_path))
        models_dir = base / "models"
        table: dict[str, list[str]] = {
            folder: [os.path.join(models_dir, sub) for sub in model_subdirs(folder)]
            for folder in COMFYUI_FOLDERS
        }
        configs = [base / "extra_model_paths.yaml"] if (base / "extra_model_paths.yaml").is_file() else []
        for config in [*configs, *extra_configs]:
            for folder, path, is_default in read_extra_model_paths(config):
                _register(table, folder, str(path), is_default)
        weights = Path(os.path.abspath(weights_dir)) if weights_dir is not None else None
        if weights is not None:
            for folder in list(table):
                _register(table, folder, str(weights / folder), True)
        output = Path(os.path.abspath(output_dir)) if output_dir is not None else base / "output"
        for folder, sub in OUTPUT_SUBDIRS.items():
            _register(table, folder, str(output / sub), False)
        for folder, paths in table.items():
            if folder not in COMFYUI_FOLDERS:
                paths.extend(d for d in _pack_dirs(models_dir, folder, registered=True) if d not in paths)
        return cls(
            models_dir=models_dir,
            weights_dir=weights,
            table={folder: tuple(paths) for folder, paths in table.items()},
        )

    @classmethod
    def from_settings(cls, settings: WeightSettings, *, output_dir: Path | str | None = None) -> ModelPaths:
        """The search order of ComfyUI as the wrapper starts it: `EXTRA_MODEL_PATHS_CONFIG` if set, then the
        weights directory as an `is_default` config."""
        extra = [settings.extra_model_paths] if settings.extra_model_paths is not None else []
        return cls.build(
            settings.comfyui_path,
            extra_configs=extra,
            weights_dir=settings.weights_dir,
            output_dir=output_dir,
        )

    def dirs(self, folder: str) -> tuple[str, ...]:
        """The directories searched for `folder` (legacy names accepted), first to last."""
        found = self.table.get(folder)
        if found is not None:
            return found
        folder = canonical_folder(folder)
        found = self.table.get(folder)
        if found is not None:
            return found
        # The weights-dir config registers every folder a weight can be required in (`weight_folders`).
        head = (str(self.weights_dir / folder),) if self.weights_dir is not None else ()
        return (*head, *_pack_dirs(self.models_dir, folder, registered=bool(head)))

    def locate(self, folder: str, name: str) -> tuple[Path, os.stat_result] | None:
        """The file ComfyUI would open for `name` in `folder`, with its stat, or None; a stat per directory.

        Follows symbolic links as ComfyUI does; a dangling link or a directory does not count. For
        `embeddings`, a NAME without its extension is tried with each of `.safetensors`, `.pt`, `.bin`, and
        subdirectories are searched (only when the top level does not have it), as ComfyUI's tokenizer does.
        `name` must already be a safe relative name (see `manifest.name_is_safe`).
        """
        directories = self.dirs(folder)
        spellings = _embedding_spellings(name) if folder == EMBEDDINGS else (name,)
        for directory in directories:
            for spelling in spellings:
                hit = _stat_file(os.path.join(directory, spelling))
                if hit is not None:
                    return hit
        if folder == EMBEDDINGS:
            for directory in directories:
                for sub in _subdirectories(directory):
                    for spelling in spellings:
                        hit = _stat_file(os.path.join(sub, spelling))
                        if hit is not None:
                            return hit
        return None

    def find(self, folder: str, name: str) -> Path | None:
        """The path ComfyUI would open for `name` in `folder`, or None; see `locate`."""
        hit = self.locate(folder, name)
        return hit[0] if hit is not None else None

    def names(self, folder: str) -> list[str]:
        """The model files in `folder`'s directories, as workflows name them (`sub/x.safetensors`), sorted.

        Walks the directories, so it is for the slow path only (suggesting a near name when a file is
        missing); stops after 20,000 files.
        """
        names: set[str] = set()
        for directory in self.dirs(folder):
            for root, subdirs, files in os.walk(directory, followlinks=True):
                subdirs[:] = [d for d in subdirs if d != ".git"]
                relative = os.path.relpath(root, directory)
                for file in files:
                    if file.lower().endswith(MODEL_EXTENSIONS):
                        names.add(file if relative == "." else f"{relative}/{file}".replace(os.sep, "/"))
                if len(names) >= _LISTING_LIMIT:
                    return sorted(names)
        return sorted(names)


def _register(table: dict[str, list[str]], folder: str, path: str, is_default: bool) -> None:
    """`folder_paths.add_model_folder_path`: is_default to the front, others to the back, no duplicates."""
    paths = table.setdefault(canonical_folder(folder), [])
    if path in paths:
        if is_default and paths[0] != path:
            paths.remove(path)
            paths.insert(0, path)
    elif is_default:
        paths.insert(0, path)
    else:
        paths.append(path)


# What custom node packs do with their folder types when ComfyUI imports them, after it has applied every
# --extra-model-paths-config (ComfyUI a125cd84 main.py:103 `apply_custom_paths()` runs before
# `init_extra_nodes`; folder_paths.py:214 `add_model_folder_path` appends a non-default path to a folder's
# list, or starts the list with it). Read at the commits custom_nodes.json pins:
# - cubiq/ComfyUI_IPAdapter_plus IPAdapterPlus.py:36-40 (9d076a3df0d2763cef5510ec5ab807f6632c39f5) and
#   cubiq/ComfyUI_InstantID InstantID.py:22-27 (1ef34ef573581bd9727c1e0ac05aa956b356a510), like
#   Shakker-Labs/ComfyUI-IPAdapter-Flux ipadapter_flux.py:11-19 (eef22b68, not in the lock; the manifest
#   has its `ipadapter-flux` folder), use
#   `models/<folder>` only when no config registered the folder, else keep the configs' paths alone;
#   since the weights-dir config registers every pack folder, `models/ipadapter` is then not searched.
# - ltdrdata/ComfyUI-Impact-Pack modules/impact/impact_pack.py:46-50 (727295b52e5f) and
#   ltdrdata/ComfyUI-Impact-Subpack modules/subpack_nodes.py:9-11 (5b4e55058ae4) append
#   `models/mmdets/bbox`, `models/ultralytics/segm`, ... for `mmdets_bbox`, `ultralytics_segm`, ...
# - ComfyUI-AnimateDiff-Evolved animatediff/utils_model.py:343-350 (d8d163cd), ComfyUI_essentials
#   utils.py:12-15 (33ff89fd), ComfyUI-Inspire-Pack inspire/lora_block_weight.py:20 (1aef2c57) append
#   `models/<folder>` (the first two after a directory inside the pack, not replayed here: a file only
#   there is reported missing and fetched, never wrongly reported present).
_KEEPS_REGISTERED = frozenset({"ipadapter", "instantid", "ipadapter-flux"})
_MODELS_SUBPATH = {
    "mmdets_bbox": "mmdets/bbox",
    "mmdets_segm": "mmdets/segm",
    "ultralytics_bbox": "ultralytics/bbox",
    "ultralytics_segm": "ultralytics/segm",
}


def _pack_dirs(models_dir: Path, folder: str, *, registered: bool) -> tuple[str, ...]:
    """The directories the pack of `folder` adds after the configs; `registered`: a config gave it paths."""
    if folder in _KEEPS_REGISTERED and registered:
        return ()
    return (str(models_dir / _MODELS_SUBPATH.get(folder, folder)),)


def _stat_file(path: str) -> tuple[Path, os.stat_result] | None:
    try:
        result = os.stat(path)
    except (OSError, ValueError):
        return None
    return (Path(path), result) if stat.S_ISREG(result.st_mode) else None


def _embedding_spellings(name: str) -> tuple[str, ...]:
    return (name, *(name + extension for extension in EMBEDDING_EXTENSIONS))


def _subdirectories(directory: str) -> list[str]:
    found: list[str] = []
    for root, subdirs, _ in os.walk(directory, followlinks=True):
        found.extend(os.path.join(root, d) for d in subdirs)
    return found


def read_extra_model_paths(path: Path | str) -> list[tuple[str, Path, bool]]:
    """The `(folder, directory, is_default)` entries of an `extra_model_paths.yaml`, in file order.

    Follows ComfyUI's `utils/extra_config.py`: `base_path` has `~` and `$VARS` expanded and, when relative,
    is taken from the YAML file's directory; a folder value is one path or several on separate lines; a
    path is joined to `base_path`, or without one taken from the YAML file's directory when relative.
    Raises `ExtraModelPathsError` for a file ComfyUI could not load either.
    """
    source = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except OSError as exc:
        raise ExtraModelPathsError(f"cannot read it ({exc.strerror or exc})", path=source) from exc
    except yaml.YAMLError as exc:
        raise ExtraModelPathsError(f"not valid YAML ({exc})", path=source) from exc
    if not isinstance(config, dict):
        raise ExtraModelPathsError("the top level must be a mapping of section name to section", path=source)
    yaml_dir = os.path.dirname(os.path.abspath(source))
    entries: list[tuple[str, Path, bool]] = []
    for section, body in config.items():
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ExtraModelPathsError(
                "must be a mapping of folder type to path(s)", path=source, section=section
            )
        conf: dict[Any, Any] = dict(body)
        base_path = conf.pop("base_path", None)
        if base_path is not None:
            if not isinstance(base_path, str):
                raise ExtraModelPathsError("'base_path' must be a path", path=source, section=section)
            base_path = os.path.expandvars(os.path.expanduser(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = bool(conf.pop("is_default", False))
        for folder, value in conf.items():
            if not isinstance(value, str):
                raise ExtraModelPathsError(
                    f"the value of '{folder}' must be a path, or several paths on separate lines",
                    path=source,
                    section=section,
                )
            for line in value.split("\n"):
                if not line:
                    continue
                if base_path:
                    full = os.path.join(base_path, line)
                elif not os.path.isabs(line):
                    full = os.path.abspath(os.path.join(yaml_dir, line))
                else:
                    full = line
                entries.append((str(folder), Path(os.path.normpath(full)), is_default))
    return entries


def weight_folders(manifest: Manifest | None = None) -> tuple[str, ...]:
    """Every folder type a weight can be required in: ComfyUI's own, the built-in loaders', and the
    manifest's entries' and custom loaders'. The weights-dir config names all of them."""
    folders = dict.fromkeys(COMFYUI_FOLDERS)
    extra = (manifest.loader_map if manifest is not None else builtin_loader_map()).all_folders()
    if manifest is not None:
        extra |= {entry.folder for entry in manifest.entries.values()} | set(manifest.folders)
    folders.update(dict.fromkeys(sorted(canonical_folder(f) for f in extra)))
    return tuple(folders)


def write_extra_model_paths(path: Path | str, weights_dir: Path | str, folders: Iterable[str]) -> Path:
    """Write an `extra_model_paths.yaml` that makes ComfyUI search `<weights_dir>/<folder>` first.

    Pass it to ComfyUI as the last `--extra-model-paths-config` (after any config of the user's), so its
    `is_default` paths go in front of everything else, as `ModelPaths.build(weights_dir=...)` assumes.
    `folders` is usually `weight_folders(manifest)`. Written atomically; returns the path.
    """
    target = Path(path)
    weights = Path(os.path.abspath(weights_dir))
    section: dict[str, Any] = {"is_default": True}
    for folder in folders:
        section[canonical_folder(folder)] = str(weights / canonical_folder(folder))
    text = (
        "# Written by weightkit: ComfyUI searches the project's weights directory first.\n"
        + yaml.safe_dump({WEIGHTS_SECTION: section}, sort_keys=False, allow_unicode=True)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)
    return target

"""Where files live: the model-folder registry and the input/output/temp directories (ComfyUI's folder_paths).

One registry maps a folder name (`checkpoints`, `upscale_models`, ...) to its directories and accepted
extensions. As in ComfyUI, the legacy names `clip` and `unet` mean `text_encoders` and
`diffusion_models`, a folder added with `is_default` goes first, and a folder listing is kept only while
the modification time of every directory it walked is unchanged, so a file added (even in a subfolder)
is listed on the next request while an overwritten one is not noticed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SUPPORTED_PT_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})
LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

# (folder name, subdirectories of models/, extensions; empty means any file), in ComfyUI's order.
_MODEL_FOLDERS: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("checkpoints", ("checkpoints",), SUPPORTED_PT_EXTENSIONS),
    ("configs", ("configs",), frozenset({".yaml"})),
    ("loras", ("loras",), SUPPORTED_PT_EXTENSIONS),
    ("vae", ("vae",), SUPPORTED_PT_EXTENSIONS),
    ("text_encoders", ("text_encoders", "clip"), SUPPORTED_PT_EXTENSIONS),
    ("diffusion_models", ("unet", "diffusion_models"), SUPPORTED_PT_EXTENSIONS),
    ("clip_vision", ("clip_vision",), SUPPORTED_PT_EXTENSIONS),
    ("style_models", ("style_models",), SUPPORTED_PT_EXTENSIONS),
    ("embeddings", ("embeddings",), SUPPORTED_PT_EXTENSIONS),
    ("diffusers", ("diffusers",), frozenset({"folder"})),
    ("vae_approx", ("vae_approx",), SUPPORTED_PT_EXTENSIONS),
    ("controlnet", ("controlnet", "t2i_adapter"), SUPPORTED_PT_EXTENSIONS),
    ("gligen", ("gligen",), SUPPORTED_PT_EXTENSIONS),
    ("upscale_models", ("upscale_models",), SUPPORTED_PT_EXTENSIONS),
    ("custom_nodes", (), frozenset()),
    ("hypernetworks", ("hypernetworks",), SUPPORTED_PT_EXTENSIONS),
    ("photomaker", ("photomaker",), SUPPORTED_PT_EXTENSIONS),
    ("classifiers", ("classifiers",), frozenset({""})),
    ("model_patches", ("model_patches",), SUPPORTED_PT_EXTENSIONS),
    ("audio_encoders", ("audio_encoders",), SUPPORTED_PT_EXTENSIONS),
)


def map_legacy(folder_name: str) -> str:
    return LEGACY_NAMES.get(folder_name, folder_name)


@dataclass
class ModelFolder:
    paths: list[str]
    extensions: frozenset[str]


@dataclass(frozen=True)
class _Listing:
    files: tuple[str, ...]
    dir_mtimes: dict[str, float] = field(default_factory=dict)


class Folders:
    """The folders of one server. Built by `startup.configure_folders`; safe to use from several threads."""

    def __init__(self, base_path: str) -> None:
        self.base_path = base_path
        self.models_dir = models_dir = os.path.join(base_path, "models")
        self.model_folders: dict[str, ModelFolder] = {}
        for name, subdirs, extensions in _MODEL_FOLDERS:
            paths = [os.path.join(models_dir, d) for d in subdirs] or [os.path.join(base_path, name)]
            self.model_folders[name] = ModelFolder(paths, extensions)
        self.input_directory = os.path.join(base_path, "input")
        self.output_directory = os.path.join(base_path, "output")
        self.temp_directory = os.path.join(base_path, "temp")
        self.user_directory = os.path.join(base_path, "user")
        self._listings: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    # -- the registry -------------------------------------------------------------------------------

    def add_model_folder_path(self, folder_name: str, path: str, is_default: bool = False) -> None:
        """Add a directory: first if `is_default`, else last; a folder name new here accepts any file."""
        folder_name = map_legacy(folder_name)
        with self._lock:
            folder = self.model_folders.get(folder_name)
            if folder is None:
                self.model_folders[folder_name] = ModelFolder([path], frozenset())
            elif path in folder.paths:
                if is_default and folder.paths[0] != path:
                    folder.paths.remove(path)
                    folder.paths.insert(0, path)
            elif is_default:
                folder.paths.insert(0, path)
            else:
                folder.paths.append(path)

    def names(self) -> list[str]:
        with self._lock:
            return list(self.model_folders)

    def has(self, folder_name: str) -> bool:
        with self._lock:
            return folder_name in self.model_folders

    def paths(self, folder_name: str) -> list[str]:
        """The directories of a folder, in search order (raises KeyError for an unknown folder)."""
        with self._lock:
            return list(self.model_folders[map_legacy(folder_name)].paths)

    # -- finding files ------------------------------------------------------------------------------

    def full_path(self, folder_name: str, filename: str) -> str | None:
        """The first directory of the folder holding `filename` as a file; `..` cannot climb out."""
        folder_name = map_legacy(folder_name)
        with self._lock:
            folder = self.model_folders.get(folder_name)
            paths = list(folder.paths) if folder else []
        relative = os.path.relpath(os.path.join("/", filename), "/")
        for directory in paths:
            candidate = os.path.join(directory, relative)
            if os.path.isfile(candidate):
                return candidate
            if os.path.islink(candidate):
                log.warning("WARNING path %s exists but doesn't link anywhere, skipping.", candidate)
        return None

    def full_path_or_raise(self, folder_name: str, filename: str) -> str:
        """Like `full_path`; raises FileNotFoundError with ComfyUI's message when no directory has it."""
        found = self.full_path(folder_name, filename)
        if found is None:
            raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
        return found

    def filename_list(self, folder_name: str) -> list[str]:
        """Sorted relative names of the folder's files, re-listed when a walked directory's mtime changed."""
        folder_name = map_legacy(folder_name)
        with self._lock:
            folder = self.model_folders[folder_name]
            paths, extensions = list(folder.paths), folder.extensions
            cached = self._listings.get(folder_name)
        if cached is not None and _still_valid(cached, paths):
            return list(cached.files)
        names: set[str] = set()
        mtimes: dict[str, float] = {}
        for directory in paths:
            files, dirs = _walk(directory)
            names.update(f for f in files if _accepted(f, extensions))
            mtimes.update(dirs)
        listing = _Listing(tuple(sorted(names)), mtimes)
        with self._lock:
            self._listings[folder_name] = listing
        return list(listing.files)

    # -- input, output, temp ------------------------------------------------------------------------

    def directory_by_type(self, type_name: str | None) -> str | None:
        return {
            "output": self.output_directory,
            "temp": self.temp_directory,
            "input": self.input_directory,
        }.get(type_name or "")

    def annotated_filepath(self, name: str) -> tuple[str, str | None]:
        """Split `name [output]` / `[input]` / `[temp]` into the name and that directory (None if no tag)."""
        for tag, directory in (
            (" [output]", self.output_directory),
            (" [input]", self.input_directory),
            (" [temp]", self.temp_directory),
        ):
            if name.endswith(tag[1:]):
                return name[: -len(tag)], directory
        return name, None

    def annotated_path(self, name: str, default_dir: str | None = None) -> str:
        name, directory = self.annotated_filepath(name)
        return os.path.join(directory or default_dir or self.input_directory, name)

    def annotated_exists(self, name: str) -> bool:
        return os.path.exists(self.annotated_path(name))


def _accepted(filename: str, extensions: frozenset[str]) -> bool:
    return not extensions or os.path.splitext(filename)[-1].lower() in extensions


def _walk(directory: str) -> tuple[list[str], dict[str, float]]:
    """All files below `directory` (relative names; `.git` skipped) and the mtime of each directory walked."""
    if not os.path.isdir(directory):
        return [], {}
    files: list[str] = []
    mtimes: dict[str, float] = {}
    try:
        mtimes[directory] = os.path.getmtime(directory)
    except FileNotFoundError:
        log.warning("Warning: Unable to access %s. Skipping this path.", directory)
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True, topdown=True):
        subdirs[:] = [d for d in subdirs if d != ".git"]
        files.extend(os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames)
        for d in subdirs:
            path = os.path.join(dirpath, d)
            try:
                mtimes[path] = os.path.getmtime(path)
            except FileNotFoundError:
                continue
    return files, mtimes


def _still_valid(listing: _Listing, paths: list[str]) -> bool:
    for directory, mtime in listing.dir_mtimes.items():
        try:
            if os.path.getmtime(directory) != mtime:
                return False
        except FileNotFoundError:
            return False
    return all(d in listing.dir_mtimes for d in paths if os.path.isdir(d))

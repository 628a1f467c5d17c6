"""The stand-in's `folder_paths`: the part of ComfyUI's module of that name that custom node packs use.

Packs `import folder_paths` at import time to register their model folders, and call it from
`INPUT_TYPES` and their loaders to list and find files. Here every call goes to the running server's
`standin.folders.Folders`, bound by `bind()` before any pack is loaded (ComfyUI's module holds that state
itself, at module level, which is why this one does too).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from standin.folders import SUPPORTED_PT_EXTENSIONS, Folders, ModelFolder

supported_pt_extensions = set(SUPPORTED_PT_EXTENSIONS)
models_dir = ""
base_path = ""
_folders: Folders | None = None


class _Registry(MutableMapping[str, tuple[list[str], set[str]]]):
    """`folder_names_and_paths`: `{folder name: ([directories], {extensions})}`, read and written by packs."""

    def _map(self) -> dict[str, ModelFolder]:
        return _bound().model_folders

    def __getitem__(self, name: str) -> tuple[list[str], set[str]]:
        folder = self._map()[name]
        return folder.paths, set(folder.extensions)

    def __setitem__(self, name: str, value: tuple[list[str], set[str]]) -> None:
        paths, extensions = value
        self._map()[name] = ModelFolder(list(paths), frozenset(extensions))

    def __delitem__(self, name: str) -> None:
        del self._map()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._map()))

    def __len__(self) -> int:
        return len(self._map())


folder_names_and_paths = _Registry()


def bind(folders: Folders) -> None:
    global _folders, models_dir, base_path
    _folders, base_path = folders, folders.base_path
    models_dir = folders.models_dir


def _bound() -> Folders:
    if _folders is None:
        raise RuntimeError("folder_paths is used before the stand-in configured its folders")
    return _folders


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    _bound().add_model_folder_path(folder_name, full_folder_path, is_default)


def get_folder_paths(folder_name: str) -> list[str]:
    return _bound().paths(folder_name)


def get_filename_list(folder_name: str) -> list[str]:
    return _bound().filename_list(folder_name)


def get_full_path(folder_name: str, filename: str) -> str | None:
    return _bound().full_path(folder_name, filename)


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    return _bound().full_path_or_raise(folder_name, filename)


def get_input_directory() -> str:
    return _bound().input_directory


def get_output_directory() -> str:
    return _bound().output_directory


def get_temp_directory() -> str:
    return _bound().temp_directory

"""Typed errors: each carries the fields a caller needs and reads as one paragraph a user can act on.

Every error subclasses `NodekitError` and a stdlib category, so callers can catch either.
"""

from __future__ import annotations

from collections.abc import Sequence


class NodekitError(Exception):
    """Base class for every error raised by nodekit."""


class LockError(NodekitError, ValueError):
    """`custom_nodes.json` is malformed: names the file, the pack and the field that is wrong."""

    def __init__(
        self, message: str, *, path: str = "", pack: str | None = None, field: str | None = None
    ) -> None:
        self.path = path
        self.pack = pack
        self.field = field
        where = ", ".join(
            part
            for part in (path, f"pack {pack}" if pack else "", f"field '{field}'" if field else "")
            if part
        )
        super().__init__(
            f"Invalid custom node lock{' (' + where + ')' if where else ''}: {message}. "
            "See docs/CUSTOM_NODES.md for the format of custom_nodes.json."
        )


class UnknownPackError(NodekitError, LookupError):
    """A pack name the lock does not define."""

    def __init__(self, name: str, known: Sequence[str], *, setting: str = "") -> None:
        self.name = name
        self.known = tuple(known)
        via = f" (from {setting})" if setting else ""
        super().__init__(
            f"'{name}'{via} is not a pack of custom_nodes.json. Its packs: {', '.join(known)}. "
            "Add the pack to custom_nodes.json first (name, repository, commit), or fix the name."
        )

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return self.args[0]


class PackFetchError(NodekitError, OSError):
    """A pack's repository could not be fetched at its commit: names the pack, the URL, the mirror setting."""

    def __init__(self, pack: str, *, url: str, commit: str, reason: str, setting: str) -> None:
        self.pack = pack
        self.url = url
        self.commit = commit
        self.reason = reason
        super().__init__(
            f"Could not fetch the custom node pack {pack} at commit {commit} from {url}: {reason}. "
            f"Installing a pack needs its git repository: run this where the host is reachable, or set "
            f"{setting} to a mirror or a directory of local clones (it replaces 'https://github.com/', so "
            f"{setting}=/srv/git makes https://github.com/owner/name.git /srv/git/owner/name.git). "
            "Nothing was installed for this pack."
        )


class RequirementsError(NodekitError, OSError):
    """pip could not install a pack's requirements without changing what ComfyUI's Python must keep."""

    def __init__(self, pack: str, *, python: str, reason: str, output_tail: str = "") -> None:
        self.pack = pack
        self.python = python
        self.reason = reason
        self.output_tail = output_tail
        tail = f" pip said: {output_tail}" if output_tail else ""
        super().__init__(
            f"Could not install the Python requirements of the custom node pack {pack} into {python}: "
            f"{reason}.{tail} The pack was not put in place; fix its requirements in custom_nodes.json "
            "(`requirements` replaces the pack's requirements.txt) or leave the pack out."
        )


class ComfyUINotFoundError(NodekitError, FileNotFoundError):
    """Packs were to be installed into a ComfyUI that is not there."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"There is no ComfyUI at {path} to install custom node packs into: install it first "
            "(scripts/install_comfyui.sh), or set COMFYUI_PATH (or --comfyui) to its checkout."
        )

    def __str__(self) -> str:  # FileNotFoundError would otherwise format its errno fields
        return self.args[0]


class InstallBlockedError(NodekitError, OSError):
    """Something already sits where a pack goes and it is not a checkout the installer may replace."""

    def __init__(
        self, pack: str, *, path: str, reason: str, advice: str = "Move it away (or delete it)"
    ) -> None:
        self.pack = pack
        self.path = path
        self.reason = reason
        super().__init__(
            f"Cannot install the custom node pack {pack} at {path}: {reason}. {advice} and run the "
            "installer again; nothing was changed."
        )


class PackInstallError(NodekitError, OSError):
    """The filesystem refused a step of installing a pack (no space, a name too long, no permission).

    `pack` is None when `custom_nodes/` itself could not be prepared, before any pack.
    """

    def __init__(self, pack: str | None, *, path: str, reason: str) -> None:
        self.pack = pack
        self.path = path
        self.reason = reason
        if pack is None:
            message = (
                f"Could not prepare {path} for installing custom node packs: {reason}. Nothing was "
                "installed; fix the folder (space, permissions) and run the installer again."
            )
        else:
            message = (
                f"Could not install the custom node pack {pack}: {reason} ({path}). Its old checkout, if "
                "it had one, is as it was (its requirements may already be installed); fix the folder "
                "(space, permissions, name length) and run the installer again."
            )
        super().__init__(message)

    def __str__(self) -> str:  # OSError would otherwise format errno fields
        return self.args[0]

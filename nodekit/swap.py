"""A staged checkout into `custom_nodes/NAME`: made like any directory, old files carried, swapped by renames.

- `make_staging_dir`: `custom_nodes/.nodekit-NAME-*.disabled` (a name ComfyUI's loader skips), with the
  mode any directory gets under the umask (`tempfile.mkdtemp`'s private 0700 would survive the rename
  and hide the pack from every other user);
- `carry_untracked`: files git does not track in the old checkout (a pack's config, what it downloaded),
  hard-linked into the staging checkout unless the new commit has something at that path, so the old
  checkout is untouched until the swap;
- `swap_into_place`: the old checkout renamed aside, the staging one renamed in, the old one removed; a
  failed second rename puts the old one back;
- `recover_leftovers`: after an installer was killed, an old checkout left aside with nothing in its
  place is put back, and every other `.nodekit-*.disabled` directory is removed.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from nodekit.gitrepo import untracked_paths

__all__ = ["carry_untracked", "make_staging_dir", "recover_leftovers", "swap_into_place"]

logger = logging.getLogger(__name__)

_PREFIX = ".nodekit-"
_SUFFIX = ".disabled"
_ASIDE = ".nodekit-old-"
_SKIPPED = "__pycache__"  # bytecode of the old sources: stale in the new checkout


def make_staging_dir(custom_nodes_dir: Path, name: str) -> Path:
    """A new empty `custom_nodes/.nodekit-NAME-XXXXXXXX.disabled`, mode 0o777 less the umask."""
    while True:
        path = custom_nodes_dir / f"{_PREFIX}{name}-{secrets.token_hex(4)}{_SUFFIX}"
        try:
            path.mkdir(mode=0o777)
            return path
        except FileExistsError:
            continue


def carry_untracked(old: Path, staging: Path, *, skip: Iterable[str] = ()) -> int:
    """Hard-link (or copy) into `staging` what git does not track in the checkout `old`; returns how many
    paths were carried.

    Kept out: `__pycache__`, paths under `skip` (the old stamp's clones, which the installer made), and
    paths the new checkout already has (its own file wins) or cannot hold (a parent is a file or a
    symlink there). A nested repository git lists as `dir/` is carried whole. Raises `GitError` when git
    cannot list the files, `OSError` when one cannot be linked or copied.
    """
    skipped = [PurePosixPath(path) for path in skip]
    carried = 0
    for listed in untracked_paths(old):
        relative = PurePosixPath(listed.rstrip("/"))
        if _SKIPPED in relative.parts or any(relative.is_relative_to(path) for path in skipped):
            continue
        dest = staging.joinpath(*relative.parts)
        if os.path.lexists(dest) or not _parents_are_directories(staging, relative):
            logger.info("custom nodes: not carried over, the new checkout has %s", dest)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = old.joinpath(*relative.parts)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(
                source,
                dest,
                symlinks=True,
                copy_function=_link_or_copy,
                ignore=shutil.ignore_patterns(_SKIPPED),
            )
        else:
            _link_or_copy(str(source), str(dest))
        carried += 1
    return carried


def _parents_are_directories(root: Path, relative: PurePosixPath) -> bool:
    """Every parent of `relative` under `root` is a real directory or absent (never a symlink out)."""
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if os.path.islink(current) or (os.path.lexists(current) and not current.is_dir()):
            return False
    return True


def _link_or_copy(source: str, dest: str) -> str:
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, dest, follow_symlinks=False)
    return dest


def swap_into_place(staging: Path, target: Path) -> None:
    """`staging` becomes `target`; an old `target` is renamed aside first, then removed.

    If `staging` cannot be renamed in, the old checkout is renamed back before the error is raised; if
    even that fails, `recover_leftovers` puts it back on the next run.
    """
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{_ASIDE}{target.name}-", suffix=_SUFFIX))
    try:
        os.rename(target, aside / target.name)
    except BaseException:
        os.rmdir(aside)
        raise
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside / target.name, target)
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def recover_leftovers(custom_nodes_dir: Path) -> None:
    """Undo what a killed installer left: call with the installer lock held, before any install."""
    for entry in sorted(custom_nodes_dir.iterdir()):
        if not _is_ours(entry):
            continue
        for name in _aside_checkouts(entry):
            home = custom_nodes_dir / name
            if not os.path.lexists(home):
                os.rename(entry / name, home)
                logger.warning(
                    "custom nodes: put %s back from %s, where a stopped installer had moved it", home, entry
                )
        shutil.rmtree(entry, ignore_errors=True)
        logger.info("custom nodes: removed %s, left by a stopped installer", entry)


def _is_ours(entry: Path) -> bool:
    name = entry.name
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX) and entry.is_dir() and not entry.is_symlink()


def _aside_checkouts(entry: Path) -> list[str]:
    """The checkout `swap_into_place` moved into `entry`: its one member NAME, named in `.nodekit-old-NAME-`.

    A staging directory holds `.git` (or nothing) at its top, never a lone pack-named member, so a pack
    whose own name starts with `old-` is not mistaken for one.
    """
    members = os.listdir(entry)
    if len(members) == 1 and members[0] != ".git" and entry.name.startswith(f"{_ASIDE}{members[0]}-"):
        return members
    return []

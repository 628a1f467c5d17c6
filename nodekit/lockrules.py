"""What the packs of one lock may not claim together, checked once every pack's own fields are valid.

A name (case aside: one directory on a case-insensitive disk), a repository (a pack's own or one it
`supersedes`), a class in `classes` (the class -> pack answer must be one pack: a class two packs
register is listed in the one a workflow using it should get, the map names the other) and an `env`
variable with two values (ComfyUI gets one environment, built from every pack of the lock, installed
or not) each belong to one pack.
"""

from __future__ import annotations

from collections.abc import Iterable

from nodekit.errors import LockError
from nodekit.lockparse import RawPack, repository_key

__all__ = ["check_across_packs"]

# field -> the message for a second pack claiming `key` (`value`) that `owner` claimed with `first`
_CLASHES = {
    "name": "the name is used twice ({owner})",
    "repository": "{value} is also the repository of pack {owner}",
    "classes": "{key} is also listed by pack {owner}: list a class in the one pack a workflow using it "
    "should get",
    "env": "{key} is '{first}' in pack {owner} and '{value}' here",
}


def check_across_packs(packs: Iterable[RawPack], *, source: str) -> None:
    """Raises `LockError` naming the second pack that claims what another already has."""
    claims: dict[tuple[str, str], tuple[int, str, str]] = {}  # (field, key) -> (pack index, name, value)
    for index, pack in enumerate(packs):
        for field, key, value in _claims(pack):
            by, owner, first = claims.setdefault((field, key), (index, pack.name, value))
            if by == index or (field == "env" and first == value):
                continue  # its own repository in `supersedes`; one value for a variable is no clash
            message = _CLASHES[field].format(owner=owner, key=key, value=value, first=first)
            raise LockError(
                message, path=source, pack=pack.name, field=None if field == "repository" else field
            )


def _claims(pack: RawPack) -> list[tuple[str, str, str]]:
    """(field, key compared, value shown) for everything `pack` claims."""
    return [
        ("name", pack.name.lower(), pack.name),
        *(("repository", repository_key(url), url) for url in (pack.repository, *pack.supersedes)),
        *(("classes", class_type, class_type) for class_type in pack.classes),
        *(("env", variable, template) for variable, template in pack.env.items()),
    ]

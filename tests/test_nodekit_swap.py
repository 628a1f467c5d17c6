"""`nodekit.swap` on a real filesystem: a swap whose second rename fails puts the old checkout back, and
recovery tells an old checkout left aside from a staging directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodekit.swap import recover_leftovers, swap_into_place


def _checkout(path: Path, text: str) -> Path:
    (path / ".git").mkdir(parents=True)
    (path / "__init__.py").write_text(text)
    return path


def test_a_swap_whose_new_checkout_cannot_be_renamed_in_puts_the_old_one_back(tmp_path):
    target = _checkout(tmp_path / "tiny", "old")
    with pytest.raises(FileNotFoundError):
        swap_into_place(tmp_path / ".nodekit-tiny-gone.disabled", target)  # the rename in fails
    assert (target / "__init__.py").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_a_swap_replaces_the_old_checkout_and_leaves_nothing_aside(tmp_path):
    target = _checkout(tmp_path / "tiny", "old")
    swap_into_place(_checkout(tmp_path / ".nodekit-tiny-1.disabled", "new"), target)
    assert (target / "__init__.py").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_recovery_puts_back_only_an_old_checkout_with_nothing_in_its_place(tmp_path):
    aside = tmp_path / ".nodekit-old-gone-00000000.disabled"
    _checkout(aside / "gone", "kept")
    replaced = tmp_path / ".nodekit-old-here-00000000.disabled"
    _checkout(replaced / "here", "stale")
    _checkout(tmp_path / "here", "current")
    # the staging directory of a pack named old-x: its top holds .git, not a checkout set aside
    _checkout(tmp_path / ".nodekit-old-x-00000000.disabled", "half-made")
    (tmp_path / "mine.disabled").mkdir()  # the user's own disabled pack
    recover_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone", "here", "mine.disabled"]
    assert (tmp_path / "gone" / "__init__.py").read_text() == "kept"
    assert (tmp_path / "here" / "__init__.py").read_text() == "current"

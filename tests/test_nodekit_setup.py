"""What setup uses from nodekit: the status line (a pack ComfyUI could not import named with its message),
pack weights linked where their pack opens them, pack folders kept inside the weights directory, settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from nodekit.lock import parse_lock
from nodekit.settings import BUILTIN_LOCK, NodeSettings
from nodekit.status import log_status, pack_states, status_line
from nodekit.weights import link_pack_weights, manifest_with_lock, write_pack_model_paths
from tests.nodepacks import PackRepos, git
from weightkit.errors import SettingsError
from weightkit.modelpaths import ModelPaths, read_extra_model_paths
from weightkit.settings import WeightSettings

SHA = "ef" * 32


def lock_with(repos: PackRepos | None = None, **commits: str):
    packs = []
    for name, commit in commits.items():
        url = repos.url(name) if repos else f"https://github.com/test/{name}.git"
        packs.append({"name": name, "repository": url, "commit": commit, "install": True})
    return parse_lock({"schema_version": 1, "packs": packs})


def test_the_status_line_names_each_pack_and_comfyuis_import_error(tmp_path):
    repos = PackRepos(tmp_path / "repos")
    good = repos.commit("tiny-good", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    broken = repos.commit("tiny-broken", {"__init__.py": "import tiny_missing_dependency\n"})
    old = repos.commit("tiny-moved", {"a.py": ""})
    new = repos.commit("tiny-moved", {"b.py": ""})
    custom_nodes = tmp_path / "custom_nodes"
    for name in ("tiny-good", "tiny-broken", "tiny-moved"):
        git("clone", "--quiet", str(repos.path(name)), str(custom_nodes / name), cwd=tmp_path)
    git("checkout", "--quiet", old, cwd=custom_nodes / "tiny-moved")
    lock = lock_with(
        repos, **{"tiny-good": good, "tiny-broken": broken, "tiny-moved": new, "tiny-absent": "a" * 40}
    )
    failures = {"tiny-broken": "No module named 'tiny_missing_dependency'"}
    states = {s.pack.name: s.state for s in pack_states(lock.packs, custom_nodes, import_failures=failures)}
    assert states == {
        "tiny-absent": "missing",
        "tiny-broken": "import-failed",
        "tiny-good": "ok",
        "tiny-moved": "other-commit",
    }
    line = status_line(pack_states(lock.packs, custom_nodes, import_failures=failures))
    assert line.startswith("custom nodes: 1 of 4 ok: tiny-absent missing; ")
    assert f"tiny-broken {broken[:7]} failed to import: No module named 'tiny_missing_dependency'" in line
    assert f"tiny-moved at {old[:7]} (lock {new[:7]})" in line and "\n" not in line


def test_setup_logs_one_line_a_warning_when_a_pack_is_not_ok(tmp_path, caplog):
    lock = lock_with(**{"tiny-absent": "a" * 40})
    (tmp_path / "custom_nodes" / "by_hand").mkdir(parents=True)
    (tmp_path / "custom_nodes" / "single_file.py").write_text("")
    failures = {"by_hand": "No module named 'cv2'"}
    with caplog.at_level(logging.INFO, logger="nodekit.status"):
        log_status(lock, lock.packs, tmp_path / "custom_nodes", import_failures=failures)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "custom nodes: 0 of 1 ok: tiny-absent missing; unlisted: by_hand (failed to import: No module named "
        "'cv2'), single_file.py"
    )


TARGETED = {
    "schema_version": 1,
    "packs": [
        {
            "name": "tiny-face",
            "repository": "https://github.com/test/tiny-face.git",
            "commit": "f" * 40,
            "install": True,
            "folders": {"tiny_bbox": {"path": "tiny/bbox", "extensions": [".pt"]}},
            "weights": [
                {
                    "name": "models/face/det.onnx",
                    "folder": "tinyface",
                    "size": 3,
                    "sha256": SHA,
                    "urls": ["https://example.com/det.onnx"],
                    "license": None,
                    "non_commercial": False,
                    "gated": False,
                    "target": "models/tinyface/models/face/det.onnx",
                }
            ],
        }
    ],
}


def test_a_pack_weight_is_linked_where_its_pack_opens_it_once_it_is_fetched(tmp_path):
    lock = parse_lock(TARGETED)
    weights, comfyui = tmp_path / "weights", tmp_path / "ComfyUI"
    place = comfyui / "models" / "tinyface" / "models" / "face" / "det.onnx"
    assert link_pack_weights(lock, weights, comfyui) == [] and not os.path.lexists(
        place
    )  # nothing to link to
    fetched = weights / "tinyface" / "models" / "face" / "det.onnx"
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(b"abc")
    assert link_pack_weights(lock, weights, comfyui) == [place]
    assert place.read_bytes() == b"abc" and os.readlink(place) == str(fetched)
    assert link_pack_weights(lock, weights, comfyui) == []  # already linked
    fetched.unlink()
    link_pack_weights(lock, weights, comfyui)
    assert not os.path.lexists(place)  # no dangling link: the pack would skip its own download and fail


def test_a_file_a_user_put_at_the_target_is_left_alone(tmp_path):
    lock = parse_lock(TARGETED)
    weights, comfyui = tmp_path / "weights", tmp_path / "ComfyUI"
    (weights / "tinyface" / "models" / "face").mkdir(parents=True)
    (weights / "tinyface" / "models" / "face" / "det.onnx").write_bytes(b"abc")
    place = comfyui / "models" / "tinyface" / "models" / "face" / "det.onnx"
    place.parent.mkdir(parents=True)
    place.write_bytes(b"mine")
    assert link_pack_weights(lock, weights, comfyui) == [] and place.read_bytes() == b"mine"


def test_a_pack_folder_kept_elsewhere_is_given_to_comfyui_and_searched(tmp_path):
    lock = parse_lock(TARGETED)
    config = write_pack_model_paths(tmp_path / "run" / "packs.yaml", lock, tmp_path / "weights")
    assert config is not None
    assert read_extra_model_paths(config) == [("tiny_bbox", tmp_path / "weights" / "tiny" / "bbox", True)]
    paths = ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[config], weights_dir=tmp_path / "weights")
    assert paths.dirs("tiny_bbox")[:2] == (
        str(tmp_path / "weights" / "tiny_bbox"),
        str(tmp_path / "weights" / "tiny" / "bbox"),
    )
    assert write_pack_model_paths(tmp_path / "none.yaml", lock_with(a="a" * 40), tmp_path) is None


def test_the_store_manifest_has_the_locks_weights_merged_in(tmp_path):
    manifest = manifest_with_lock(WeightSettings(weights_dir=tmp_path), parse_lock(TARGETED))
    assert "tinyface/models/face/det.onnx" in manifest.entries and "sdxl" in manifest.kits


def test_settings_read_from_the_environment():
    settings = NodeSettings.from_env(
        {
            "CUSTOM_NODES_LOCK": "/x/lock.json",
            "CUSTOM_NODES_INSTALL": "a, b",
            "CUSTOM_NODES_GIT_BASE": "/srv/git",
        }
    )
    assert settings == NodeSettings(lock_path=Path("/x/lock.json"), install=("a", "b"), git_base="/srv/git")
    assert NodeSettings.from_env({}) == NodeSettings(
        lock_path=BUILTIN_LOCK, install=("default",), git_base=None
    )
    with pytest.raises(SettingsError, match="CUSTOM_NODES_INSTALL"):
        NodeSettings.from_env({"CUSTOM_NODES_INSTALL": "default,extra-pack"})

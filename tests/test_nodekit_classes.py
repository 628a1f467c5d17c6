"""Which pack provides a class: ComfyUI's own classes apart, the lock's packs first, then ComfyUI-Manager's
map; a workflow's packs with their lock and install state; the sentence a prediction says for a class."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodekit.classes import PackIndex, core_classes, index_info
from nodekit.lock import load_lock, parse_lock
from nodekit.required import missing_class_hint, required_packs
from nodekit.settings import BUILTIN_LOCK
from tests.nodepacks import PackRepos, git

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "nodekit" / "data"
RECORDED = ROOT / "tests" / "reference" / "comfyui" / "object_info.json"


@pytest.fixture(scope="module")
def index() -> PackIndex:
    return PackIndex(load_lock(BUILTIN_LOCK))


def test_every_class_the_recorded_comfyui_serves_is_core_and_so_are_its_unrecorded_audio_nodes():
    recorded = set(json.loads(RECORDED.read_text()))
    assert recorded <= core_classes()
    assert {"LoadAudio", "SaveAudio", "EmptyLatentAudio"} <= core_classes()
    assert "IPAdapter" not in core_classes()


def test_the_index_data_says_where_it_comes_from_and_stays_compact():
    info = index_info()
    assert (
        "extension-node-map.json" in info.source and "908a1009" in info.source and info.date == "2025-03-28"
    )
    assert info.comfyui_commit == "a125cd84b054a57729b5eecab930ca9408719832"
    assert (DATA / "class_index.json").stat().st_size < 600_000


def test_a_lock_pack_is_preferred_and_named_with_its_repository(index):
    hint = index.pack_for("IPAdapterModelLoader")
    assert hint is not None and hint.in_lock and hint.name == "ComfyUI_IPAdapter_plus"
    assert hint.repository == "https://github.com/cubiq/ComfyUI_IPAdapter_plus.git"


def test_a_moved_repository_counts_as_the_lock_pack_that_supersedes_it(index):
    hint = index.pack_for("Text Multiline")  # the map names WASasquatch's repository
    assert hint is not None and hint.name == "was-node-suite-comfyui" and hint.in_lock


def test_a_class_known_by_its_pack_name_pattern(index):
    hint = index.pack_for("Power Lora Loader (rgthree)")
    assert hint is not None and hint.name == "rgthree-comfy"


def test_a_class_registered_at_the_pinned_commit_but_missing_from_the_map(index):
    hint = index.pack_for("ACN_AnimaLLLiteLoaderAdvanced")
    assert hint is not None and hint.name == "ComfyUI-Advanced-ControlNet"


def test_a_class_of_a_pack_outside_the_lock_names_that_pack(index):
    hint = index.pack_for("Florence2Run")
    assert hint is not None and not hint.in_lock and hint.name == "ComfyUI-Florence2"
    assert hint.repository.startswith("https://github.com/")


def test_core_and_unknown_classes_have_no_pack(index):
    assert index.pack_for("KSampler") is None and index.pack_for("NoSuchNodeAnywhere") is None


def test_a_lock_pack_that_lists_the_class_wins_over_the_map():
    lock = parse_lock(
        {
            "schema_version": 1,
            "packs": [
                {
                    "name": "my-ipadapter-fork",
                    "repository": "https://example.org/me/my-ipadapter-fork.git",
                    "commit": "1" * 40,
                    "install": True,
                    "classes": ["IPAdapterModelLoader", "MyOwnNode"],
                }
            ],
        }
    )
    index = PackIndex(lock)
    assert index.pack_for("IPAdapterModelLoader").name == "my-ipadapter-fork"  # type: ignore[union-attr]
    assert index.pack_for("MyOwnNode").in_lock  # type: ignore[union-attr]
    assert index.pack_for("IPAdapterAdvanced").name == "ComfyUI_IPAdapter_plus"  # type: ignore[union-attr]


WORKFLOW = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "2": {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": "ip-adapter_sd15.safetensors"}},
    "3": {"class_type": "IPAdapterAdvanced", "inputs": {"model": ["1", 0], "ipadapter": ["2", 0]}},
    "4": {"class_type": "Florence2Run", "inputs": {}},
    "5": {"class_type": "NoSuchNodeAnywhere", "inputs": {}},
    "6": {"class_type": "IPAdapterAdvanced", "inputs": {"model": ["1", 0], "ipadapter": ["2", 0]}},
}


def test_a_workflow_lists_its_non_core_classes_once_with_their_nodes(index):
    report = required_packs(WORKFLOW, index)
    assert [(n.class_type, n.node_ids) for n in report.needs] == [
        ("IPAdapterModelLoader", ("2",)),
        ("IPAdapterAdvanced", ("3", "6")),
        ("Florence2Run", ("4",)),
        ("NoSuchNodeAnywhere", ("5",)),
    ]
    assert list(report.not_in_lock) == ["ComfyUI-Florence2"]
    assert [n.class_type for n in report.unknown] == ["NoSuchNodeAnywhere"]
    assert not report.weights_known and not report.checked_install


def test_only_lock_packs_make_a_workflow_judgeable(index):
    known = {k: v for k, v in WORKFLOW.items() if k in ("1", "2", "3")}
    assert required_packs(known, index).weights_known
    assert required_packs({"1": WORKFLOW["1"]}, index).needs == ()


def test_installed_means_checked_out_at_the_lock_commit(tmp_path, index):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    repos = PackRepos(tmp_path / "repos")
    commit = repos.commit("ComfyUI_IPAdapter_plus", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    git(
        "clone",
        "--quiet",
        str(repos.path("ComfyUI_IPAdapter_plus")),
        str(custom_nodes / "ComfyUI_IPAdapter_plus"),
        cwd=tmp_path,
    )
    report = required_packs({"2": WORKFLOW["2"]}, index, custom_nodes_dir=custom_nodes)
    (need,) = report.needs
    assert need.installed == commit and need.install_state.startswith(f"at {commit[:7]}, not the lock's")
    assert report.not_installed == ["ComfyUI_IPAdapter_plus"]
    git("config", "core.repositoryformatversion", "99", cwd=custom_nodes / "ComfyUI_IPAdapter_plus")
    report = required_packs({"2": WORKFLOW["2"]}, index, custom_nodes_dir=custom_nodes)
    (need,) = report.needs  # git's reason, not "not installed"
    assert need.install_state.startswith("unreadable by git: fatal: Expected git repo version <= 1")
    assert report.not_installed == ["ComfyUI_IPAdapter_plus"]


def test_the_sentence_for_a_class_comfyui_lacks(index):
    failed = missing_class_hint(
        "IPAdapterAdvanced", index, {"ComfyUI_IPAdapter_plus": "No module named 'insightface'"}
    )
    assert "ComfyUI_IPAdapter_plus (https://github.com/cubiq/ComfyUI_IPAdapter_plus.git)" in failed
    assert "installed but failed to import: No module named 'insightface'" in failed
    absent = missing_class_hint("IPAdapterAdvanced", index, {})
    assert "pins at 9d076a3 but is not installed" in absent and "--only ComfyUI_IPAdapter_plus" in absent
    outside = missing_class_hint("Florence2Run", index, {})
    assert (
        "does not list" in outside
        and '"name": "ComfyUI-Florence2"' in outside
        and '"commit": "<the 40-hex' in outside
    )
    core = missing_class_hint("SaveAudioOpus", index, {})
    assert "SaveAudioOpus is one of ComfyUI's own classes (at a125cd8)" in core and "torchaudio" in core
    # a class of no known pack: the running ComfyUI's nearest class name is the better hint
    assert missing_class_hint("NoSuchNodeAnywhere", index, {}) is None


def test_a_pack_left_out_of_the_image_is_told_how_to_install_it_there(index):
    absent = missing_class_hint("IPAdapterAdvanced", index, {})
    assert '`"install": true` on it in custom_nodes.json' in absent
    assert "names replace the default selection" in absent
    assert "add it to CUSTOM_NODES_INSTALL" not in absent  # `default,NAME` is refused (SettingsError)


def test_the_index_is_what_the_build_script_makes_from_comfyui_manager_data():
    manager_data = next(
        (
            p / "shared" / "comfyui-manager-data"
            for p in ROOT.parents
            if (p / "shared" / "comfyui-manager-data").is_dir()
        ),
        None,
    )
    if manager_data is None:
        pytest.skip("ComfyUI-Manager's data is not beside this checkout")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_node_index.py"),
            "--check",
            "--manager-data",
            str(manager_data),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

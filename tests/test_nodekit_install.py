"""`python -m nodekit install` as a real process, against git repositories and wheels made in the test.

Every pack comes from a local repository through `CUSTOM_NODES_GIT_BASE` (as from a mirror), every
requirement from a wheel built here with pip's `--no-index --find-links`: no network. Requirements go
into a throwaway Python, one of them externally managed (PEP 668) as a Cog image's is.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nodepacks import (
    InstallSetup,
    externally_managed_python,
    installed_version,
    pack_entry,
    write_lock,
)

LOADER_PACK = {
    "__init__.py": (
        "import folder_paths\n"
        "folder_paths.add_model_folder_path('tiny_models', folder_paths.models_dir + '/tiny_models')\n\n"
        "class TinyLoader:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {'model': (folder_paths.get_filename_list('tiny_models'),)}}\n"
        "    RETURN_TYPES = ('STRING',)\n"
        "    FUNCTION = 'load'\n\n"
        "    def load(self, model):\n"
        "        return (open(folder_paths.get_full_path('tiny_models', model), 'rb').read().hex(),)\n\n"
        "NODE_CLASS_MAPPINGS = {'TinyLoader': TinyLoader}\n"
    )
}
BROKEN_PACK = {"__init__.py": "import tiny_missing_dependency\nNODE_CLASS_MAPPINGS = {}\n"}
REQUIREMENT_PACK = {
    "__init__.py": "import tinydep\nNODE_CLASS_MAPPINGS = {}\n",
    "requirements.txt": "# what the pack needs\ntinydep\n",
}


@pytest.fixture
def setup(tmp_path: Path) -> InstallSetup:
    return InstallSetup(tmp_path)


def test_each_pack_lands_at_its_commit_with_submodules_clones_and_requirements(setup):
    repos = setup.repos
    loader = repos.commit("tiny-loader", LOADER_PACK)
    requirement = repos.commit("tiny-req", REQUIREMENT_PACK)
    repos.commit("tiny-lib", {"lib.py": "ANSWER = 42\n"})
    repos.commit("tiny-sub", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    with_sub = repos.add_submodule("tiny-sub", "tiny-lib", "repositories/lib")
    helper = repos.commit("tiny-helper", {"helper.py": "HELP = 1\n", "requirements.txt": "tinydep\n"})
    clone = {"path": "inner/helper", "repository": repos.url("tiny-helper"), "commit": helper}
    write_lock(
        setup.lock,
        [
            pack_entry(repos, "tiny-loader", loader),
            pack_entry(repos, "tiny-req", requirement),
            pack_entry(repos, "tiny-sub", with_sub, clones=[clone]),
        ],
    )
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert (
        "3 of 3 custom node pack(s)" in result.stdout
        and "3 installed, 0 updated, 0 already there" in result.stdout
    )
    assert (setup.head("tiny-loader"), setup.head("tiny-req"), setup.head("tiny-sub")) == (
        loader,
        requirement,
        with_sub,
    )
    assert (
        setup.custom_nodes / "tiny-sub" / "repositories" / "lib" / "lib.py"
    ).read_text() == "ANSWER = 42\n"
    assert (setup.custom_nodes / "tiny-sub" / "inner" / "helper" / "helper.py").is_file()
    assert installed_version(setup.python, "tinydep") == "1.0"
    assert setup.leftovers() == []


def test_a_second_run_keeps_what_is_already_at_its_commit(setup):
    commit = setup.repos.commit("tiny-req", REQUIREMENT_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-req", commit)])
    assert setup.nodekit("install").returncode == 0
    marker = setup.custom_nodes / "tiny-req" / "written-at-run-time.json"
    marker.write_text("{}")  # a pack's own untracked file survives a no-op run
    again = setup.nodekit("install")
    assert again.returncode == 0 and "0 installed, 0 updated, 1 already there" in again.stdout
    assert "tiny-req already at" in again.stderr and marker.exists()


def test_a_moved_lock_commit_reinstalls_the_pack(setup):
    first = setup.repos.commit("tiny-loader", LOADER_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-loader", first)])
    assert setup.nodekit("install").returncode == 0
    second = setup.repos.commit("tiny-loader", {"VERSION": "2\n"}, message="v2")
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-loader", second)])
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert "1 updated" in result.stdout and f"(was {first[:7]})" in result.stderr
    assert setup.head("tiny-loader") == second and (setup.custom_nodes / "tiny-loader" / "VERSION").is_file()
    assert setup.leftovers() == []


def test_a_broken_pack_installs_its_import_fails_only_inside_comfyui(setup):
    commit = setup.repos.commit("tiny-broken", BROKEN_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-broken", commit)])
    assert setup.nodekit("install").returncode == 0
    assert setup.head("tiny-broken") == commit


@pytest.mark.parametrize(
    ("kept", "requirement"),
    [("torch==1.0", "torch>=2"), ("tinybase==1.0", "tinybase>=2")],
    ids=["torch", "a ComfyUI requirement"],
)
def test_protected_distributions_are_pip_constraints_never_upgraded(setup, kept, requirement):
    setup.pip_install(kept)
    commit = setup.repos.commit("tiny-greedy", {"requirements.txt": requirement + "\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-greedy", commit)])
    result = setup.nodekit("install")
    assert result.returncode == 1
    name = kept.split("==")[0]
    assert "Could not install the Python requirements of the custom node pack tiny-greedy" in result.stderr
    assert "conflicts with a distribution kept at the version ComfyUI's Python has" in result.stderr
    assert installed_version(setup.python, name) == "1.0"
    assert not (setup.custom_nodes / "tiny-greedy").exists() and setup.leftovers() == []


def test_requirements_from_the_lock_replace_the_packs_own_and_its_clones(setup):
    commit = setup.repos.commit("tiny-greedy", {"requirements.txt": "torch>=2\n"})
    helper = setup.repos.commit("tiny-helper", {"requirements.txt": "tinybase>=2\n"})
    clone = {"path": "helper", "repository": setup.repos.url("tiny-helper"), "commit": helper}
    setup.pip_install("torch==1.0", "tinybase==1.0")
    entry = pack_entry(setup.repos, "tiny-greedy", commit, requirements=["tinydep"], clones=[clone])
    write_lock(setup.lock, [entry])
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert installed_version(setup.python, "tinydep") == "1.0"
    assert installed_version(setup.python, "torch") == installed_version(setup.python, "tinybase") == "1.0"
    entry["requirements"] = []
    entry["commit"] = setup.repos.commit("tiny-greedy", {"requirements.txt": "tinyabsent\n"})
    write_lock(setup.lock, [entry])
    assert setup.nodekit("install").returncode == 0  # nothing handed to pip at all


def test_an_externally_managed_python_is_installed_into_as_cog_does(setup, tmp_path):
    managed = externally_managed_python(tmp_path / "managed")
    refused = subprocess.run(
        [str(managed), "-m", "pip", "install", "tinydep"], env=setup.env(), capture_output=True, text=True
    )
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr + refused.stdout
    commit = setup.repos.commit("tiny-req", REQUIREMENT_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-req", commit)])
    result = setup.nodekit("install", COMFYUI_PYTHON=str(managed))
    assert result.returncode == 0, result.stderr
    assert "is externally managed (PEP 668): pip runs with --break-system-packages" in result.stderr
    assert installed_version(managed, "tinydep") == "1.0"
    assert (tmp_path / "managed" / "lib").glob("python3.*/site-packages/tinydep/__init__.py")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_repository_is_one_paragraph_naming_pack_url_and_setting(setup):
    url = f"https://127.0.0.1:{_closed_port()}/test/tiny-far.git"
    write_lock(setup.lock, [{"name": "tiny-far", "repository": url, "commit": "a" * 40, "install": True}])
    result = setup.nodekit("install")
    assert result.returncode == 1
    (paragraph,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert f"Could not fetch the custom node pack tiny-far at commit {'a' * 40} from {url}" in paragraph
    assert "CUSTOM_NODES_GIT_BASE" in paragraph and "Nothing was installed for this pack." in paragraph
    assert list(setup.custom_nodes.iterdir()) == [setup.custom_nodes / ".nodekit-install.lock"]


def test_a_mirror_without_the_repository_names_the_url_it_tried(setup):
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-nowhere", "b" * 40)])
    result = setup.nodekit("install")
    assert result.returncode == 1
    assert f"from {setup.repos.path('tiny-nowhere')}" in result.stderr


def test_a_commit_the_repository_lacks_is_said_so(setup):
    setup.repos.commit("tiny-loader", LOADER_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-loader", "c" * 40)])
    result = setup.nodekit("install")
    assert result.returncode == 1 and f"the repository has no commit {'c' * 40}" in result.stderr


def test_a_directory_that_is_not_a_checkout_is_never_replaced(setup):
    commit = setup.repos.commit("tiny-loader", LOADER_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-loader", commit)])
    mine = setup.custom_nodes / "tiny-loader"
    mine.mkdir()
    (mine / "my_work.py").write_text("precious = True\n")
    result = setup.nodekit("install")
    assert result.returncode == 1 and "it exists and is not a git checkout" in result.stderr
    assert (mine / "my_work.py").read_text() == "precious = True\n" and setup.leftovers() == []


def test_a_failed_update_leaves_the_installed_checkout_in_place(setup):
    first = setup.repos.commit("tiny-greedy", {"requirements.txt": "tinydep\n"})
    setup.pip_install("torch==1.0")
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-greedy", first)])
    assert setup.nodekit("install").returncode == 0
    second = setup.repos.commit("tiny-greedy", {"requirements.txt": "torch>=2\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-greedy", second)])
    assert setup.nodekit("install").returncode == 1
    assert setup.head("tiny-greedy") == first and setup.leftovers() == []


def test_two_installers_at_once_install_once(setup):
    commit = setup.repos.commit("tiny-req", REQUIREMENT_PACK)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-req", commit)])
    command = [sys.executable, "-m", "nodekit", "install"]
    runs = [
        subprocess.Popen(
            command, env=setup.env(), cwd=setup.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    summaries = sorted(out for out, _ in outputs)
    assert "0 installed, 0 updated, 1 already there" in summaries[0]
    assert "1 installed, 0 updated, 0 already there" in summaries[1]
    assert setup.head("tiny-req") == commit and setup.leftovers() == []


def test_the_selection_comes_from_the_setting_or_the_command_line(setup):
    a = setup.repos.commit("tiny-a", {"a.py": ""})
    b = setup.repos.commit("tiny-b", {"b.py": ""})
    write_lock(
        setup.lock,
        [pack_entry(setup.repos, "tiny-a", a), pack_entry(setup.repos, "tiny-b", b, install=False)],
    )
    assert "1 of 1" in setup.nodekit("install").stdout  # the default selection: tiny-a
    assert not (setup.custom_nodes / "tiny-b").exists()
    assert "installed tiny-b" in setup.nodekit("install", CUSTOM_NODES_INSTALL="tiny-b").stderr
    assert setup.head("tiny-b") == b
    none = setup.nodekit("install", CUSTOM_NODES_INSTALL="none")
    assert none.returncode == 0 and "No custom node packs selected" in none.stdout
    bad = setup.nodekit("install", "--only", "tiny-c")
    assert bad.returncode == 2 and "'tiny-c' is not a pack of custom_nodes.json" in bad.stderr


def test_status_compares_custom_nodes_with_the_lock(setup):
    a = setup.repos.commit("tiny-a", {"a.py": ""})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-a", a)])
    missing = setup.nodekit("status")
    assert missing.returncode == 1 and "custom nodes: 0 of 1 ok: tiny-a missing" in missing.stdout
    assert setup.nodekit("install").returncode == 0
    (setup.custom_nodes / "by_hand.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    ok = setup.nodekit("status")
    assert ok.returncode == 0, ok.stdout
    assert f"custom nodes: 1 of 1 ok: tiny-a {a[:7]} ok; unlisted: by_hand.py" in ok.stdout


def test_format_rewrites_the_lock_canonically(setup):
    a = setup.repos.commit("tiny-a", {"a.py": ""})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-a", a)])
    assert setup.nodekit("format", "--check").returncode == 1
    assert setup.nodekit("format").returncode == 0
    assert setup.nodekit("format", "--check").returncode == 0
    assert json.loads(setup.lock.read_text())["packs"][0]["name"] == "tiny-a"

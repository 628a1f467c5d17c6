"""`python -m nodekit install` keeps what it must: torch's own dependencies, a pack's untracked files, the
old checkout when killed or refused, readable modes, and the other packs when one fails. Real processes,
local git repositories and wheels built here, no network."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.nodepacks import InstallSetup, git, installed_version, make_wheel, pack_entry, write_lock

NOBODY = 65534


@pytest.fixture
def setup(tmp_path: Path) -> InstallSetup:
    return InstallSetup(tmp_path)


def test_a_requirement_that_would_downgrade_a_dependency_of_torch_is_refused(setup):
    make_wheel(setup.wheels, "torch", "2.9.1", requires=("tdep>=2",))
    make_wheel(setup.wheels, "tdep", "2.0")
    make_wheel(setup.wheels, "tdep", "1.0")
    setup.pip_install("torch==2.9.1", "tdep==2.0")
    commit = setup.repos.commit("tiny-old", {"requirements.txt": "tdep==1.0\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-old", commit)])
    result = setup.nodekit("install")
    assert result.returncode == 1
    assert "conflicts with a distribution kept at the version ComfyUI's Python has" in result.stderr
    assert installed_version(setup.python, "tdep") == "2.0"
    assert not (setup.custom_nodes / "tiny-old").exists() and setup.leftovers() == []


def _user_files(pack: Path) -> None:
    """What a user and the pack itself write into an installed checkout."""
    (pack / "config.json").write_text("{user settings}")  # ignored by the pack's .gitignore
    (pack / "downloads").mkdir()
    (pack / "downloads" / "model.bin").write_bytes(b"weights")
    (pack / "VERSION").write_text("mine")  # the next commit tracks a VERSION of its own
    (pack / "__pycache__").mkdir(exist_ok=True)
    (pack / "__pycache__" / "stale.pyc").write_bytes(b"old bytecode")
    git("init", "--quiet", str(pack / "by-hand"), cwd=pack)  # a repository cloned in by hand
    (pack / "by-hand" / "lib.py").write_text("X = 1\n")


def test_a_moved_commit_keeps_untracked_files_but_not_the_clones_the_lock_dropped(setup):
    first = setup.repos.commit("tiny", {"__init__.py": "v = 1\n", ".gitignore": "config.json\n"})
    helper = setup.repos.commit("tiny-helper", {"helper.py": "HELP = 1\n"})
    clone = {"path": "inner/helper", "repository": setup.repos.url("tiny-helper"), "commit": helper}
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", first, clones=[clone])])
    assert setup.nodekit("install").returncode == 0
    pack = setup.custom_nodes / "tiny"
    _user_files(pack)
    second = setup.repos.commit("tiny", {"__init__.py": "v = 2\n", "VERSION": "2\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", second)])
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert setup.head("tiny") == second and (pack / "__init__.py").read_text() == "v = 2\n"
    assert (pack / "config.json").read_text() == "{user settings}"
    assert (pack / "downloads" / "model.bin").read_bytes() == b"weights"
    assert (pack / "by-hand" / "lib.py").read_text() == "X = 1\n" and (pack / "by-hand" / ".git").is_dir()
    assert (pack / "VERSION").read_text() == "2\n"  # the new commit's file wins
    assert not (pack / "__pycache__").exists() and not (pack / "inner").exists()
    assert setup.leftovers() == []


def test_a_change_of_the_locks_requirements_alone_keeps_untracked_files(setup):
    commit = setup.repos.commit("tiny", {"__init__.py": "v = 1\n", ".gitignore": "config.json\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", commit)])
    assert setup.nodekit("install").returncode == 0
    pack = setup.custom_nodes / "tiny"
    (pack / "config.json").write_text("{user settings}")
    (pack / "downloaded.bin").write_bytes(b"x")
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", commit, requirements=[])])
    result = setup.nodekit("install")
    assert result.returncode == 0 and "1 updated" in result.stdout, result.stderr
    assert (pack / "config.json").read_text() == "{user settings}" and (pack / "downloaded.bin").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o027, 0o750)])
def test_an_installed_pack_has_the_mode_the_umask_gives_a_directory(setup, umask, mode):
    commit = setup.repos.commit("tiny", {"__init__.py": ""})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", commit)])
    assert setup.nodekit("install", umask=umask).returncode == 0
    assert (setup.custom_nodes / "tiny").stat().st_mode & 0o777 == mode


def test_a_utf16_requirements_txt_is_read_as_pip_reads_it(setup):
    setup.repos.commit("tiny-utf16", {"__init__.py": ""})
    repo = setup.repos.path("tiny-utf16")
    (repo / "requirements.txt").write_bytes("# needs\ntinydep\n".encode("utf-16"))
    git("add", "requirements.txt", cwd=repo)
    git("commit", "--quiet", "-m", "utf-16", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny-utf16", commit)])
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert installed_version(setup.python, "tinydep") == "1.0" and setup.head("tiny-utf16") == commit


def test_a_filesystem_error_fails_that_pack_in_one_paragraph_and_the_others_install(setup):
    long_name = "tiny-" + "n" * 235  # fits custom_nodes/, but not its staging name (255 bytes at most)
    packs = [
        pack_entry(setup.repos, name, setup.repos.commit(name, {"__init__.py": ""}))
        for name in (long_name, "tiny-other")
    ]
    write_lock(setup.lock, packs)
    result = setup.nodekit("install")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (paragraph,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert f"Could not install the custom node pack {long_name}: File name too long" in paragraph
    assert "Its old checkout, if it had one, is as it was" in paragraph
    assert "1 of 2 custom node pack(s)" in result.stdout and setup.head("tiny-other")
    assert setup.leftovers() == []


def _wait_for_reader(fifo: Path, process: subprocess.Popen[str]) -> None:
    """Returns once pip opened `fifo` to read it (or the installer ended first: the caller checks)."""

    def unblock_when_it_ends() -> None:
        process.wait()
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock_when_it_ends, daemon=True).start()
    os.close(os.open(fifo, os.O_WRONLY))  # blocks until some reader opens it


def test_what_a_killed_installer_left_is_cleaned_and_the_old_checkout_was_never_touched(setup):
    first = setup.repos.commit("tiny", {"__init__.py": "v = 1\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", first)])
    assert setup.nodekit("install").returncode == 0
    fifo = setup.tmp / "requirements.fifo"
    os.mkfifo(fifo)
    second = setup.repos.commit("tiny", {"__init__.py": "v = 2\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", second, requirements=[f"-r {fifo}"])])
    installer = setup.start_nodekit("install")
    _wait_for_reader(fifo, installer)
    assert installer.poll() is None, installer.communicate()
    os.killpg(installer.pid, signal.SIGKILL)  # the installer and the pip it runs, mid-install
    installer.communicate()
    assert setup.leftovers() != [] and setup.head("tiny") == first
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", second)])
    result = setup.nodekit("install")
    assert result.returncode == 0 and "1 updated" in result.stdout, result.stderr
    assert "left by a stopped installer" in result.stderr
    assert setup.head("tiny") == second and setup.leftovers() == []


def test_an_old_checkout_left_aside_with_nothing_in_its_place_is_put_back(setup):
    commit = setup.repos.commit("tiny", {"__init__.py": ""})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", commit)])
    assert setup.nodekit("install").returncode == 0
    (setup.custom_nodes / "tiny" / "mine.txt").write_text("precious")
    # what an installer killed between its two renames leaves: the old checkout aside, the new one staged
    aside = setup.custom_nodes / ".nodekit-old-tiny-1a2b3c4d.disabled"
    aside.mkdir()
    os.rename(setup.custom_nodes / "tiny", aside / "tiny")
    (setup.custom_nodes / ".nodekit-tiny-5e6f7a8b.disabled" / ".git").mkdir(parents=True)
    result = setup.nodekit("install")
    assert result.returncode == 0 and "1 already there" in result.stdout, result.stderr
    assert "put " in result.stderr and "back from" in result.stderr
    assert (setup.custom_nodes / "tiny" / "mine.txt").read_text() == "precious"
    assert setup.leftovers() == []


def _refuse_dubious_ownership(pack: Path) -> str:
    for directory, subdirs, files in os.walk(pack):
        for name in [directory, *(os.path.join(directory, n) for n in subdirs + files)]:
            os.lchown(name, NOBODY, NOBODY)
    return "detected dubious ownership in repository"


def _refuse_repository_format(pack: Path) -> str:
    git("config", "core.repositoryformatversion", "99", cwd=pack)
    return "Expected git repo version <= 1, found 99"


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(
            _refuse_dubious_ownership,
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root"),
            id="dubious ownership",
        ),
        pytest.param(_refuse_repository_format, id="unknown repository format"),
    ],
)
def test_a_checkout_git_refuses_to_read_is_reported_in_gits_words(setup, refuse):
    first = setup.repos.commit("tiny", {"__init__.py": "v = 1\n"})
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", first)])
    assert setup.nodekit("install").returncode == 0
    reason = refuse(setup.custom_nodes / "tiny")
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", setup.repos.commit("tiny", {"v": "2"}))])
    result = setup.nodekit("install")
    assert result.returncode == 1 and "git cannot read the checkout there" in result.stderr
    assert reason in result.stderr and "is not a git checkout" not in result.stderr
    assert (setup.custom_nodes / "tiny" / "__init__.py").read_text() == "v = 1\n"
    status = setup.nodekit("status")
    assert status.returncode == 1 and "tiny unreadable by git: " in status.stdout and reason in status.stdout


def test_a_submodule_named_by_its_ssh_url_comes_from_the_mirror_too(setup):
    setup.repos.commit("tiny-lib", {"lib.py": "ANSWER = 42\n"})
    setup.repos.commit("tiny", {"__init__.py": ""})
    ssh = "git@github.com:test/tiny-lib.git"
    commit = setup.repos.add_submodule("tiny", "tiny-lib", "repositories/lib", url=ssh)
    write_lock(setup.lock, [pack_entry(setup.repos, "tiny", commit)])
    result = setup.nodekit("install")
    assert result.returncode == 0, result.stderr
    assert (setup.custom_nodes / "tiny" / "repositories" / "lib" / "lib.py").read_text() == "ANSWER = 42\n"

"""Tiny custom node packs, wheels and Pythons made in a test, for the installer and the CLI.

- `PackRepos(root)`: real git repositories of packs, at `<root>/<owner>/<name>.git`, so that
  `CUSTOM_NODES_GIT_BASE=<root>` serves `https://github.com/<owner>/<name>.git` with no network;
- `make_wheel(dir, name, version, requires=...)`: a pure-Python wheel written by hand (no build backend),
  for pip's `--no-index --find-links`;
- `InstallSetup(tmp)`: a ComfyUI folder, pack repositories, wheels and a Python, with `nodekit(...)` to
  run `python -m nodekit` against them as a real process (umask 022, so modes are what a build gets);
- `throwaway_venv(path)`: a virtual environment borrowing the base interpreter's pip (fast, no ensurepip);
- `externally_managed_python(path)`: a Python installation that is not a virtual environment and carries
  PEP 668's `EXTERNALLY-MANAGED` marker in its stdlib folder, as a uv-installed Python in a Cog image
  does. (A virtual environment cannot be one: pip ignores the marker inside a venv, and a venv's stdlib
  folder is its base Python's.) It is the base interpreter's executable copied into a new prefix whose
  `lib/python3.X/` links to the base stdlib, so `sys.prefix == sys.base_prefix` is the new prefix and
  installs land in its own `site-packages`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class PackRepos:
    """Git repositories of tiny packs under `root`, laid out as a mirror of github.com."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str, owner: str = "test") -> Path:
        return self.root / owner / f"{name}.git"

    def url(self, name: str, owner: str = "test") -> str:
        """The repository URL a lock names; the base setting maps it to `path(name)`."""
        return f"https://github.com/{owner}/{name}.git"

    def commit(self, name: str, files: dict[str, str], *, owner: str = "test", message: str = "pack") -> str:
        """Write `files` into the pack's repository (created on first use), commit, return the commit id."""
        repo = self.path(name, owner)
        if not repo.exists():
            repo.mkdir(parents=True)
            git("init", "--quiet", "--initial-branch=main", cwd=repo)
        for relative, text in files.items():
            target = repo / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        git("add", "--all", cwd=repo)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=repo)
        return git("rev-parse", "HEAD", cwd=repo)

    def add_submodule(
        self, name: str, sub: str, path: str, *, owner: str = "test", url: str | None = None
    ) -> str:
        """Add pack `sub` as a submodule of pack `name` at `path` (by its github.com URL or `url`), commit."""
        repo = self.path(name, owner)
        # `git submodule add` would fetch from github.com: record the gitlink and .gitmodules by hand.
        sub_commit = git("rev-parse", "HEAD", cwd=self.path(sub, owner))
        (repo / ".gitmodules").write_text(
            f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url or self.url(sub, owner)}\n',
            encoding="utf-8",
        )
        git("add", ".gitmodules", cwd=repo)
        git("update-index", "--add", "--cacheinfo", f"160000,{sub_commit},{path}", cwd=repo)
        git("commit", "--quiet", "-m", f"submodule {path}", cwd=repo)
        return git("rev-parse", "HEAD", cwd=repo)


def pack_entry(repos: PackRepos, name: str, commit: str, **fields: object) -> dict[str, object]:
    return {"name": name, "repository": repos.url(name), "commit": commit, "install": True, **fields}


def write_lock(path: Path, packs: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "packs": packs}, indent=2), encoding="utf-8")
    return path


def make_wheel(directory: Path, name: str, version: str, *, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel `name-version-py3-none-any.whl` with one module `name` and its dist-info."""
    directory.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for relative, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{relative},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for relative, text in files.items():
            archive.writestr(relative, text)
    return wheel


def _base_python() -> Path:
    """The interpreter a virtual environment was made from (or this one)."""
    return Path(sys._base_executable).resolve()  # type: ignore[attr-defined]


def throwaway_venv(path: Path) -> Path:
    """A venv whose pip is the base interpreter's (system site-packages on, nothing installed)."""
    venv.create(path, with_pip=False, system_site_packages=True, symlinks=True)
    return path / "bin" / "python"


def externally_managed_python(path: Path) -> Path:
    """A non-venv Python at `path` marked EXTERNALLY-MANAGED; its pip is the base interpreter's pip."""
    base = _base_python()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sys.base_prefix) / "lib" / version
    lib = path / "lib" / version
    (lib / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    pip = stdlib / "site-packages" / "pip"
    (lib / "site-packages" / "pip").symlink_to(pip)
    for info in (stdlib / "site-packages").glob("pip-*.dist-info"):
        (lib / "site-packages" / info.name).symlink_to(info)
    (path / "bin").mkdir()
    python = path / "bin" / "python3"
    shutil.copy2(base, python)
    (lib / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This Python is managed by the test, as uv manages a Cog image's.\n",
        encoding="utf-8",
    )
    return python


def installed_version(python: Path, distribution: str) -> str | None:
    done = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


class InstallSetup:
    """A ComfyUI folder, pack repositories, a wheel folder and a Python to install into."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.comfyui = tmp_path / "ComfyUI"
        (self.comfyui / "custom_nodes").mkdir(parents=True)
        (self.comfyui / "requirements.txt").write_text("tinybase\n")  # ComfyUI's own: kept as installed
        self.repos = PackRepos(tmp_path / "repos")
        self.wheels = tmp_path / "wheels"
        make_wheel(self.wheels, "tinydep", "1.0")
        make_wheel(self.wheels, "tinybase", "1.0")
        make_wheel(self.wheels, "tinybase", "2.0")
        make_wheel(self.wheels, "torch", "1.0")
        make_wheel(self.wheels, "torch", "2.0")
        self.python = throwaway_venv(tmp_path / "venv")
        self.lock = tmp_path / "custom_nodes.json"

    @property
    def custom_nodes(self) -> Path:
        return self.comfyui / "custom_nodes"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CUSTOM_NODES_", "COMFYUI_"))}
        env.update(GIT_ENV)
        env.update(
            PYTHONPATH=str(ROOT),
            COMFYUI_PATH=str(self.comfyui),
            COMFYUI_PYTHON=str(self.python),
            CUSTOM_NODES_LOCK=str(self.lock),
            CUSTOM_NODES_GIT_BASE=str(self.repos.root),
            PIP_NO_INDEX="1",
            PIP_FIND_LINKS=str(self.wheels),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            GIT_SSH_COMMAND="false",  # an ssh URL the mirror does not rewrite fails here, never dials out
        )
        env.update(extra)
        return env

    def pip_install(self, *requirements: str) -> None:
        subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", *requirements],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def nodekit(self, *args: str, umask: int = 0o022, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nodekit", *args],
            env=self.env(**env),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=120,
            umask=umask,
        )

    def start_nodekit(self, *args: str) -> subprocess.Popen[str]:
        """`python -m nodekit` in a session of its own, so the test can kill it and its pip at once."""
        return subprocess.Popen(
            [sys.executable, "-m", "nodekit", *args],
            env=self.env(),
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def head(self, name: str) -> str:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=self.custom_nodes / name,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def leftovers(self) -> list[str]:
        return sorted(
            p.name for p in self.custom_nodes.iterdir() if p.name.startswith(".nodekit-") and p.is_dir()
        )

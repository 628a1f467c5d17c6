"""The git repositories the stand-in base image holds, made here: what a real `cog build` fetches from GitHub.

- "ComfyUI" (`make_comfyui_mirror`): the project's stand-in laid out as a ComfyUI checkout: `main.py` at
  the top (`checkout_main.py`: the stand-in with the checkout as its base directory), `requirements.txt`,
  and `custom_nodes/` as ComfyUI ships it (its example file; `.gitignore` leaves installed packs out of
  `git status`). `scripts/install_comfyui.sh` is pointed at it with COMFYUI_REPO / COMFYUI_COMMIT.
- the custom node packs of `node_packs` (`make_pack_mirrors`), at `<root>/<owner>/<name>.git`, the layout
  CUSTOM_NODES_GIT_BASE maps `https://github.com/<owner>/<name>.git` to.

Every commit has fixed names and dates, so its id depends only on the files: the base image's tag (a hash
of its inputs) is the same from run to run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.image.node_packs import OWNER, PACK_FILES

__all__ = ["make_comfyui_mirror", "make_pack_mirrors"]

ROOT = Path(__file__).resolve().parents[2]
STANDIN_REFERENCE = ("object_info.json", "loader_inputs.json", "extensions.json")
# ComfyUI's own requirements name the torch family without versions; so does the mirror's.
MIRROR_REQUIREMENTS = "torch\ntorchvision\ntorchaudio\naiohttp>=3.11.8\nPillow\npyyaml\n"
# As in ComfyUI's checkout: custom_nodes/ holds only its example, and git ignores the packs put there.
CHECKOUT_GITIGNORE = "/custom_nodes/\n!custom_nodes/example_node.py.example\n__pycache__/\n"
EXAMPLE_NODE = "# ComfyUI's example custom node; the stand-in's checkout keeps the file, not its code.\n"
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "image-test", "GIT_AUTHOR_EMAIL": "image-test@localhost",
    "GIT_COMMITTER_NAME": "image-test", "GIT_COMMITTER_EMAIL": "image-test@localhost",
    "GIT_AUTHOR_DATE": "2025-10-12T00:00:00Z", "GIT_COMMITTER_DATE": "2025-10-12T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}  # fmt: skip


def _bare_repository(work: Path, folder: Path, message: str) -> str:
    """Commit everything in `work` and make `folder` a bare repository of it (no remote); `work` is
    removed. Returns the commit."""
    env = {**_GIT_ENV, "HOME": str(work)}
    git = ["git", "-C", str(work)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, env=env)
    subprocess.run([*git, "add", "-A", "--force"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True, env=env)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True, env=env)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(folder)], check=True, env=env)
    subprocess.run(["git", "-C", str(folder), "remote", "remove", "origin"], check=True, env=env)
    shutil.rmtree(work)
    return commit.stdout.strip()


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def make_comfyui_mirror(folder: Path) -> str:
    """A bare repository at `folder` holding the stand-in laid out as a ComfyUI checkout; its commit."""
    work = _fresh(folder.parent / f"{folder.name}.work")
    standin = ROOT / "tests" / "comfyui_standin"
    shutil.copytree(standin, work / "tests" / "comfyui_standin", ignore=shutil.ignore_patterns("__pycache__"))
    reference = work / "tests" / "reference" / "comfyui"
    reference.mkdir(parents=True)
    for name in STANDIN_REFERENCE:
        shutil.copy2(ROOT / "tests" / "reference" / "comfyui" / name, reference / name)
    shutil.copy2(Path(__file__).with_name("checkout_main.py"), work / "main.py")
    (work / "requirements.txt").write_text(MIRROR_REQUIREMENTS)
    (work / ".gitignore").write_text(CHECKOUT_GITIGNORE)
    (work / "custom_nodes").mkdir()
    (work / "custom_nodes" / "example_node.py.example").write_text(EXAMPLE_NODE)
    return _bare_repository(work, folder, "ComfyUI stand-in")


def make_pack_mirrors(root: Path) -> dict[str, str]:
    """A bare repository of each pack of `node_packs` under `root`; their commits by pack name."""
    commits = {}
    for name, files in PACK_FILES.items():
        work = _fresh(root / f"{name}.work")
        for relative, text in files.items():
            (work / relative).write_text(text)
        commits[name] = _bare_repository(work, root / OWNER / f"{name}.git", name)
    return commits

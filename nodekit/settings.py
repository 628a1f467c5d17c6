"""Every custom node setting, read from the environment in this one place.

Read when asked for (`NodeSettings.from_env()`), never at import, through the one reader
`weightkit.env.Env`. Where ComfyUI lives (`COMFYUI_PATH`) and which Python runs it (`COMFYUI_PYTHON`)
are the ComfyUI runtime's settings (`comfyrun.settings.RuntimeSettings`), not read here again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from weightkit.env import Env
from weightkit.errors import SettingsError

__all__ = ["BUILTIN_LOCK", "GITHUB", "NodeSettings"]

BUILTIN_LOCK = Path(__file__).resolve().parent.parent / "custom_nodes.json"
GITHUB = "https://github.com/"
_KEYWORDS = ("default", "all", "none")


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """Which custom node packs, from where, into which ComfyUI.

    | variable | default | meaning |
    | --- | --- | --- |
    | `CUSTOM_NODES_LOCK` | `custom_nodes.json` | the custom node lock: packs, commits, what they load |
    | `CUSTOM_NODES_INSTALL` | `default` | which packs: `default` (`install: true`), `all`, `none`, or names |
    | `CUSTOM_NODES_GIT_BASE` | (none) | replaces `https://github.com/`: a git mirror, or a folder of clones |

    The installer installs into `COMFYUI_PYTHON`'s environment and `COMFYUI_PATH/custom_nodes`; pip's own
    variables (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, ...) reach the pip it runs.
    """

    lock_path: Path = BUILTIN_LOCK
    install: tuple[str, ...] = ("default",)
    git_base: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NodeSettings:
        """Raises `SettingsError` naming the variable whose value is unusable."""
        env = Env(environ)
        install = env.items("CUSTOM_NODES_INSTALL") or cls.install
        keywords = [name for name in install if name in _KEYWORDS]
        if keywords and len(install) > 1:
            raise SettingsError(
                "CUSTOM_NODES_INSTALL",
                env.raw("CUSTOM_NODES_INSTALL"),
                "one of default, all, none, or comma-separated pack names (not both)",
            )
        git_base = env.optional_text("CUSTOM_NODES_GIT_BASE")
        if git_base is not None and any(c.isspace() for c in git_base):
            raise SettingsError("CUSTOM_NODES_GIT_BASE", git_base, "a URL or directory without blanks")
        return cls(
            lock_path=env.path("CUSTOM_NODES_LOCK", cls.lock_path),
            install=install,
            git_base=git_base,
        )

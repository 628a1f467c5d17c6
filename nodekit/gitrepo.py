"""Git for pinned checkouts: fetch one commit (and submodules) into a new directory, read a checkout's commit.

Every call runs `git` with an argument list (never a shell), no terminal prompt (a private repository
fails at once instead of waiting for a password), and the base-URL rewrite as git's own
`url.<base>.insteadOf`, so a mirror also serves the submodules a pack names in its `.gitmodules`, by
`https://github.com/` or by `git@github.com:` (ssh) URL alike.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nodekit.settings import GITHUB

__all__ = ["GitError", "GitSource", "head_commit", "is_dirty", "untracked_paths"]

_GITHUB_SSH = "git@github.com:"  # how some packs' .gitmodules name github.com repositories
_TIMEOUT = 1800.0  # one clone of a large pack over a slow link; a stalled transfer is cut by lowSpeed*


class GitError(Exception):
    """A git command failed: `reason` is the last lines git wrote."""

    def __init__(self, args: Sequence[str], reason: str) -> None:
        self.command = " ".join(args)
        self.reason = reason
        super().__init__(f"git {self.command}: {reason}")


@dataclass(frozen=True)
class GitSource:
    """Where repositories are fetched from: `base` (a URL or a directory) replaces `https://github.com/`."""

    base: str | None = None
    extra_config: Mapping[str, str] = field(default_factory=dict)

    def url(self, repository: str) -> str:
        """The URL git will really fetch `repository` from."""
        if self.base and repository.startswith(GITHUB):
            return self._base_prefix() + repository.removeprefix(GITHUB)
        return repository

    def _base_prefix(self) -> str:
        assert self.base is not None
        return self.base if self.base.endswith("/") else self.base + "/"

    def config(self) -> list[tuple[str, str]]:
        """`git -c` pairs, in order; `insteadOf` appears twice (git keeps every value of that key)."""
        config = {"advice.detachedHead": "false", "http.lowSpeedLimit": "1000", "http.lowSpeedTime": "60"}
        rewrites = []
        if self.base:
            rewrites = [(f"url.{self._base_prefix()}.insteadOf", prefix) for prefix in (GITHUB, _GITHUB_SSH)]
            if "://" not in self.base or self.base.startswith("file://"):
                # Local clones as submodule sources: git refuses the file transport for submodules
                # unless told (CVE-2022-39253); the user chose these repositories by setting the base.
                config["protocol.file.allow"] = "always"
        config.update(self.extra_config)
        return [*config.items(), *rewrites]

    def run(self, args: Sequence[str], *, cwd: Path | None = None, timeout: float = _TIMEOUT) -> str:
        """`git -c k=v ... args`; returns its standard output, raises `GitError` with its last lines."""
        command = ["git"]
        for key, value in self.config():
            command += ["-c", f"{key}={value}"]
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        try:
            done = subprocess.run(
                [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
            )
        except FileNotFoundError as exc:
            raise GitError(args, "git is not installed (add it to the image's system packages)") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(args, f"no answer within {timeout:.0f} s") from exc
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            raise GitError(args, " ".join(lines[-3:]) or f"exit status {done.returncode}")
        return done.stdout

    def fetch_commit(self, repository: str, commit: str, dest: Path) -> None:
        """Check `repository` out at `commit` in the new directory `dest`, submodules recursively.

        Asks for the one commit first (a shallow fetch GitHub serves); a server that refuses a commit by
        id gets a full fetch. Raises `GitError`; what it leaves in `dest` is the caller's to remove.
        """
        self.run(["init", "--quiet", str(dest)])
        self.run(["remote", "add", "origin", repository], cwd=dest)
        try:
            self.run(["fetch", "--quiet", "--depth", "1", "origin", commit], cwd=dest)
        except GitError:
            self.run(["fetch", "--quiet", "origin"], cwd=dest)
        try:
            self.run(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=dest)
        except GitError as exc:
            raise GitError(["fetch", repository], f"the repository has no commit {commit}") from exc
        self.run(["checkout", "--quiet", "--detach", commit], cwd=dest)
        if (dest / ".gitmodules").is_file():
            self.run(["submodule", "update", "--quiet", "--init", "--recursive"], cwd=dest)


def head_commit(path: Path) -> str | None:
    """The commit checked out at `path`, or None when it has no `.git` (it is not a checkout).

    Raises `GitError` with git's reason when there is a `.git` git will not read (dubious ownership, an
    unknown repository format) or git is missing: such a directory is not "not a checkout".
    """
    if not (path / ".git").exists():
        return None
    return GitSource().run(["rev-parse", "HEAD"], cwd=path, timeout=30).strip() or None


def is_dirty(path: Path) -> bool:
    """Tracked files changed in the checkout at `path` (files the pack writes itself are untracked).

    Raises `GitError` when git cannot tell.
    """
    return bool(GitSource().run(["status", "--porcelain", "--untracked-files=no"], cwd=path, timeout=60))


def untracked_paths(path: Path) -> list[str]:
    """Files git does not track in the checkout at `path`, ignored ones included, relative to it; a
    nested repository (a clone inside the pack) is one entry ending in `/`. Raises `GitError`."""
    listed = GitSource().run(["ls-files", "--others", "-z"], cwd=path, timeout=300)
    return [entry for entry in listed.split("\0") if entry]

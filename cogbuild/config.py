"""cog.yaml and its requirements file, read as Cog reads them (replicate/cog pkg/config, pkg/requirements).

Followed at replicate/cog commit 6110c912 (2026-08-21, v0.22.0-5): `requirements.ReadRequirements` (comments
and blank lines dropped, `\\` continuations joined, `-e .` skipped), `Config.ParsedEnvironment`
(`KEY=VALUE` items), `Config.TorchVersion` (the first `torch==` pin), and the CUDA/torch facts of
`pkg/config/torch_compatibility.json` for the torch set this project pins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TORCH_WHEELS", "CogConfig", "ConfigError", "TorchWheel", "read_config", "read_requirements"]


class ConfigError(ValueError):
    """cog.yaml asks for something this reading of Cog does not know; the message says what."""


@dataclass(frozen=True)
class TorchWheel:
    """One row of Cog's torch compatibility matrix: a torch build for one CUDA (or the CPU)."""

    torch: str
    torchvision: str
    torchaudio: str
    cuda: str | None
    extra_index_url: str


# Rows of replicate/cog pkg/config/torch_compatibility.json (commit 6110c912) for the pinned torch.
TORCH_WHEELS = (
    TorchWheel("2.9.1", "0.24.1", "2.9.1", None, "https://download.pytorch.org/whl/cpu/"),
    TorchWheel("2.9.1", "0.24.1", "2.9.1", "12.6", "https://download.pytorch.org/whl/cu126/"),
    TorchWheel("2.9.1", "0.24.1", "2.9.1", "12.8", "https://download.pytorch.org/whl/cu128/"),
    TorchWheel("2.9.1", "0.24.1", "2.9.1", "13.0", "https://download.pytorch.org/whl/cu130/"),
)

_PIN = re.compile(r"^([A-Za-z0-9_\-.]+)==([^\s;]+)")
_NAME = re.compile(r"^([A-Za-z0-9_\-.]+)")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


@dataclass(frozen=True)
class CogConfig:
    """The parts of cog.yaml that decide what goes into the image."""

    project: Path
    predict: str
    python_version: str
    gpu: bool
    cuda: str | None
    sdk_version: str | None
    system_packages: tuple[str, ...]
    requirements: tuple[str, ...]
    run: tuple[dict[str, Any], ...]
    environment: dict[str, str]

    def pinned(self, name: str) -> str | None:
        """The version of `name==V` in the requirements (Cog reads the first pin of a name)."""
        for line in self.requirements:
            if (match := _PIN.match(line)) and match.group(1) == name:
                return match.group(2)
        return None

    def torch_wheel(self) -> TorchWheel | None:
        """The matrix row Cog picks for the pinned torch: the newest CUDA not above `build.cuda`."""
        torch = self.pinned("torch")
        if torch is None:
            return None
        rows = [row for row in TORCH_WHEELS if row.torch == torch]
        if not rows:
            known = " or ".join(sorted({row.torch for row in TORCH_WHEELS}))
            raise ConfigError(
                f"torch=={torch} is not in cogbuild's copy of Cog's torch matrix "
                f"(cogbuild/config.py TORCH_WHEELS); add its rows from replicate/cog "
                f"pkg/config/torch_compatibility.json, or pin {known}."
            )
        if not self.gpu:
            return next((row for row in rows if row.cuda is None), None)
        if self.cuda is None:
            raise ConfigError("build.cuda is not set: this reading of Cog needs it with gpu: true and torch.")
        fitting = [r for r in rows if r.cuda and _version_tuple(r.cuda) <= _version_tuple(self.cuda)]
        if not fitting:
            raise ConfigError(f"no torch=={torch} build for CUDA {self.cuda} or older in Cog's matrix.")
        return max(fitting, key=lambda row: _version_tuple(row.cuda or "0"))

    def cog_base_image(self) -> str:
        """The cog-base image `cog build` starts from (`dockerfile.BaseImageName`): CUDA, Python, torch."""
        parts = []
        if self.gpu and self.cuda:
            parts.append("cuda" + ".".join(self.cuda.split(".")[:2]))
        parts.append("python" + ".".join(self.python_version.split(".")[:2]))
        if torch := self.pinned("torch"):
            parts.append("torch" + torch.split("+")[0])
        return "r8.im/cog-base:" + "-".join(parts)


def read_requirements(path: Path) -> tuple[str, ...]:
    """The requirement lines of a requirements file, as `requirements.ReadRequirements` keeps them."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    text = re.sub(r"\\\n", "", text)
    lines = []
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("#") or re.fullmatch(r"-e\s+\.", line):
            continue
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return tuple(lines)


def package_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return match.group(1) if match else ""


_KNOWN_TOP = {"build", "predict", "environment", "image"}
_KNOWN_BUILD = {
    "gpu",
    "cuda",
    "python_version",
    "system_packages",
    "python_requirements",
    "python_packages",
    "run",
    "sdk_version",
}


def _required(build: dict[str, Any], key: str) -> str:
    if not build.get(key):
        raise ConfigError(f"cog.yaml has no build.{key}; cogbuild renders only what it is told.")
    return str(build[key])


def read_config(project: Path) -> CogConfig:
    """cog.yaml of `project`, with its requirements file read. Raises ConfigError for a key this reading of
    Cog does not follow (so a rendered Dockerfile never silently differs from Cog's)."""
    data = yaml.safe_load((project / "cog.yaml").read_text(encoding="utf-8")) or {}
    build = data.get("build") or {}
    unknown = sorted(set(data) - _KNOWN_TOP) + sorted(f"build.{k}" for k in set(build) - _KNOWN_BUILD)
    if unknown:
        raise ConfigError(
            f"cog.yaml uses {', '.join(unknown)}, which cogbuild does not follow; extend cogbuild/ "
            "from Cog's generator (pkg/dockerfile/standard_generator.go) first."
        )
    environment: dict[str, str] = {}
    for item in data.get("environment") or []:
        name, sep, value = str(item).partition("=")
        if not sep or not name:
            raise ConfigError(f"environment item {item!r} is not KEY=VALUE")
        environment[name] = value
    requirements: tuple[str, ...] = ()
    if build.get("python_requirements"):
        requirements = read_requirements(project / build["python_requirements"])
    elif build.get("python_packages"):
        requirements = tuple(build["python_packages"])
    run = tuple(item if isinstance(item, dict) else {"command": str(item)} for item in build.get("run") or [])
    return CogConfig(
        project=project,
        predict=str(data.get("predict") or ""),
        python_version=_required(build, "python_version"),
        gpu=bool(build.get("gpu")),
        cuda=str(build["cuda"]) if build.get("cuda") else None,
        sdk_version=str(build["sdk_version"]) if build.get("sdk_version") else None,
        system_packages=tuple(build.get("system_packages") or ()),
        requirements=requirements,
        run=run,
        environment=environment,
    )

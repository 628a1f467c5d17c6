"""A pack's requirements into ComfyUI's Python, without upgrading what ComfyUI needs kept as it is.

`TargetPython.probe(executable)` asks that interpreter about itself (one subprocess): its version,
whether it is externally managed (PEP 668), its pip, and every installed distribution. `constraints()`
pins the protected distributions (torch, torchvision, torchaudio and everything ComfyUI's own
requirements.txt names) at the versions installed there, and `install()` runs
`python -m pip install -r REQUIREMENTS -c CONSTRAINTS`, where the installer also lists the pins among the
requirements (so pip checks their own dependencies too), so pip either keeps them and what they need or
fails saying which requirement conflicts; it never quietly swaps the image's CUDA torch for another
build, nor a dependency of torch for a version torch does not accept.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nodekit.errors import RequirementsError

__all__ = ["PROTECTED", "TargetPython", "normalise", "read_requirements_text"]

logger = logging.getLogger(__name__)

# Always kept: a pack listing a bare `torch` must not re-resolve the image's build.
PROTECTED = ("torch", "torchvision", "torchaudio")
# pip enforces PEP 668 since 23.0 and learned --break-system-packages in 23.0.1: a 23.0 pip refuses an
# externally managed Python with no way round it; older pips do not enforce PEP 668 at all.
_ENFORCES_PEP_668_SINCE = (23, 0)
_BREAK_SYSTEM_PACKAGES_SINCE = (23, 0, 1)
# Byte order marks pip's own reader honours (pip._internal.utils.encoding.auto_decode), UTF-32 first:
# its little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_TAIL_LINES = 12

_PROBE = r"""
import importlib.metadata, json, os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
dists = {}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        dists.setdefault(name, dist.version)
print(json.dumps({
    "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "in_venv": sys.prefix != sys.base_prefix,
    "marker": marker if os.path.isfile(marker) else None,
    "distributions": dists,
}))
"""


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class TargetPython:
    """What pip needs to know about the Python it installs into.

    `externally_managed`: PEP 668's marker is in its stdlib folder and it is not a virtual environment
    (pip ignores the marker inside one, `pip._internal.utils.misc.check_externally_managed`).
    """

    executable: str
    version: str
    externally_managed: bool
    distributions: Mapping[str, str]  # normalised name -> installed version

    @classmethod
    def probe(cls, executable: str, *, pack: str) -> TargetPython:
        """Raises `RequirementsError` (for `pack`) when the interpreter cannot be run."""
        try:
            done = subprocess.run(
                [executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
            )
            facts = json.loads(done.stdout)
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
            raise RequirementsError(
                pack,
                python=executable,
                reason=f"the interpreter could not be run ({exc}); set COMFYUI_PYTHON to ComfyUI's Python",
            ) from exc
        return cls(
            executable=facts["executable"],
            version=facts["version"],
            externally_managed=bool(facts["marker"]) and not facts["in_venv"],
            distributions={normalise(k): v for k, v in facts["distributions"].items()},
        )

    @property
    def pip_version(self) -> tuple[int, ...] | None:
        version = self.distributions.get("pip")
        if version is None:
            return None
        return tuple(int(part) for part in re.findall(r"\d+", version)[:3])

    def pip_flags(self) -> list[str]:
        """`--break-system-packages` on an externally managed Python, as Cog's Dockerfile generator does
        for the uv-installed Pythons of its base images (replicate/cog pkg/dockerfile/standard_generator.go,
        `needsBreakSystemPackages` and `uvPipInstallFlags`): the image is the environment, there is no
        system package manager to defer to."""
        version = self.pip_version
        if self.externally_managed and version is not None and version >= _BREAK_SYSTEM_PACKAGES_SINCE:
            return ["--break-system-packages"]
        return []

    def constraints(self, comfyui_requirements: Path | None) -> list[str]:
        """`name==version` for every protected distribution installed here, sorted."""
        names = set(PROTECTED)
        if comfyui_requirements is not None and comfyui_requirements.is_file():
            names |= set(requirement_names(read_requirements_text(comfyui_requirements).splitlines()))
        return sorted(
            f"{name}=={self.distributions[key]}"
            for name in names
            if (key := normalise(name)) in self.distributions
        )

    def install(self, pack: str, requirements: Path, constraints: Path, *, cwd: Path) -> float:
        """`pip install -r requirements -c constraints` for `pack`; returns the seconds it took.

        pip's output goes to the debug log as it comes; on failure its last lines are in the
        `RequirementsError`.
        """
        self._check_pip(pack)
        command = [
            self.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            *self.pip_flags(),
            "-r",
            str(requirements),
            "-c",
            str(constraints),
        ]
        started = time.monotonic()
        last: deque[str] = deque(maxlen=_TAIL_LINES)
        with subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:  # as pip writes it: a long install is visible with -v
                if line.strip():
                    last.append(line.strip())
                    logger.debug("[pip %s] %s", pack, line.rstrip())
        if process.returncode != 0:
            tail = " | ".join(last)
            reason = _why(tail, marker_seen=self.externally_managed)
            raise RequirementsError(pack, python=self.executable, reason=reason, output_tail=tail)
        return time.monotonic() - started

    def _check_pip(self, pack: str) -> None:
        """Raises `RequirementsError` when this pip cannot install here at all, before running it."""
        version = self.pip_version
        if version is None:
            raise RequirementsError(
                pack,
                python=self.executable,
                reason="this Python has no pip (python -m ensurepip, or the distribution's python3-pip)",
            )
        if self.externally_managed and _ENFORCES_PEP_668_SINCE <= version < _BREAK_SYSTEM_PACKAGES_SINCE:
            raise RequirementsError(
                pack,
                python=self.executable,
                reason=(
                    f"it is externally managed (PEP 668) and its pip {'.'.join(map(str, version))} refuses "
                    "to install there but has no --break-system-packages (pip 23.0.1 added it); upgrade "
                    "that pip to 23.0.1 or later (with the distribution's package manager, since this pip "
                    "will not replace itself there), or set COMFYUI_PYTHON to a virtual environment's Python"
                ),
            )


def requirement_names(lines: Iterable[str]) -> list[str]:
    """Distribution names of requirement lines (comments, options and URLs skipped)."""
    names = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-") or "://" in text.split(";", 1)[0].split("@", 1)[0]:
            continue
        match = _NAME.match(text)
        if match:
            names.append(match.group(1))
    return names


def read_requirements_text(path: Path) -> str:
    """A requirements file as text: a byte order mark (UTF-16 files are common) picks the codec, as in
    pip; otherwise UTF-8, with undecodable bytes replaced (only names are read here, pip reads the file).
    Raises `OSError`."""
    data = path.read_bytes()
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


def _why(tail: str, *, marker_seen: bool) -> str:
    """pip's failure in a few words, from its last lines (`marker_seen`: PEP 668's marker was found)."""
    if "externally-managed-environment" in tail:
        if marker_seen:
            return "pip refused the externally managed Python (PEP 668) even with --break-system-packages"
        return "pip refused the externally managed Python (PEP 668) although no marker was seen"
    if "ResolutionImpossible" in tail or "conflicting dependencies" in tail or "constraint" in tail.lower():
        return (
            "a requirement conflicts with a distribution kept at the version ComfyUI's Python has "
            "(torch, torchvision, torchaudio and ComfyUI's own requirements are pip constraints)"
        )
    if "No matching distribution" in tail or "Could not find a version" in tail:
        return "no version of a requirement fits this Python and the kept distributions, or no index answered"
    return "pip failed"

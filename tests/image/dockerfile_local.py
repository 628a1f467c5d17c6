"""Cog's Dockerfile for this project, made buildable on a machine that reaches no image registry.

`cogbuild.render` writes what `cog build` writes. Building it here takes these departures, and no others
(`local_dockerfile` checks each line it touches is there exactly once, so a change in the render fails
here instead of being carried along silently):

1. `#syntax=docker/dockerfile:1.4` is dropped: it makes BuildKit pull the Dockerfile frontend from Docker
   Hub. Docker 20.10's built-in frontend runs every instruction used (`RUN --mount` bind, cache, secret).
2. `FROM r8.im/cog-base:…` names the local stand-in of that base image (`local_images.base_image`).
3. `COPY --from=ghcr.io/astral-sh/uv:0.9.26` names a local image holding the same uv release, from PyPI.
4. `cog_build` (Cog passes `.cog/build/` as a named build context, which Docker 20.10 lacks) is declared as
   a stage of a local image holding the same files: `FROM <cog-build image> AS cog_build`.
5. The requirements file Cog stages loses its `--extra-index-url https://download.pytorch.org/whl/cu128/`
   line: that host is not reachable here. PyPI's torch 2.9.1 is the same CUDA 12.8 build, and the base
   already has it installed, so pip takes nothing from either index for it.
6. Cog's second build, which only adds `.cog/openapi_schema.json` (`bundleDockerfile`), is its last step.

The image is built with `docker build --network host`: Cog builds on Docker's default bridge, which the
engine here does not have. Cog's labels (`run.cog.*`, pip freeze) are not added.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from cogbuild.config import CogConfig
from cogbuild.dockerfile import UV_VERSION, Rendered

__all__ = ["BAKE_KIT", "BAKE_MANIFEST", "LocalImages", "bake_config", "local_build_files", "local_dockerfile"]

PYTORCH_INDEX = re.compile(r"^--extra-index-url https://download\.pytorch\.org/whl/\S+$")
BAKE_KIT = "image-test"
BAKE_MANIFEST = "/src/.image-test/manifest.json"
# cog.yaml's commented production line: bake a kit's weights at build time.
BAKE_LINE = re.compile(
    r"^\s*#\s*-\s*(?P<mount>--mount=type=bind,source=\.,target=/tmp/project) (?P<cd>cd /tmp/project &&) "
    r"(?P<download>WEIGHTS_DIR=\S+ python -m weightkit download --kit) (?P<kit>\S+)\s*$",
    re.M,
)


@dataclass(frozen=True)
class LocalImages:
    base: str
    uv: str
    cog_build: str


def _replace_once(lines: list[str], old: str, new: str) -> None:
    hits = [i for i, line in enumerate(lines) if line.startswith(old)]
    if len(hits) != 1:
        raise ValueError(f"expected exactly one line starting {old!r} in Cog's Dockerfile, found {len(hits)}")
    lines[hits[0]] = new + lines[hits[0]][len(old) :]


def local_dockerfile(rendered: Rendered, images: LocalImages) -> str:
    """`rendered` with departures 1-4 and 6 (module docstring) applied, and a header naming them."""
    lines = rendered.dockerfile.splitlines()
    if lines[0] != "#syntax=docker/dockerfile:1.4":
        raise ValueError(f"Cog's Dockerfile starts with {lines[0]!r}, not its syntax line")
    del lines[0]
    _replace_once(lines, f"FROM {rendered.base_image}", f"FROM {images.base}")
    _replace_once(lines, f"COPY --from=ghcr.io/astral-sh/uv:{UV_VERSION} ", f"COPY --from={images.uv} ")
    header = [
        "# cog build's Dockerfile for this cog.yaml (cogbuild.render), adapted to build with no registry:",
        f"# FROM {rendered.base_image} and ghcr.io/astral-sh/uv:{UV_VERSION} are local images here,",
        "# cog_build is a stage, the syntax line is dropped, the schema bundle is the last step.",
        f"FROM {images.cog_build} AS cog_build",
    ]
    return "\n".join([*header, *lines, rendered.bundle_step]) + "\n"


def local_build_files(rendered: Rendered) -> dict[str, bytes]:
    """The `cog_build` files with departure 5: no download.pytorch.org index in requirements.txt."""
    files = dict(rendered.build_files)
    if "requirements.txt" in files:
        kept = [
            line for line in files["requirements.txt"].decode().split("\n") if not PYTORCH_INDEX.match(line)
        ]
        files["requirements.txt"] = "\n".join(kept).encode()
    return files


def bake_config(config: CogConfig, cog_yaml: Path) -> CogConfig:
    """`config` with cog.yaml's commented weight-baking line switched on for the test kit: the same mount,
    folder and `weightkit download`, run under `tests/image/bake_weights.py`, which serves the kit's weights
    from a loopback server for the length of that command and names its manifest."""
    match = BAKE_LINE.search(cog_yaml.read_text(encoding="utf-8"))
    if match is None:
        raise ValueError(f"{cog_yaml} has no commented weight-baking line of the form {BAKE_LINE.pattern}")
    command = (
        f"{match['mount']} {match['cd']} python tests/image/bake_weights.py --manifest {BAKE_MANIFEST} -- "
        f"env {match['download']} {BAKE_KIT}"
    )
    return dataclasses.replace(config, run=(*config.run, {"command": command}))

"""The model images of one base variant: cog.yaml as it is, and with its weight-baking line switched on.

Both come from `cogbuild.render` (Cog's Dockerfile) with the departures of `dockerfile_local`, built in
the project folder as `cog build` builds (`.dockerignore` applies), after writing the schema to
`.cog/openapi_schema.json` as `cog build` does before its build.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cogbuild import read_config, render, write_schema
from tests.image.dockerfile_local import LocalImages, bake_config, local_build_files, local_dockerfile
from tests.image.engine import DockerEngine
from tests.image.local_images import REPO, BaseImage, base_image, cog_build_image, uv_image

__all__ = ["ROOT", "ModelImages", "build_model_images"]

ROOT = Path(__file__).resolve().parents[2]


def image_id(engine: DockerEngine, tag: str) -> str | None:
    result = engine.run("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return result.stdout.decode().strip() or None


@dataclass(frozen=True)
class ModelImages:
    variant: str
    exact: str  # cog.yaml as it is
    baked: str  # cog.yaml with the weight-baking line on, for the test kit
    base: BaseImage
    dockerfiles: dict[str, str]  # the local Dockerfile of each, as built
    build_seconds: dict[str, float]
    warm_rebuild_seconds: float  # `exact` built again at once: every step cached
    log: Path


def build_model_images(engine: DockerEngine, variant: str, work: Path, ca_cert: bytes | None) -> ModelImages:
    log = work / f"build-{variant}.log"
    config = read_config(ROOT)
    base = base_image(engine, variant, work, log, ca_cert)
    uv = uv_image(engine, work, log)
    schema = write_schema(config.predict, ROOT).read_bytes()
    dockerfiles: dict[str, str] = {}
    seconds: dict[str, float] = {}
    tags = {}
    for name, cfg in (("exact", config), ("baked", bake_config(config, ROOT / "cog.yaml"))):
        rendered = render(cfg, ca_cert=ca_cert, externally_managed_python=variant == "externally-managed")
        files = local_build_files(rendered) | {"openapi_schema.json": schema}
        cog_build = cog_build_image(engine, files, f"{variant}-{name}", work, log)
        dockerfile = local_dockerfile(rendered, LocalImages(base=base.tag, uv=uv, cog_build=cog_build))
        tags[name] = f"{REPO}/model:{variant}-{name}"
        (work / f"Dockerfile.{variant}.{name}").write_text(dockerfile)
        dockerfiles[name] = dockerfile
        previous = image_id(engine, tags[name])
        seconds[name] = engine.build(ROOT, dockerfile, tags[name], log=log)
        if previous and previous != image_id(engine, tags[name]):
            engine.run("rmi", previous, check=False)  # the image this tag named before, now unused
    started = time.monotonic()
    engine.build(ROOT, dockerfiles["exact"], tags["exact"], log=log)
    warm = time.monotonic() - started
    return ModelImages(variant, tags["exact"], tags["baked"], base, dockerfiles, seconds, warm, log)

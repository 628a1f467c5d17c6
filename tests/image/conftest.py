"""The image test: opt-in (`make image-test`, IMAGE_TEST=1), since it needs Docker, root and minutes.

Under `make test` every test here is skipped. With IMAGE_TEST=1 the session uses (or starts) a Docker
engine with no container network, builds the model images of each base variant once, and prints the
figures it measured (image size, build times, time to READY, first prediction); IMAGE_TEST_REPORT names
a JSON file to write them to as well.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cogbuild.dockerfile import read_ca_cert
from tests.image.bake_weights import KIT
from tests.image.container import NO_PRELOAD, Container
from tests.image.dockerfile_local import BAKE_MANIFEST
from tests.image.engine import DockerEngine, docker_engine
from tests.image.local_images import VARIANTS, image_size
from tests.image.model_images import ModelImages, build_model_images
from tests.image.report import REPORT

BAKED_OPTIONS = (
    "--read-only", "--tmpfs", "/tmp",
    "-e", f"BASE_MODEL_KIT={KIT}", "-e", f"WEIGHTS_MANIFEST_EXTRA={BAKE_MANIFEST}",
    "-e", "WEIGHTS_STRICT=true",
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    enabled = os.environ.get("IMAGE_TEST") == "1"
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.image)
            if not enabled:
                item.add_marker(
                    pytest.mark.skip(reason="the image test runs with `make image-test` (Docker, root)")
                )


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-test")


@pytest.fixture(scope="session")
def engine(work: Path) -> Iterator[DockerEngine]:
    with docker_engine(work / "dockerd.log") as engine:
        yield engine


@pytest.fixture(scope="session")
def ca_cert() -> bytes | None:
    """COG_CA_CERT, as `cog build` reads it: a certificate the image needs to reach the package index."""
    value = os.environ.get("COG_CA_CERT", "").strip()
    return read_ca_cert(value) if value else None


@pytest.fixture(scope="session", params=VARIANTS)
def images(
    request: pytest.FixtureRequest, engine: DockerEngine, work: Path, ca_cert: bytes | None
) -> ModelImages:
    built = build_model_images(engine, request.param, work, ca_cert)
    figures = REPORT.setdefault(request.param, {})
    figures["base_image_build_s"] = round(built.base.seconds, 1)
    figures["model_image_build_s"] = {name: round(s, 1) for name, s in built.build_seconds.items()}
    figures["warm_rebuild_s"] = round(built.warm_rebuild_seconds, 1)
    figures["image_size_bytes"] = image_size(engine, built.exact)
    return built


@pytest.fixture
def container(engine: DockerEngine) -> Iterator[list[Container]]:
    """Containers a test starts (`container.start`); each is removed afterwards, whatever happened."""
    started: list[Container] = []
    yield started
    for each in started:
        each.remove()


@pytest.fixture(scope="session")
def exact_container(engine: DockerEngine, images: ModelImages) -> Iterator[Container]:
    """The image of cog.yaml as it is, READY, with no network and no preload (its default kit cannot be
    fetched here). Shared by the tests that only post to it or look into it; its time to READY is
    reported."""
    running = Container(engine, images.exact, NO_PRELOAD)
    try:
        running.start()
        status, ready_s = running.wait_setup()
        assert status == "READY", running.logs()[-4000:]
        REPORT.setdefault(images.variant, {})["docker_run_to_ready_s"] = round(ready_s, 2)
        yield running
    finally:
        running.remove()


@pytest.fixture(scope="session")
def baked_container(engine: DockerEngine, images: ModelImages) -> Iterator[Container]:
    """The baked image run as production would run it, READY: root file system read-only, the test kit
    preloaded from the image, WEIGHTS_STRICT=true, no network. Shared by the tests that only post to it."""
    running = Container(engine, images.baked, BAKED_OPTIONS)
    try:
        running.start()
        status, _ = running.wait_setup()
        assert status == "READY", running.logs()[-4000:]
        yield running
    finally:
        running.remove()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("image test figures")
    for variant, figures in REPORT.items():
        terminalreporter.write_line(f"{variant}: {json.dumps(figures)}")
    if path := os.environ.get("IMAGE_TEST_REPORT"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(REPORT, indent=2) + "\n")

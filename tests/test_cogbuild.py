"""cogbuild renders what `cog build` renders (replicate/cog pkg/dockerfile at 6110c912) for this cog.yaml,
and the image test departs from it only in the lines it names (tests/image/dockerfile_local.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cogbuild import read_config, render
from cogbuild.config import ConfigError
from cogbuild.dockerfile import read_ca_cert, requirements_txt
from tests.image.dockerfile_local import (
    BAKE_KIT,
    LocalImages,
    bake_config,
    local_build_files,
    local_dockerfile,
)

ROOT = Path(__file__).resolve().parent.parent
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# What Cog's StandardGenerator writes for this cog.yaml on its cog-base image (GenerateInitialSteps +
# GenerateModelBase + GenerateDockerfileWithoutSeparateWeights), read off the Go source.
COGS_DOCKERFILE = """\
#syntax=docker/dockerfile:1.4
FROM r8.im/cog-base:cuda12.8-python3.11-torch2.9.1
ENV BASE_MODEL_KIT=sd15 COMFYUI_PATH=/src/ComfyUI WEIGHTS_DIR=/src/weights
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked apt-get update -qq && apt-get install -qqy  && rm -rf /var/lib/apt/lists/*
COPY --from=ghcr.io/astral-sh/uv:0.9.26 /uv /uvx /usr/local/bin/
ENV UV_SYSTEM_PYTHON=true
COPY --from=cog_build requirements.txt /tmp/requirements.txt
ENV CFLAGS="-O3 -funroll-loops -fno-strict-aliasing -flto -S"
RUN --mount=type=cache,target=/root/.cache/pip uv run pip install --cache-dir /root/.cache/pip -r /tmp/requirements.txt
ENV CFLAGS=
ENV CFLAGS="-O3 -funroll-loops -fno-strict-aliasing -flto -S"
RUN --mount=type=cache,target=/root/.cache/uv uv pip install --no-cache cog==0.23.1
ENV CFLAGS=
RUN --mount=type=bind,source=scripts/install_comfyui.sh,target=/tmp/install_comfyui.sh PYTHON=python bash /tmp/install_comfyui.sh /src/ComfyUI
RUN --mount=type=bind,source=.,target=/tmp/project cd /tmp/project && COMFYUI_PATH=/src/ComfyUI COMFYUI_PYTHON=python python -m nodekit install
WORKDIR /src
EXPOSE 5000
ENV COG_PREDICT_TYPE_STUB="predict.py:Predictor"
CMD ["python", "-m", "cog.server.http"]
COPY . /src
"""  # noqa: E501


def config(**changes):
    return dataclasses.replace(read_config(ROOT), **changes)


def test_the_dockerfile_is_cogs_for_this_cog_yaml():
    rendered = render(read_config(ROOT))
    assert rendered.dockerfile == COGS_DOCKERFILE
    assert rendered.bundle_step == "COPY --from=cog_build openapi_schema.json .cog/"


def test_requirements_take_the_cuda_index_of_the_pinned_torch_and_lose_cog():
    text = requirements_txt(
        config(requirements=("cog==0.23.1", "torch==2.9.1", "Pillow>=10.1", "torchvision==0.24.1"))
    )
    assert text.split("\n") == [
        "--extra-index-url https://download.pytorch.org/whl/cu128/",
        "torch==2.9.1",
        "Pillow>=10.1",
        "torchvision==0.24.1",
    ]
    assert requirements_txt(config(cuda="12.6")).startswith(
        "--extra-index-url https://download.pytorch.org/whl/cu126/"
    )


def test_a_python_uv_installed_gets_break_system_packages_on_every_install_and_a_python_alias():
    plain = render(config()).dockerfile
    assert "--break-system-packages" not in plain and "ln -sf /usr/bin/python3" not in plain
    # Cog's rule: CUDA 13+ cog-base images have uv's (externally managed) Python; or say so explicitly.
    for rendered in (render(config(cuda="13.0")), render(config(), externally_managed_python=True)):
        assert "uv run pip install --break-system-packages --cache-dir" in rendered.dockerfile
        assert "uv pip install --break-system-packages --no-cache cog==0.23.1" in rendered.dockerfile
        assert "\nRUN ln -sf /usr/bin/python3 /usr/local/bin/python\n" in rendered.dockerfile


def test_a_ca_certificate_is_installed_before_anything_reaches_the_network(tmp_path):
    (tmp_path / "a.crt").write_text(CERT)
    (tmp_path / "notes.txt").write_text("not a certificate")
    rendered = render(read_config(ROOT), ca_cert=read_ca_cert(str(tmp_path)))
    lines = rendered.dockerfile.splitlines()
    assert lines[2] == "COPY --from=cog_build cog-ca-cert.crt /tmp/cog-ca-cert.crt"
    assert lines[3].startswith("RUN cp /tmp/cog-ca-cert.crt /usr/local/share/ca-certificates/cog-ca-cert.crt")
    assert lines[4:6] == [
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    ]
    assert rendered.build_files["cog-ca-cert.crt"] == CERT.encode()
    with pytest.raises(ConfigError, match="COG_CA_CERT"):
        read_ca_cert(str(tmp_path / "notes.txt"))


def test_run_items_are_copied_after_run_as_written_with_only_secret_mounts_added():
    items = (
        {"command": "echo a"},
        {"command": "cat /run/s", "mounts": [{"type": "secret", "id": "s", "target": "/run/s"}]},
    )
    dockerfile = render(config(run=items)).dockerfile
    assert "\nRUN echo a\nRUN --mount=type=secret,id=s,target=/run/s cat /run/s\n" in dockerfile
    with pytest.raises(ConfigError, match="new line"):
        render(config(run=({"command": "echo a\necho b"},)))


def test_cog_yaml_keys_cogbuild_does_not_follow_are_refused(tmp_path):
    (tmp_path / "cog.yaml").write_text(
        "build:\n  python_version: '3.11'\npredict: p.py:P\nconcurrency:\n  max: 2\n"
    )
    with pytest.raises(ConfigError, match="concurrency"):
        read_config(tmp_path)


def test_the_local_dockerfile_departs_from_cogs_only_in_the_named_lines():
    rendered = render(read_config(ROOT))
    images = LocalImages(base="local/base:1", uv="local/uv:1", cog_build="local/cog-build:1")
    local = local_dockerfile(rendered, images).splitlines()
    cogs = rendered.dockerfile.splitlines()
    assert [line for line in local if line.startswith("#")] == local[:3]
    assert local[3] == "FROM local/cog-build:1 AS cog_build"
    assert local[4] == "FROM local/base:1" and local[-1] == "COPY --from=cog_build openapi_schema.json .cog/"
    body = local[5:-1]
    assert body == [line.replace("ghcr.io/astral-sh/uv:0.9.26", "local/uv:1") for line in cogs[2:]]
    requirements = local_build_files(rendered)["requirements.txt"].decode()
    assert requirements == rendered.build_files["requirements.txt"].decode().split("\n", 1)[1]


def test_the_bake_line_is_cog_yamls_commented_one_switched_on_for_the_test_kit():
    baked = bake_config(read_config(ROOT), ROOT / "cog.yaml")
    (command,) = [item["command"] for item in baked.run if "weightkit download" in item["command"]]
    assert command.startswith("--mount=type=bind,source=.,target=/tmp/project cd /tmp/project && ")
    assert command.endswith(f"-- env WEIGHTS_DIR=/src/weights python -m weightkit download --kit {BAKE_KIT}")
    assert "# - " + command.split(" python tests/image")[0] in (ROOT / "cog.yaml").read_text()

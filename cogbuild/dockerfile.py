"""The Dockerfile `cog build` generates for a cog.yaml, line for line.

Followed: replicate/cog `pkg/dockerfile/standard_generator.go` at commit 6110c912 (2026-08-21), the path a
build takes when a cog-base image exists for the CUDA/Python/torch it asks for (`IsUsingCogBaseImage`,
the default): `GenerateInitialSteps` (FROM, CA certificate, ENV from `environment:`, system packages not
already in the base, uv, the user's requirements, the cog SDK, `build.run` verbatim), then
`GenerateModelBase` (WORKDIR /src, EXPOSE 5000, COG_PREDICT_TYPE_STUB, CMD) and
`GenerateDockerfileWithoutSeparateWeights` (COPY . /src). `pkg/image/build.go` then bundles the schema
in a second build (`bundleDockerfile`): `COPY --from=cog_build openapi_schema.json .cog/`.

Files Cog stages in `.cog/build/` (the `cog_build` build context) are returned in `Rendered.build_files`.
Nothing here changes what Cog would write; a local build's departures (no registry) are made, and named,
by whoever builds it (tests/image/dockerfile_local.py).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cogbuild.config import CogConfig, ConfigError, package_name

__all__ = [
    "BASE_IMAGE_SYSTEM_PACKAGES",
    "UV_VERSION",
    "Rendered",
    "read_ca_cert",
    "render",
    "requirements_txt",
]

UV_VERSION = "0.9.26"
CFLAGS = 'ENV CFLAGS="-O3 -funroll-loops -fno-strict-aliasing -flto -S"'
CA_CERT_FILENAME = "cog-ca-cert.crt"
SYSTEM_CERT_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# What every cog-base image has installed (base.go baseImageSystemPackages); cog build leaves these out.
BASE_IMAGE_SYSTEM_PACKAGES = (
    "build-essential", "cmake", "curl", "ffmpeg", "findutils", "g++", "gcc", "git", "libavcodec-dev",
    "libcairo2-dev", "libfontconfig1", "libgirepository1.0-dev", "libgl1", "libglx-mesa0", "libglib2.0-0",
    "libopencv-dev", "libsm6", "libsndfile1", "libssl-dev", "libunistring-dev", "libxext6", "libxrender1",
    "sox", "unzip", "wget", "zip", "zstd",
)  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    """A model image's Dockerfile, the step Cog's second (bundle) build adds on top of it, and what the
    `cog_build` context holds."""

    dockerfile: str
    bundle_step: str
    build_files: dict[str, bytes] = field(default_factory=dict)
    base_image: str = ""


def _version_at_least(version: str | None, floor: str) -> bool:
    if not version:
        return False
    have = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    return have >= tuple(int(p) for p in floor.split("."))


def requirements_txt(config: CogConfig) -> str:
    """The requirements Cog writes for the image (`PythonRequirementsForArch` + `filterManagedPackages`):
    pins of torch and torchvision resolved to the matrix row's index, index options first, cog and coglet
    dropped (Cog installs the SDK itself), other lines as written. (Cog also rewrites other `name==version`
    lines that carry their own index options or markers; this project's requirements have none.)"""
    wheel = config.torch_wheel()
    indexes: list[str] = []
    packages: list[str] = []
    for line in config.requirements:
        name = package_name(line)
        pinned = re.match(r"^([a-zA-Z0-9\-_]+)==([^ ]+)", line)
        if pinned and name in ("torch", "torchvision") and wheel is not None:
            line = f"{name}=={pinned.group(2)}"
            if wheel.extra_index_url not in indexes:
                indexes.append(wheel.extra_index_url)
        if name.lower().split("[")[0] in ("cog", "coglet") and not line.startswith("-"):
            continue
        packages.append(line)
    return "\n".join([f"--extra-index-url {url}" for url in indexes] + packages)


def read_ca_cert(value: str) -> bytes:
    """COG_CA_CERT as Cog reads it (`cacert.go ReadCACert`): a file, a folder of *.crt/*.pem, inline or
    base64 PEM. Raises ConfigError naming what was wrong."""
    value = value.strip()
    path = Path(value)
    if path.is_dir():
        parts = [p.read_text() for p in sorted(path.iterdir()) if p.suffix.lower() in (".crt", ".pem")]
        if not parts:
            raise ConfigError(f"COG_CA_CERT: no .crt or .pem files found in directory {value}")
        text = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    elif path.is_file():
        text = path.read_text()
    elif value.startswith("-----BEGIN"):
        text = value
    else:
        try:
            text = base64.b64decode(value, validate=True).decode()
        except ValueError:
            text = ""
    text = text.strip()
    if not text.startswith("-----BEGIN CERTIFICATE-----") or "-----END CERTIFICATE-----" not in text:
        raise ConfigError("COG_CA_CERT: invalid value - must be a file path, directory, PEM or base64 PEM")
    return (text + "\n").encode()


def _ca_cert_lines(ca_cert: bytes | None, files: dict[str, bytes]) -> list[str]:
    if not ca_cert:
        return []
    files[CA_CERT_FILENAME] = ca_cert
    return [
        f"COPY --from=cog_build {CA_CERT_FILENAME} /tmp/{CA_CERT_FILENAME}",
        f"RUN cp /tmp/{CA_CERT_FILENAME} /usr/local/share/ca-certificates/{CA_CERT_FILENAME} && "
        f"update-ca-certificates && cat /tmp/{CA_CERT_FILENAME} >> {SYSTEM_CERT_BUNDLE}",
        f"ENV SSL_CERT_FILE={SYSTEM_CERT_BUNDLE}",
        f"ENV REQUESTS_CA_BUNDLE={SYSTEM_CERT_BUNDLE}",
    ]


def _apt_line(config: CogConfig) -> list[str]:
    if not config.system_packages:
        return []
    missing = [p for p in config.system_packages if p not in BASE_IMAGE_SYSTEM_PACKAGES]
    return [
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked apt-get update -qq && "
        "apt-get install -qqy " + " ".join(missing) + " && rm -rf /var/lib/apt/lists/*"
    ]


def _run_lines(config: CogConfig) -> list[str]:
    lines = []
    for item in config.run:
        command = str(item["command"]).strip()
        if "\n" in command:
            raise ConfigError(f"a build.run command contains a new line, which Cog refuses: {command}")
        mounts = [
            f"--mount=type=secret,id={m['id']},target={m['target']}"
            for m in item.get("mounts") or []
            if m.get("type") == "secret"
        ]
        lines.append("RUN " + " ".join([*mounts, command]) if mounts else "RUN " + command)
    return lines


def _env_line(config: CogConfig) -> list[str]:
    """`envLineFromConfig`: one ENV line, names sorted, values as written."""
    if not config.environment:
        return []
    return ["ENV" + "".join(f" {name}={config.environment[name]}" for name in sorted(config.environment))]


def _requirements_lines(config: CogConfig, flags: str, files: dict[str, bytes]) -> list[str]:
    """`pipInstalls`: the staged requirements file, installed by pip under uv."""
    requirements = requirements_txt(config)
    if not requirements.strip():
        return []
    files["requirements.txt"] = requirements.encode()
    return [
        "COPY --from=cog_build requirements.txt /tmp/requirements.txt",
        CFLAGS,
        "RUN --mount=type=cache,target=/root/.cache/pip uv run pip install "
        f"{flags}--cache-dir /root/.cache/pip -r /tmp/requirements.txt",
        "ENV CFLAGS=",
    ]


def _cog_sdk(config: CogConfig, flags: str) -> str:
    version = config.sdk_version
    spec = f"cog=={version}" if version else "cog"
    pre = "--pre " if version and re.search(r"\d(a|b|rc|\.dev)\d", version) else ""
    return f"RUN --mount=type=cache,target=/root/.cache/uv uv pip install {flags}{pre}--no-cache {spec}"


def render(
    config: CogConfig,
    *,
    ca_cert: bytes | None = None,
    externally_managed_python: bool | None = None,
) -> Rendered:
    """The Dockerfile of `cog build` for `config` on its cog-base image.

    `externally_managed_python`: the base's Python is marked externally managed (PEP 668), as in Cog's
    CUDA 13+ bases where uv installs Python; Cog then adds `--break-system-packages` to every install and a
    `python` alias (`needsBreakSystemPackages`, `installPythonAlias`). Default: Cog's own rule, CUDA >= 13.
    """
    if not config.predict:
        raise ConfigError("cog.yaml has no predict: entry; cog build needs one to write the schema.")
    managed = (
        _version_at_least(config.cuda, "13.0")
        if externally_managed_python is None
        else bool(externally_managed_python)
    )
    flags = "--break-system-packages " if managed else ""
    files: dict[str, bytes] = {}
    base_image = config.cog_base_image()
    lines = [
        "#syntax=docker/dockerfile:1.4",
        f"FROM {base_image}",
        *_ca_cert_lines(ca_cert, files),
        *_env_line(config),
        *_apt_line(config),
        f"COPY --from=ghcr.io/astral-sh/uv:{UV_VERSION} /uv /uvx /usr/local/bin/",
        "ENV UV_SYSTEM_PYTHON=true",
        *(["RUN ln -sf /usr/bin/python3 /usr/local/bin/python"] if managed else []),
        *_requirements_lines(config, flags, files),
        CFLAGS,
        _cog_sdk(config, flags),
        "ENV CFLAGS=",
        *_run_lines(config),
        "WORKDIR /src",
        "EXPOSE 5000",
        f'ENV COG_PREDICT_TYPE_STUB="{config.predict}"',
        "CMD " + json.dumps(["python", "-m", "cog.server.http"]),
        "COPY . /src",
    ]
    return Rendered(
        dockerfile="\n".join(lines) + "\n",
        bundle_step="COPY --from=cog_build openapi_schema.json .cog/",
        build_files=files,
        base_image=base_image,
    )

"""The images `cog build` would pull from registries, made on this machine from Debian's and PyPI's packages.

- a Debian rootfs (`debootstrap`, then `docker import`);
- the stand-in for Cog's base image `r8.im/cog-base:cuda12.8-python3.11-torch2.9.1`, made the way Cog's
  base generator makes one (`pkg/dockerfile/base.go`: CA certificate, Cog's preamble ENV, tini, the
  system packages, Python, then torch, torchvision, torchaudio and opencv-python at the versions
  `BaseImageGenerator.pythonPackages` pins) plus what the build fetches from GitHub, as local mirrors
  (`mirrors.py`): "ComfyUI" (the project's stand-in), which `scripts/install_comfyui.sh` is pointed at
  with `COMFYUI_REPO`/`COMFYUI_COMMIT`, and two tiny custom node packs (`node_packs.py`), which
  `python -m nodekit install` is pointed at with `CUSTOM_NODES_GIT_BASE` and a lock pinning them
  (`CUSTOM_NODES_LOCK`);
- uv 0.9.26 (Cog copies it from `ghcr.io/astral-sh/uv:0.9.26`), from PyPI's `uv` wheel;
- the `cog_build` context (`.cog/build/`) as an image, since Docker 20.10 has no named build contexts.

Every tag is named by a hash of what goes into the image, so an image is made once per machine and
reused until its inputs change. Python in the base is Debian's 3.11, which Debian marks externally
managed (PEP 668): the `externally-managed` variant keeps the mark, as Cog's uv-installed Pythons have
it; the `cog-base` variant removes it, as on the CUDA 12 cog-base images (Python not managed by uv).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cogbuild.dockerfile import UV_VERSION
from tests.image.engine import DockerEngine
from tests.image.mirrors import make_comfyui_mirror, make_pack_mirrors
from tests.image.node_packs import lock_text

__all__ = [
    "VARIANTS",
    "BaseImage",
    "base_image",
    "cog_build_image",
    "rootfs_image",
    "uv_image",
]

SUITE = "bookworm"
DEBIAN = "http://deb.debian.org/debian"
REPO = "cog-comfyui-local"
VARIANTS = ("cog-base", "externally-managed")
# The torch set of the cog-base image for torch 2.9.1 (base.go pythonPackages), as cog.yaml pins it.
BASE_PYTHON_PACKAGES = (
    "torch==2.9.1",
    "opencv-python==4.12.0.88",
    "torchvision==0.24.1",
    "torchaudio==2.9.1",
)
# Of Cog's base system packages (base.go baseImageSystemPackages): those this cog.yaml relies on and the
# small runtime ones; not the compilers and -dev libraries.
BASE_SYSTEM_PACKAGES = (
    "curl", "ffmpeg", "findutils", "git", "libgl1", "libglib2.0-0", "libsm6", "libsndfile1", "libxext6",
    "libxrender1", "sox", "unzip", "wget", "zip", "zstd",
)  # fmt: skip
MIRROR_PATH = "/opt/mirrors/ComfyUI.git"
PACKS_MIRROR = "/opt/mirrors/custom_nodes"  # CUSTOM_NODES_GIT_BASE: <owner>/<name>.git under it
TEST_LOCK = "/opt/image-test/custom_nodes.json"  # CUSTOM_NODES_LOCK


def content_tag(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:12]


def rootfs_image(engine: DockerEngine, log: Path) -> str:
    """A minimal Debian rootfs as an image (`debootstrap --variant=minbase`, then `docker import`)."""
    tag = f"{REPO}/debian:{SUITE}-minbase-{content_tag(SUITE, DEBIAN, 'minbase', 'ca-certificates')}"
    if engine.image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="rootfs-") as work:
        target = Path(work) / "rootfs"
        with open(log, "ab") as out:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(target), DEBIAN],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1800,
            )
        tar = subprocess.run(["tar", "-C", str(target), "-c", "."], check=True, capture_output=True).stdout
        engine.run("import", "-", tag, input=tar)
    return tag


@dataclass(frozen=True)
class BaseImage:
    tag: str
    mirror_commit: str  # ComfyUI's
    pack_commits: dict[str, str]  # the test lock's, by pack name
    seconds: float  # 0 when it was already on this machine


def _ca_lines(ca_cert: bytes | None) -> list[str]:
    if not ca_cert:
        return []
    return [
        "COPY cog-ca-cert.crt /tmp/cog-ca-cert.crt",
        "RUN cp /tmp/cog-ca-cert.crt /usr/local/share/ca-certificates/cog-ca-cert.crt && "
        "update-ca-certificates && cat /tmp/cog-ca-cert.crt >> /etc/ssl/certs/ca-certificates.crt",
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    ]


def base_dockerfile(rootfs: str, variant: str, mirror_commit: str, ca_cert: bytes | None) -> str:
    apt = " ".join(("tini", "python3", "python3-pip", "python-is-python3", *BASE_SYSTEM_PACKAGES))
    lines = [
        f"FROM {rootfs}",
        *_ca_lines(ca_cert),
        "ENV DEBIAN_FRONTEND=noninteractive",
        "ENV PYTHONUNBUFFERED=1",
        "ENV LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:"
        "/usr/local/nvidia/bin",
        "ENV NVIDIA_DRIVER_CAPABILITIES=all",
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked apt-get update -qq && "
        f"apt-get install -qqy --no-install-recommends {apt} && rm -rf /var/lib/apt/lists/* && "
        "ln -sf /usr/bin/tini /sbin/tini",
        "RUN --mount=type=cache,target=/root/.cache/pip pip install --break-system-packages "
        f"--cache-dir /root/.cache/pip {' '.join(BASE_PYTHON_PACKAGES)}",
        'ENTRYPOINT ["/sbin/tini", "--"]',
    ]
    if variant == "cog-base":
        lines.append("RUN rm /usr/lib/python3.*/EXTERNALLY-MANAGED")
    lines += [
        f"COPY ComfyUI.git {MIRROR_PATH}",
        f"ENV COMFYUI_REPO={MIRROR_PATH} COMFYUI_COMMIT={mirror_commit}",
        f"COPY custom_nodes {PACKS_MIRROR}",
        f"COPY custom_nodes.json {TEST_LOCK}",
        f"ENV CUSTOM_NODES_GIT_BASE={PACKS_MIRROR} CUSTOM_NODES_LOCK={TEST_LOCK}",
    ]
    return "\n".join(lines) + "\n"


def base_image(engine: DockerEngine, variant: str, work: Path, log: Path, ca_cert: bytes | None) -> BaseImage:
    """The cog-base stand-in of `variant` (see VARIANTS), built if this machine does not have it yet."""
    rootfs = rootfs_image(engine, log)
    context = work / f"base-{variant}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    commit = make_comfyui_mirror(context / "ComfyUI.git")
    packs = make_pack_mirrors(context / "custom_nodes")
    lock = lock_text(packs)
    (context / "custom_nodes.json").write_text(lock)
    dockerfile = base_dockerfile(rootfs, variant, commit, ca_cert)
    inputs = content_tag(dockerfile, ca_cert or b"", lock)
    tag = f"{REPO}/cog-base:cuda12.8-python3.11-torch2.9.1-{variant}-{inputs}"
    if engine.image_exists(tag):
        return BaseImage(tag, commit, packs, 0.0)
    if ca_cert:
        (context / "cog-ca-cert.crt").write_bytes(ca_cert)
    seconds = engine.build(context, dockerfile, tag, log=log)
    prune(engine, f"{REPO}/cog-base", keep=tag, like=f"-{variant}-")
    return BaseImage(tag, commit, packs, seconds)


def uv_image(engine: DockerEngine, work: Path, log: Path) -> str:
    """`/uv` and `/uvx` of uv's release, as in its registry image, taken from PyPI's wheel."""
    tag = f"{REPO}/uv:{UV_VERSION}"
    if engine.image_exists(tag):
        return tag
    context = work / "uv"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    wheels = work / "uv-wheel"
    subprocess.run(
        [
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(wheels),
            f"uv=={UV_VERSION}",
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob(f"uv-{UV_VERSION}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in ("uv", "uvx"):
            (context / name).write_bytes(archive.read(f"uv-{UV_VERSION}.data/scripts/{name}"))
            (context / name).chmod(0o755)
    engine.build(context, "FROM scratch\nCOPY uv uvx /\n", tag, log=log)
    return tag


def cog_build_image(engine: DockerEngine, files: dict[str, bytes], label: str, work: Path, log: Path) -> str:
    """The files Cog stages in `.cog/build/` (its `cog_build` build context), as a FROM-scratch image;
    `label` names which model image it is for (older ones of that label are removed)."""
    names = sorted(files)
    tag = f"{REPO}/cog-build:{content_tag(*names, *(files[n] for n in names))}-{label}"
    if engine.image_exists(tag):
        return tag
    context = work / f"cog-build-{tag.rsplit(':', 1)[1]}"
    context.mkdir(parents=True, exist_ok=True)
    for name in names:
        (context / name).write_bytes(files[name])
    engine.build(context, "FROM scratch\nCOPY . /\n", tag, log=log, network="none")
    prune(engine, f"{REPO}/cog-build", keep=tag, like=f"-{label}")
    return tag


def prune(engine: DockerEngine, repository: str, *, keep: str, like: str = "") -> None:
    """Remove the tags of `repository` containing `like`, except `keep`: images made from older inputs
    (their layers stay while another image uses them)."""
    listed = engine.text("images", "--format", "{{.Repository}}:{{.Tag}}", repository).split()
    stale = [tag for tag in listed if tag != keep and like in tag]
    if stale:
        engine.run("rmi", *stale, check=False)


def image_size(engine: DockerEngine, tag: str) -> int:
    return int(engine.text("image", "inspect", "--format", "{{.Size}}", tag))

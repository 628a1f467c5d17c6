"""ComfyUI's command line, flag for flag (v0.3.64, `comfy/cli_args.py`): the stand-in starts like a checkout.

Every flag of that version is accepted with the same name, type, default and arity, so a command line
written for real ComfyUI works here unchanged and a mistyped flag fails the same way (argparse, exit 2).
Flags about GPUs, precision, attention kernels or the front end have no effect on a CPU-only server
without models and are accepted as no-ops. `--cache-lru` changes which outputs are reused between
prompts and is not implemented, so it is refused rather than ignored.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

HASH_FUNCTIONS = ("md5", "sha1", "sha256", "sha512")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")
FAST_FEATURES = ("fp16_accumulation", "fp8_matrix_mult", "cublas_ops", "autotune")


def _existing_directory(path: str) -> str:
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"The path '{path}' does not exist.")
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is not a directory.")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"You do not have read permissions for '{path}'.")
    return path


def _switches(group: argparse._ActionsContainer, *names: str) -> None:
    for name in names:
        group.add_argument(name, action="store_true")


def build_parser() -> argparse.ArgumentParser:
    """The parser, with ComfyUI's flags in ComfyUI's order; the stand-in's own meaning is noted where it
    differs."""
    p = argparse.ArgumentParser(description="ComfyUI stand-in: ComfyUI's HTTP and websocket API for tests.")
    _add_server_flags(p)
    _add_directory_flags(p)
    _switches(p, "--auto-launch", "--disable-auto-launch")  # opening a browser: no effect here
    _add_device_and_precision_flags(p)
    _add_preview_and_cache_flags(p)
    _add_attention_and_memory_flags(p)
    _add_node_and_logging_flags(p)
    _add_front_end_and_service_flags(p)
    return p


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="IP",
        nargs="?",
        const="0.0.0.0,::",
        help="address(es) to listen on, comma separated; bare --listen means all interfaces",
    )
    p.add_argument("--port", type=int, default=8188, help="port to listen on")
    p.add_argument("--tls-keyfile", help="TLS key file (with --tls-certfile: serve https)")
    p.add_argument("--tls-certfile", help="TLS certificate file (with --tls-keyfile: serve https)")
    p.add_argument(
        "--enable-cors-header",
        default=None,
        metavar="ORIGIN",
        nargs="?",
        const="*",
        help="no effect here: the stand-in has no browser-facing middlewares",
    )
    p.add_argument("--max-upload-size", type=float, default=100, help="largest request body, in MB")


def _add_directory_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-directory", help="base for models/, input/, output/, temp/ and user/")
    p.add_argument(
        "--extra-model-paths-config",
        metavar="PATH",
        nargs="+",
        action="append",
        help="extra_model_paths.yaml file(s) to load; repeatable",
    )
    p.add_argument("--output-directory", help="output directory (overrides --base-directory)")
    p.add_argument("--temp-directory", help="the temp directory is <this>/temp (overrides --base-directory)")
    p.add_argument("--input-directory", help="input directory (overrides --base-directory)")


def _add_device_and_precision_flags(p: argparse.ArgumentParser) -> None:
    """GPUs and number formats: accepted, no effect on a CPU-only server without models."""
    p.add_argument("--cuda-device", type=int, default=None, metavar="DEVICE_ID")
    p.add_argument("--default-device", type=int, default=None, metavar="DEFAULT_DEVICE_ID")
    _switches(p.add_mutually_exclusive_group(), "--cuda-malloc", "--disable-cuda-malloc")
    _switches(p.add_mutually_exclusive_group(), "--force-fp32", "--force-fp16")
    _switches(
        p.add_mutually_exclusive_group(),
        "--fp32-unet",
        "--fp64-unet",
        "--bf16-unet",
        "--fp16-unet",
        "--fp8_e4m3fn-unet",
        "--fp8_e5m2-unet",
        "--fp8_e8m0fnu-unet",
    )
    _switches(p.add_mutually_exclusive_group(), "--fp16-vae", "--fp32-vae", "--bf16-vae")
    _switches(p, "--cpu-vae")
    _switches(
        p.add_mutually_exclusive_group(),
        "--fp8_e4m3fn-text-enc",
        "--fp8_e5m2-text-enc",
        "--fp16-text-enc",
        "--fp32-text-enc",
        "--bf16-text-enc",
    )
    _switches(p, "--force-channels-last")
    p.add_argument("--directml", type=int, nargs="?", metavar="DIRECTML_DEVICE", const=-1)
    p.add_argument("--oneapi-device-selector", default=None, metavar="SELECTOR_STRING")
    _switches(p, "--disable-ipex-optimize", "--supports-fp8-compute")


def _add_preview_and_cache_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preview-method", default="none", choices=PREVIEW_METHODS, metavar=f"[{','.join(PREVIEW_METHODS)}]"
    )
    p.add_argument("--preview-size", type=int, default=512)
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true", help="keep outputs of the last prompt's nodes")
    cache.add_argument("--cache-lru", type=int, default=0, help="not supported by the stand-in")
    cache.add_argument("--cache-none", action="store_true", help="re-execute every node of every prompt")


def _add_attention_and_memory_flags(p: argparse.ArgumentParser) -> None:
    """Attention kernels and memory placement (no-ops here), with the upload hash among them, as in
    ComfyUI's list."""
    _switches(
        p.add_mutually_exclusive_group(),
        "--use-split-cross-attention",
        "--use-quad-cross-attention",
        "--use-pytorch-cross-attention",
        "--use-sage-attention",
        "--use-flash-attention",
    )
    _switches(p, "--disable-xformers")
    _switches(p.add_mutually_exclusive_group(), "--force-upcast-attention", "--dont-upcast-attention")
    _switches(
        p.add_mutually_exclusive_group(),
        "--gpu-only",
        "--highvram",
        "--normalvram",
        "--lowvram",
        "--novram",
        "--cpu",
    )
    p.add_argument("--reserve-vram", type=float, default=None)
    _switches(p, "--async-offload", "--force-non-blocking")
    p.add_argument(
        "--default-hashing-function",
        choices=HASH_FUNCTIONS,
        default="sha256",
        help="hash used to recognise an uploaded image that is already there",
    )
    _switches(p, "--disable-smart-memory", "--deterministic")
    p.add_argument("--fast", nargs="*", choices=FAST_FEATURES)
    _switches(p, "--mmap-torch-files", "--disable-mmap")


def _add_node_and_logging_flags(p: argparse.ArgumentParser) -> None:
    """How it starts, which node classes it loads, and how it logs."""
    p.add_argument("--dont-print-server", action="store_true", help="do not log the server start lines")
    p.add_argument("--quick-test-for-ci", action="store_true", help="set everything up, then exit 0")
    p.add_argument("--windows-standalone-build", action="store_true")
    p.add_argument("--disable-metadata", action="store_true", help="save PNGs without the prompt in them")
    p.add_argument("--disable-all-custom-nodes", action="store_true", help="drop SaveImageWebsocket")
    p.add_argument("--whitelist-custom-nodes", nargs="+", default=[])
    p.add_argument("--disable-api-nodes", action="store_true", help="drop the comfy_api_nodes classes")
    p.add_argument("--multi-user", action="store_true")
    p.add_argument(
        "--verbose", default="INFO", const="DEBUG", nargs="?", choices=LOG_LEVELS, help="log level"
    )
    p.add_argument("--log-stdout", action="store_true", help="log to stdout (errors still to stderr)")


def _add_front_end_and_service_flags(p: argparse.ArgumentParser) -> None:
    """The front end, the user folder (used), response compression and ComfyUI's services (accepted,
    unused)."""
    p.add_argument("--front-end-version", default="comfyanonymous/ComfyUI@latest")
    p.add_argument("--front-end-root", type=_existing_directory, default=None)
    p.add_argument("--user-directory", type=_existing_directory, default=None)
    p.add_argument("--enable-compress-response-body", action="store_true", help="no effect here")
    p.add_argument("--comfy-api-base", default="https://api.comfy.org")
    p.add_argument("--database-url", default="sqlite:///:memory:")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse like ComfyUI (exit 2 with argparse's message on a bad flag); refuses `--cache-lru N`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cache_lru > 0:
        parser.error(
            "--cache-lru is not supported by the ComfyUI stand-in (only classic caching and --cache-none)"
        )
    if args.windows_standalone_build:
        args.auto_launch = True
    if args.disable_auto_launch:
        args.auto_launch = False
    return args

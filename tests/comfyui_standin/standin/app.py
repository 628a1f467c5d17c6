"""Start the stand-in the way ComfyUI's main.py starts: folders, node classes, worker thread, then the server.

Startup logs go to stderr (stdout with `--log-stdout`) in ComfyUI's words, ending with
`To see the GUI go to: http://HOST:PORT` once the port accepts connections. Without
`--base-directory` ComfyUI would use its own checkout; the stand-in has none to write into, so it uses
a temporary base directory, removed on a clean stop (Ctrl-C / SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence

from aiohttp import web

from .catalog import Catalog, CatalogOptions
from .cli import parse_args
from .custom_nodes import load_custom_nodes
from .routes import COMFYUI_VERSION, build_app
from .server import PromptServer
from .settings import StandinSettings
from .startup import configure_folders

log = logging.getLogger("standin")


def _setup_logging(args: argparse.Namespace) -> None:
    root = logging.getLogger()
    root.setLevel(args.verbose)
    formatter = logging.Formatter("%(message)s")
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(formatter)
    if args.log_stdout:
        errors.addFilter(lambda record: record.levelno >= logging.ERROR)
        normal = logging.StreamHandler(sys.stdout)
        normal.setFormatter(formatter)
        normal.addFilter(lambda record: record.levelno < logging.ERROR)
        root.addHandler(normal)
    root.addHandler(errors)


def main(argv: Sequence[str] | None = None, *, standin_dir: str) -> int:
    args = parse_args(argv)
    _setup_logging(args)
    try:
        settings = StandinSettings.from_env()
    except ValueError as e:
        log.error("%s", e)
        return 2
    log.info("Python version: %s", sys.version)
    log.info("ComfyUI version: %s (stand-in from %s)", COMFYUI_VERSION, standin_dir)

    own_base = None
    if args.base_directory:
        base = args.base_directory
    else:
        own_base = base = tempfile.mkdtemp(prefix="comfyui-standin-")
        os.mkdir(os.path.join(base, "custom_nodes"))  # a checkout has one
        log.info("No --base-directory: using %s, removed when the server stops", base)
        _remove_on_sigterm(own_base)
    try:
        return _serve(args, settings, base, standin_dir)
    finally:
        if own_base:
            shutil.rmtree(own_base, ignore_errors=True)


def _remove_on_sigterm(directory: str) -> None:
    """Let SIGTERM end the process as it ends ComfyUI (no cleanup), but remove `directory` first."""

    def handler(signum: int, frame: object) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)


def _serve(args: argparse.Namespace, settings: StandinSettings, base: str, standin_dir: str) -> int:
    time.sleep(settings.start_delay)  # what real ComfyUI spends importing torch and its nodes
    folders = configure_folders(args, base_path=base, standin_dir=standin_dir)
    shutil.rmtree(folders.temp_directory, ignore_errors=True)
    options = CatalogOptions(
        disable_api_nodes=args.disable_api_nodes,
        disable_all_custom_nodes=args.disable_all_custom_nodes,
        whitelist_custom_nodes=tuple(args.whitelist_custom_nodes),
    )
    catalog = Catalog.from_reference(folders, options)
    if not args.disable_all_custom_nodes or args.whitelist_custom_nodes:
        import folder_paths  # beside main.py, as in a checkout: what packs import

        folder_paths.bind(folders)
        whitelist = args.whitelist_custom_nodes if args.disable_all_custom_nodes else None
        catalog.custom = load_custom_nodes(
            folders.paths("custom_nodes"), builtin=catalog.class_types(), whitelist=whitelist
        )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Ctrl-C through the loop's wakeup pipe: the kernel may hand the signal to the worker thread, and
    # Python's own handler would then leave an idle loop asleep in epoll until some other event came.
    loop.add_signal_handler(signal.SIGINT, _interrupt)
    server = PromptServer(loop, args=args, settings=settings, folders=folders, catalog=catalog)
    app = build_app(server)
    server.start_worker()
    if args.quick_test_for_ci:
        return 0
    os.makedirs(folders.temp_directory, exist_ok=True)
    try:
        loop.run_until_complete(asyncio.gather(_start_sites(app, args), server.publish_loop()))
    except KeyboardInterrupt:
        log.info("\nStopped server")
    finally:
        shutil.rmtree(folders.temp_directory, ignore_errors=True)
    return 0


def _interrupt() -> None:
    raise KeyboardInterrupt


async def _start_sites(app: web.Application, args: argparse.Namespace) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = None
    scheme = "http"
    if args.tls_keyfile and args.tls_certfile:
        ssl_context = ssl.SSLContext(protocol=ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(certfile=args.tls_certfile, keyfile=args.tls_keyfile)
        scheme = "https"
    verbose = not args.dont_print_server
    if verbose:
        log.info("Starting server\n")
    for address in args.listen.split(","):
        await web.TCPSite(runner, address, args.port, ssl_context=ssl_context).start()
        if verbose:
            shown = f"[{address}]" if ":" in address else address
            log.info("To see the GUI go to: %s://%s:%s", scheme, shown, args.port)

"""Turn the command line into folders, in the order ComfyUI's main.py applies it.

Order matters for the search order of model folders: an `extra_model_paths.yaml` beside main.py, then
each `--extra-model-paths-config` (folders marked `is_default` go first, the others last), then the
output directory's `checkpoints`, `clip`, `vae`, `diffusion_models` and `loras` are appended.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os

import yaml

from .folders import Folders

log = logging.getLogger(__name__)

OUTPUT_MODEL_FOLDERS = ("checkpoints", "clip", "vae", "diffusion_models", "loras")


def load_extra_path_config(yaml_path: str, folders: Folders) -> None:
    """Add the folders of one extra_model_paths.yaml (ComfyUI's format: sections of folder: paths)."""
    with open(yaml_path, encoding="utf-8") as stream:
        config = yaml.safe_load(stream)
    yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
    for section in config.values():
        if section is None:
            continue
        section = dict(section)
        base_path = section.pop("base_path", None)
        if base_path:
            base_path = os.path.expandvars(os.path.expanduser(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = bool(section.pop("is_default", False))
        for folder_name, value in section.items():
            for line in value.split("\n"):
                if not line:
                    continue
                if base_path:
                    full_path = os.path.join(base_path, line)
                elif not os.path.isabs(line):
                    full_path = os.path.abspath(os.path.join(yaml_dir, line))
                else:
                    full_path = line
                full_path = os.path.normpath(full_path)
                log.info("Adding extra search path %s %s", folder_name, full_path)
                folders.add_model_folder_path(folder_name, full_path, is_default)


def configure_folders(args: argparse.Namespace, *, base_path: str, standin_dir: str) -> Folders:
    """Folders for `args`; `base_path` is `--base-directory` or the stand-in's stand-in for a checkout."""
    folders = Folders(os.path.abspath(base_path))
    if not os.path.exists(folders.input_directory):  # as folder_paths does on import, before any flag
        try:
            os.makedirs(folders.input_directory)
        except OSError:  # a read-only checkout: ComfyUI goes on (--input-directory may point elsewhere)
            log.error("Failed to create input directory")

    beside_main = os.path.join(standin_dir, "extra_model_paths.yaml")
    if os.path.isfile(beside_main):
        load_extra_path_config(beside_main, folders)
    for config_path in itertools.chain(*(args.extra_model_paths_config or [])):
        load_extra_path_config(config_path, folders)

    if args.output_directory:
        folders.output_directory = os.path.abspath(args.output_directory)
        log.info("Setting output directory to: %s", folders.output_directory)
    for name in OUTPUT_MODEL_FOLDERS:
        folders.add_model_folder_path(name, os.path.join(folders.output_directory, name))

    if args.input_directory:
        folders.input_directory = os.path.abspath(args.input_directory)
        log.info("Setting input directory to: %s", folders.input_directory)
    if args.user_directory:
        folders.user_directory = os.path.abspath(args.user_directory)
        log.info("Setting user directory to: %s", folders.user_directory)
    if args.temp_directory:
        folders.temp_directory = os.path.join(os.path.abspath(args.temp_directory), "temp")
        log.info("Setting temp directory to: %s", folders.temp_directory)
    # ComfyUI's user manager, made with the server: an OSError here (a read-only checkout) stops the start.
    if not os.path.exists(folders.user_directory):
        os.makedirs(folders.user_directory, exist_ok=True)
    return folders

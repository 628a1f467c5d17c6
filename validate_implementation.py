#!/usr/bin/env python3
"""Check that this checkout is a working implementation: prints each check and exits non-zero on a failure.

    python validate_implementation.py [--manifest FILE] [--cog-yaml FILE] [--examples DIR]

Checks the public surface users rely on (the predictor's and the ComfyUI wrapper's methods and
signatures), the weights manifest against its schema (sizes, sha256 digests, URLs whose file names are
the entries' own or plainly renamed, kits naming real entries, byte-stable), every example workflow
resolving to manifest weights, and cog.yaml against the JSON Schema that `cog build` validates it with.
It runs in the test suite too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import posixpath
import re
import sys
import traceback
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weightkit.manifest import WeightEntry

ROOT = Path(__file__).resolve().parent
COG_SCHEMA = ROOT / "tests" / "reference" / "cog" / "config_schema_v1.0.json"
REFUSED_ENV = re.compile(
    r"^(PATH|PYTHONPATH|R8_|REPLICATE_|CUDA_|NVIDIA_|PGET_|HF_ENDPOINT$|HF_HUB_ENABLE_HF_TRANSFER$|KUBERNETES_)"
)

PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9._+-]+")


class CheckFailed(Exception):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def parameters(function: Callable[..., object]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def check_predictor() -> str:
    from predict import Predictor

    require(parameters(Predictor.setup) == ["weights"], "Predictor.setup(self, weights=None)")
    expected = [
        "workflow_json",
        "input_file",
        "return_temp_files",
        "output_format",
        "output_quality",
        "randomise_seeds",
        "force_reset_cache",
    ]
    require(parameters(Predictor.predict) == expected, f"Predictor.predict inputs must be {expected}")
    defaults = inspect.signature(Predictor.predict).parameters
    undocumented = [name for name in expected if not getattr(defaults[name].default, "description", None)]
    require(not undocumented, f"inputs without a description: {undocumented}")
    require(parameters(Predictor.preload_base_kit) == ["kit_name"], "Predictor.preload_base_kit(kit_name)")
    require(
        parameters(Predictor.preload_workflow_weights) == ["workflow_json"],
        "Predictor.preload_workflow_weights(workflow_json)",
    )
    return "setup(weights), predict(7 described inputs), preload_base_kit, preload_workflow_weights"


def check_comfyui_wrapper() -> str:
    from comfyui import ComfyUI

    expected = {
        "start": [],
        "stop": [],
        "extract_required_weights": ["workflow"],
        "validate_weights_exist": ["workflow", "skip_check"],
        "run": ["workflow", "include_temp", "check_weights"],
        "submit": ["workflow"],
        "wait": ["prompt_id", "workflow"],
        "outputs": ["entry", "include_temp"],
        "interrupt": ["prompt_id"],
        "clear_queue": [],
        "free_memory": ["unload_models", "free_memory"],
    }
    for name, names in expected.items():
        method = getattr(ComfyUI, name, None)
        require(callable(method), f"ComfyUI.{name} is missing")
        assert method is not None
        require(
            parameters(method) == names, f"ComfyUI.{name}{tuple(names)} expected, got {parameters(method)}"
        )
    skip = inspect.signature(ComfyUI.validate_weights_exist).parameters["skip_check"].default
    require(skip is False, "validate_weights_exist(workflow, skip_check=False)")
    return f"{len(expected)} methods with the expected signatures"


def check_manifest(path: Path) -> str:
    from weightkit.manifest_file import load_manifest

    manifest = load_manifest(path)  # raises ManifestError naming entry and field
    text = path.read_text(encoding="utf-8")
    require(
        manifest.dumps() == text,
        f"{path.name} is not in canonical form (sorted, stable): rewrite it with dumps()",
    )
    for entry in manifest.entries.values():
        if not entry.left_to_host:  # else the manifest's own validation required Hugging Face URLs
            require(re.fullmatch(r"[0-9a-f]{64}", entry.sha256 or "") is not None, f"{entry.key}: sha256")
            require((entry.size or 0) > 0, f"{entry.key}: size")
    typos = [problem for entry in manifest.entries.values() for problem in url_file_problems(entry)]
    require(not typos, "; ".join(typos))
    for name in ("sd15", "sdxl", "flux", "flux-dev", "sd35", "upscale"):
        require(name in manifest.kits, f"kit {name} is missing")
    for kit in manifest.kits.values():
        require(bool(kit.description.strip()), f"kit {kit.name} has no description")
        require(all(ref in manifest.entries for ref in kit.weights), f"kit {kit.name} names unknown weights")
    return f"{len(manifest.entries)} weights, {len(manifest.kits)} kits, canonical form"


def url_file_problems(entry: WeightEntry) -> list[str]:
    """Typos in the file names of `entry`'s Hugging Face URLs (they always end in the file): each must be a
    plain file name with the entry's extension, and be the entry's name (or an alias's), or plainly
    another name (a rename, such as h94's `model.safetensors` saved as
    `CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors`). A name a character or two from the entry's is a
    typo: the URL would answer 404, or serve some other file. Other hosts' URLs need not name the file
    (CivitAI's `/api/download/models/<id>`)."""
    names = {posixpath.basename(name) for name in (entry.name, *entry.aliases)}
    problems = []
    for url in entry.urls:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in ("huggingface.co", "hf.co") or "/resolve/" not in parts.path:
            continue
        file = posixpath.basename(urllib.parse.unquote(parts.path))
        if file in names:
            continue
        if not PLAIN_FILE_NAME.fullmatch(file):
            problems.append(f"{entry.key}: the URL's file name {file!r} has characters no weight name has")
        elif _extension(file) != _extension(entry.name):
            problems.append(f"{entry.key}: the URL's file {file!r} has another extension than the name")
        elif min(_edits(file.lower(), name.lower()) for name in names) <= 2:
            problems.append(f"{entry.key}: the URL's file {file!r} is nearly, not exactly, the entry's name")
    return problems


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: characters inserted, deleted or replaced to make `b` of `a`."""
    row = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (char != other))
    return row[-1]


def _extension(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    return ".safetensors" if extension == ".sft" else extension


def check_examples(manifest_path: Path, examples: Path) -> str:
    from weightkit.extract import required_weights
    from weightkit.manifest_file import load_manifest

    manifest = load_manifest(manifest_path)
    files = sorted(examples.glob("*.json"))
    require(bool(files), f"no example workflows in {examples}")
    for file in files:
        refs = required_weights(file.read_text(encoding="utf-8"), manifest)
        require(bool(refs), f"{file.name} needs no weights")
        unknown = [ref.name for ref in refs if ref.entry is None]
        require(not unknown, f"{file.name} names weights the manifest lacks: {unknown}")
    return f"{len(files)} examples, every weight in the manifest"


def check_custom_nodes(path: Path, manifest_path: Path) -> str:
    from nodekit.lock import load_lock
    from weightkit.manifest_file import load_manifest

    lock = load_lock(path)  # raises LockError naming pack and field
    require(
        lock.dumps() == path.read_text(encoding="utf-8"),
        f"{path.name} is not in canonical form (sorted, stable): run python -m nodekit format",
    )
    manifest = load_manifest(manifest_path)
    manifest.merged(lock.as_manifest())  # pack weights must not clash with the manifest's
    require(bool(lock.default_selection()), "the lock selects no pack to install by default")
    for (
        kit
    ) in manifest.kits.values():  # "needs the ComfyUI_IPAdapter_plus custom nodes": installed by default
        for pack in (p for p in lock.packs if p.name in kit.description):
            require(
                pack.install, f"kit {kit.name} needs {pack.name}, which the lock does not install by default"
            )
    return f"{len(lock.packs)} packs ({len(lock.default_selection())} by default), canonical form"


def check_cog_yaml(path: Path) -> str:
    import jsonschema
    import yaml

    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(config, json.loads(COG_SCHEMA.read_text(encoding="utf-8")))
    require(config.get("predict") == "predict.py:Predictor", "predict: predict.py:Predictor")
    names = [item.split("=", 1)[0] for item in config.get("environment") or []]
    refused = [name for name in names if REFUSED_ENV.match(name)]
    require(not refused, f"environment names Cog refuses: {refused}")
    require(
        not any("export " in str(step) for step in config["build"].get("run") or []),
        "an `export` in build.run never reaches the model: use the top-level environment list",
    )
    return "valid against Cog's schema, runtime settings in `environment`"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "weights_manifest.json")
    parser.add_argument("--cog-yaml", type=Path, default=ROOT / "cog.yaml")
    parser.add_argument("--examples", type=Path, default=ROOT / "examples")
    parser.add_argument("--custom-nodes", type=Path, default=ROOT / "custom_nodes.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    checks: list[tuple[str, Callable[[], str]]] = [
        ("predictor", check_predictor),
        ("ComfyUI wrapper", check_comfyui_wrapper),
        ("weights manifest", lambda: check_manifest(args.manifest)),
        ("examples", lambda: check_examples(args.manifest, args.examples)),
        ("custom nodes", lambda: check_custom_nodes(args.custom_nodes, args.manifest)),
        ("cog.yaml", lambda: check_cog_yaml(args.cog_yaml)),
    ]
    failed = 0
    for name, check in checks:
        try:
            detail = check()
        except Exception as exc:  # every failure is reported, then the next check runs
            failed += 1
            reason = (
                str(exc).splitlines()[0] if str(exc) else traceback.format_exception_only(exc)[-1].strip()
            )
            print(f"FAIL  {name}: {reason}")
        else:
            print(f"ok    {name}: {detail}")
    print(f"{len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Rebuild nodekit's node class data: ComfyUI's own classes, and which pack provides every other class.

    python scripts/build_node_index.py [--manager-data DIR] [--check]

Writes `nodekit/data/core_classes.json` (the classes of the pinned ComfyUI: the recorded /object_info
plus the classes its source registers that the recording lacks) and `nodekit/data/class_index.json`
(a compact class → repositories index from ComfyUI-Manager's extension-node-map.json: each repository
once with its classes, ComfyUI's own classes removed, at most `MAX_CANDIDATES` repositories per class,
those that declare a class in their `preemptions` first, then the map's order). `--check` exits 1 if
the committed files differ from what this would write.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "nodekit" / "data"
OBJECT_INFO = ROOT / "tests" / "reference" / "comfyui" / "object_info.json"
# ComfyUI-Manager's data, beside the checkout (`../shared/comfyui-manager-data`) or beside a parent of it.
MANAGER_DATA = next(
    (
        p / "shared" / "comfyui-manager-data"
        for p in ROOT.parents
        if (p / "shared" / "comfyui-manager-data").is_dir()
    ),
    ROOT.parent / "shared" / "comfyui-manager-data",
)
COMFYUI_COMMIT = "a125cd84b054a57729b5eecab930ca9408719832"  # ComfyUI 0.3.64, the recording's
MANAGER = "ltdrdata/ComfyUI-Manager@908a1009d25a85bae7caeba534046153ef04f97d"
MANAGER_DATE = "2025-03-28"
MAX_CANDIDATES = 3
GITHUB = "https://github.com/"
# Registered by ComfyUI 0.3.64's source but missing from the recorded /object_info, which ran without
# torchaudio and without API nodes' optional imports (read in comfy_extras/nodes_audio.py,
# nodes_audio_encoder.py, comfy_api_nodes/nodes_bfl.py and nodes_minimax.py at COMFYUI_COMMIT).
UNRECORDED_CORE = (
    "AudioAdjustVolume",
    "AudioConcat",
    "AudioEncoderEncode",
    "AudioEncoderLoader",
    "AudioMerge",
    "ConditioningStableAudio",
    "EmptyAudio",
    "EmptyLatentAudio",
    "FluxProImageNode",
    "LoadAudio",
    "MinimaxSubjectToVideoNode",
    "PreviewAudio",
    "RecordAudio",
    "SaveAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
    "SplitAudioChannels",
    "TrimAudioDuration",
    "VAEDecodeAudio",
    "VAEEncodeAudio",
)


def core_classes() -> dict[str, object]:
    recorded = sorted(json.loads(OBJECT_INFO.read_text(encoding="utf-8")))
    return {
        "comfyui_commit": COMFYUI_COMMIT,
        "source": f"tests/reference/comfyui/object_info.json ({len(recorded)} classes) plus "
        f"{len(UNRECORDED_CORE)} classes its source registers that the recording lacks",
        "classes": sorted({*recorded, *UNRECORDED_CORE}),
    }


def class_index(manager_data: Path, core: set[str]) -> dict[str, object]:
    """`{"packs": {repo: [classes]}, "patterns": [[regex, repo]]}` from the extension map."""
    node_map = json.loads((manager_data / "extension-node-map.json").read_text(encoding="utf-8"))
    preempting: dict[str, list[str]] = {}
    for url, (_, meta) in node_map.items():
        for class_type in meta.get("preemptions", []):
            preempting.setdefault(class_type, []).append(url)
    candidates: dict[str, list[str]] = {}
    for url, (classes, _) in node_map.items():
        for class_type in classes:
            if class_type not in core:
                candidates.setdefault(class_type, [])
                if url not in candidates[class_type]:
                    candidates[class_type].append(url)
    kept: dict[str, list[str]] = {url: [] for url in node_map}
    for class_type, urls in candidates.items():
        first = [url for url in preempting.get(class_type, []) if url in urls]
        ordered = [*first, *(url for url in urls if url not in first)]
        for url in ordered[:MAX_CANDIDATES]:
            kept[url].append(class_type)
    patterns = [
        [meta["nodename_pattern"], _short(url)]
        for url, (_, meta) in node_map.items()
        if "nodename_pattern" in meta
    ]
    return {
        "source": f"ComfyUI-Manager extension-node-map.json at {MANAGER}",
        "date": MANAGER_DATE,
        "core_removed": f"the classes of nodekit/data/core_classes.json (ComfyUI {COMFYUI_COMMIT})",
        "max_candidates": MAX_CANDIDATES,
        "preemptions": {
            _short(url): sorted(meta["preemptions"])
            for url, (_, meta) in node_map.items()
            if meta.get("preemptions")
        },
        "patterns": patterns,
        "packs": {_short(url): sorted(classes) for url, classes in kept.items() if classes},
    }


def _short(url: str) -> str:
    """`https://github.com/owner/name` is written `owner/name`; other hosts keep their whole URL."""
    return url.removeprefix(GITHUB) if url.startswith(GITHUB) else url


def dumps_index(index: dict[str, object]) -> str:
    """One repository per line, so an update of the map diffs by repository."""
    head = {k: v for k, v in index.items() if k != "packs"}
    packs = index["packs"]
    assert isinstance(packs, dict)
    lines = [json.dumps(head, ensure_ascii=False, sort_keys=True)[:-1] + ', "packs": {']
    rows = [f"{json.dumps(url)}: {json.dumps(classes, ensure_ascii=False)}" for url, classes in packs.items()]
    lines.append(",\n".join(rows))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manager-data", type=Path, default=MANAGER_DATA)
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    core = core_classes()
    classes = core["classes"]
    assert isinstance(classes, list)
    files = {
        DATA / "core_classes.json": json.dumps(core, indent=1, ensure_ascii=False) + "\n",
        DATA / "class_index.json": dumps_index(class_index(args.manager_data, set(classes))),
    }
    stale = [
        path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not what {Path(__file__).name} builds", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)} ({len(text.encode()) / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

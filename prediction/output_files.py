"""ComfyUI's output files as a prediction returns them, and clean folders between predictions.

`export_outputs` puts each output into a new folder of its own, in the order given: a still image in
another format than asked is converted with Pillow (`webp`, `jpg` at `output_quality`; `png` lossless);
an image already in the asked format is kept byte for byte (no second lossy pass, and a PNG keeps the
workflow ComfyUI embeds in it); animated GIF/WEBP, videos and every other file are kept as they are.
An output is never lost once the work is done: an image the asked format cannot hold (WebP stops at
16383 pixels a side, JPEG at 65500) is written as PNG instead; one PNG cannot hold either (a wide CMYK or
float image), one whose data is broken (a truncated JPEG) and one too large for Pillow to decode safely
(its decompression-bomb guard, over 179 million pixels) are returned as the workflow saved them; each
case is logged.
`empty_folders` removes everything inside ComfyUI's input, output and temp folders so that nothing of
one prediction reaches the next.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from prediction.input_errors import OutputOptionError

__all__ = ["OUTPUT_FORMATS", "empty_folders", "export_outputs"]

log = logging.getLogger(__name__)

# output_format → Pillow's format name
OUTPUT_FORMATS = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
# Still-image formats that are converted; anything Pillow might also recognise (video frames, PSD...)
# is returned untouched.
_CONVERTIBLE = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


def check_output_options(output_format: str, output_quality: int) -> None:
    """Raise `OutputOptionError` for an unknown `output_format` or a quality outside 1–100 (checked before
    a workflow runs, not after)."""
    if output_format not in OUTPUT_FORMATS:
        raise OutputOptionError("output_format", output_format, f"one of {', '.join(OUTPUT_FORMATS)}")
    if (
        isinstance(output_quality, bool)
        or not isinstance(output_quality, int)
        or not 1 <= output_quality <= 100
    ):
        raise OutputOptionError("output_quality", output_quality, "a whole number from 1 to 100")


def export_outputs(
    files: Iterable[Path], parent: Path, *, output_format: str = "webp", output_quality: int = 95
) -> list[Path]:
    """The files to return, in a new folder under `parent`, in the order of `files` (repeats dropped).

    Raises `OutputOptionError` for an unknown `output_format` or a quality outside 1–100.
    """
    check_output_options(output_format, output_quality)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix="outputs-"))
    exported: list[Path] = []
    seen: set[Path] = set()
    for source in files:
        source = Path(source)
        if source.resolve() in seen:
            continue
        seen.add(source.resolve())
        exported.append(_export_one(source, folder, output_format, output_quality))
    log.info("Returning %d output files from %s", len(exported), folder)
    return exported


def _export_one(source: Path, folder: Path, output_format: str, quality: int) -> Path:
    try:
        image = Image.open(source, formats=_CONVERTIBLE)
    except Image.DecompressionBombError as exc:  # the workflow's own file: returned, not converted
        log.warning("%s is returned as it was saved, not as %s: %s", source.name, output_format, exc)
        return _keep(source, folder)
    except (UnidentifiedImageError, OSError):  # not a still image we convert: a video, a text file...
        return _keep(source, folder)
    with image:
        if image.format == OUTPUT_FORMATS[output_format] or getattr(image, "is_animated", False):
            return _keep(source, folder)
        return _convert_or_keep(image, source, folder, output_format, quality)


def _convert_or_keep(
    image: Image.Image, source: Path, folder: Path, output_format: str, quality: int
) -> Path:
    """`image` as `output_format`, else as PNG, else the file as the workflow saved it: the format may not
    hold it (WebP's 16383 pixels, PNG has no CMYK or float mode) or its data may be broken (a truncated
    JPEG), and the work that made it is done either way. Each failure is logged."""
    formats = [output_format] + (["png"] if output_format != "png" and image.format != "PNG" else [])
    for n, fmt in enumerate(formats):
        try:
            return _convert(image, source, folder, fmt, quality)
        except (OSError, ValueError) as exc:
            log.warning(
                "%s (%dx%d) cannot be written as %s (%s); returning it as %s",
                source.name,
                image.width,
                image.height,
                fmt,
                exc,
                formats[n + 1] if n + 1 < len(formats) else f"it was saved ({image.format})",
            )
    return _keep(source, folder)


def _convert(image: Image.Image, source: Path, folder: Path, output_format: str, quality: int) -> Path:
    target = _free_name(folder, f"{source.stem}.{output_format}")
    options: dict[str, object] = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if output_format == "jpg":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = (
                image.convert("RGBA").convert("RGB") if image.has_transparency_data else image.convert("RGB")
            )
        options["quality"] = quality
    elif output_format == "webp":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        options["quality"] = quality
    temporary = target.with_name(f".{target.name}.part")
    try:
        image.save(temporary, format=OUTPUT_FORMATS[output_format], **options)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
    return target


def _keep(source: Path, folder: Path) -> Path:
    """The file as it is: a hard link when possible (no copy of a large video), else a copy."""
    target = _free_name(folder, source.name)
    try:
        os.link(source, target)
    except OSError:
        temporary = target.with_name(f".{target.name}.part")
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    return target


def _free_name(folder: Path, name: str) -> Path:
    """`name` in `folder`, or `stem_1.ext`, `stem_2.ext`... when outputs of two folders share a name."""
    candidate, stem, suffix, n = folder / name, Path(name).stem, Path(name).suffix, 0
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}_{n}{suffix}"
    return candidate


def in_run_folder(workflow: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """A copy of `workflow` whose output nodes save into the subfolder `run_id` of the output folder.

    Every string `filename_prefix` input (SaveImage, SaveAnimatedWEBP, SaveVideo, SaveAudio and the
    custom nodes that follow them) becomes `run_id/prefix`. ComfyUI caches an output node whose inputs
    are unchanged and re-reports the files it saved last time, which the previous prediction's clean-up
    deleted; a new prefix makes it save them again, while the nodes before it stay cached.
    """
    out = {}
    for node_id, node in workflow.items():
        inputs = node.get("inputs", {})
        prefix = inputs.get("filename_prefix")
        if isinstance(prefix, str):
            node = {**node, "inputs": {**inputs, "filename_prefix": f"{run_id}/{prefix}"}}
        out[node_id] = node
    return out


def empty_folders(*folders: Path) -> None:
    """Remove everything inside each folder (creating it if missing), never following links out."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        log.debug("Emptied %s", folder)

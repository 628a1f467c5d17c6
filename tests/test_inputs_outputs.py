"""Output files as returned: converted to output_format with Pillow, or kept; folders emptied between runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from prediction.input_errors import OutputOptionError
from prediction.output_files import empty_folders, export_outputs


def noisy_image(mode: str = "RGB", size: int = 64) -> Image.Image:
    """An image with detail, so that quality makes a difference in size."""
    image = Image.effect_noise((size, size), 64).convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.linear_gradient("L").resize((size, size)))
    return image


def save(path: Path, image: Image.Image, fmt: str, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **options)
    return path


def read(path: Path) -> tuple[str, str]:
    with Image.open(path) as image:
        return image.format, image.mode


@pytest.mark.parametrize(
    ("mode", "output_format", "expected"),
    [
        ("RGBA", "jpg", ("JPEG", "RGB")),
        ("RGB", "jpg", ("JPEG", "RGB")),
        ("L", "jpg", ("JPEG", "L")),
        ("P", "jpg", ("JPEG", "RGB")),
        ("RGBA", "webp", ("WEBP", "RGBA")),
        ("RGB", "webp", ("WEBP", "RGB")),
        ("LA", "webp", ("WEBP", "RGBA")),
    ],
)
def test_png_converted_to_requested_format(
    tmp_path: Path, mode: str, output_format: str, expected: tuple
) -> None:
    source = save(tmp_path / "out" / "ComfyUI_00001_.png", noisy_image(mode), "PNG")
    [exported] = export_outputs([source], tmp_path / "ret", output_format=output_format, output_quality=80)
    assert exported.name == f"ComfyUI_00001_.{output_format}"
    assert read(exported) == expected
    assert source.exists()


def test_quality_changes_lossy_size(tmp_path: Path) -> None:
    source = save(tmp_path / "out" / "a.png", noisy_image(size=128), "PNG")
    low = export_outputs([source], tmp_path / "ret", output_format="jpg", output_quality=10)[0]
    high = export_outputs([source], tmp_path / "ret", output_format="jpg", output_quality=95)[0]
    assert low.stat().st_size < high.stat().st_size / 2


def test_png_requested_from_png_kept_byte_for_byte_with_workflow_metadata(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"1": {}}')
    source = save(tmp_path / "out" / "a.png", noisy_image(), "PNG", pnginfo=info)
    [exported] = export_outputs([source], tmp_path / "ret", output_format="png", output_quality=1)
    assert exported.read_bytes() == source.read_bytes()


def test_webp_to_png_ignores_quality(tmp_path: Path) -> None:
    source = save(tmp_path / "out" / "a.webp", noisy_image(), "WEBP")
    one = export_outputs([source], tmp_path / "ret", output_format="png", output_quality=1)[0]
    other = export_outputs([source], tmp_path / "ret", output_format="png", output_quality=100)[0]
    assert read(one) == ("PNG", "RGB") and one.read_bytes() == other.read_bytes()


def test_animated_and_non_images_kept_as_they_are(tmp_path: Path) -> None:
    frames = [noisy_image("P", 16) for _ in range(3)]
    gif = tmp_path / "out" / "anim.gif"
    gif.parent.mkdir()
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50)
    webp = tmp_path / "out" / "anim.webp"
    frames[0].convert("RGB").save(webp, save_all=True, append_images=[f.convert("RGB") for f in frames[1:]])
    video = tmp_path / "out" / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x01" * 100)
    text = tmp_path / "out" / "notes.txt"
    text.write_text("hello")
    sources = [gif, webp, video, text]
    exported = export_outputs(sources, tmp_path / "ret", output_format="jpg", output_quality=50)
    assert [p.name for p in exported] == ["anim.gif", "anim.webp", "clip.mp4", "notes.txt"]
    assert [p.read_bytes() for p in exported] == [p.read_bytes() for p in sources]


def test_order_kept_repeats_dropped_clashing_names_made_unique(tmp_path: Path) -> None:
    b = save(tmp_path / "out" / "b.png", noisy_image(), "PNG")
    a = save(tmp_path / "out" / "a.png", noisy_image(), "PNG")
    a_temp = save(tmp_path / "temp" / "a.png", noisy_image(), "PNG")
    exported = export_outputs([b, a, b, a_temp], tmp_path / "ret", output_format="webp", output_quality=80)
    assert [p.name for p in exported] == ["b.webp", "a.webp", "a_1.webp"]
    assert len({p.parent for p in exported}) == 1


def test_each_export_gets_a_fresh_folder(tmp_path: Path) -> None:
    source = save(tmp_path / "out" / "a.png", noisy_image(), "PNG")
    first = export_outputs([source], tmp_path / "ret", output_format="webp")[0]
    second = export_outputs([source], tmp_path / "ret", output_format="webp")[0]
    assert first.parent != second.parent
    assert os.listdir(second.parent) == ["a.webp"]


@pytest.mark.parametrize(
    ("fmt", "quality", "option"),
    [("gif", 80, "output_format"), ("jpeg", 80, "output_format"), ("png", 0, "output_quality"),
     ("webp", 101, "output_quality"), ("webp", True, "output_quality")],
)  # fmt: skip
def test_bad_output_options_refused(tmp_path: Path, fmt: str, quality: int, option: str) -> None:
    with pytest.raises(OutputOptionError, match=option) as caught:
        export_outputs([], tmp_path / "ret", output_format=fmt, output_quality=quality)
    assert isinstance(caught.value, ValueError)


def test_leftovers_of_previous_prediction_never_reach_the_next(tmp_path: Path) -> None:
    input_dir, output_dir, temp_dir = tmp_path / "input", tmp_path / "output", tmp_path / "temp"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not ours")
    (output_dir / "sub").mkdir(parents=True)
    (output_dir / "ComfyUI_00001_.png").write_bytes(b"old")
    (output_dir / "sub" / "old.png").write_bytes(b"old")
    (output_dir / "link").symlink_to(outside, target_is_directory=True)
    input_dir.mkdir()
    (input_dir / "input.png").write_bytes(b"old input")
    empty_folders(input_dir, output_dir, temp_dir)
    assert [list(folder.rglob("*")) for folder in (input_dir, output_dir, temp_dir)] == [[], [], []]
    assert os.listdir(output_dir) == [] and temp_dir.is_dir()
    assert (outside / "keep.txt").read_text() == "not ours"


@pytest.mark.parametrize("output_format", ["png", "webp", "jpg"])
def test_image_too_large_for_pillow_to_decode_is_returned_as_the_workflow_saved_it(
    tmp_path: Path, output_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = save(tmp_path / "out" / "huge.png", Image.new("1", (13500, 13500)), "PNG")  # 182 Mpx
    [exported] = export_outputs([source], tmp_path / "ret", output_format=output_format)
    assert exported.name == "huge.png" and exported.read_bytes() == source.read_bytes()
    if output_format != "png":
        assert "huge.png is returned as it was saved, not as" in caplog.text


def test_image_wider_than_webp_allows_is_returned_as_png(tmp_path: Path, caplog) -> None:
    source = save(tmp_path / "out" / "wide.jpg", Image.new("RGB", (16384, 64), (9, 99, 199)), "JPEG")
    [exported] = export_outputs([source], tmp_path / "ret", output_format="webp")
    assert exported.name == "wide.png" and read(exported) == ("PNG", "RGB")
    assert Image.open(exported).size == (16384, 64)
    assert "cannot be written as webp" in caplog.text and "returning it as png" in caplog.text
    assert [p.name for p in exported.parent.iterdir()] == ["wide.png"]  # no partial file left


def _truncated_jpeg(path: Path) -> Path:
    whole = save(path, Image.effect_noise((256, 256), 50).convert("RGB"), "JPEG").read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("wide_cmyk.tiff", lambda p: save(p, Image.new("CMYK", (16400, 2)), "TIFF")),
        ("wide_float.tiff", lambda p: save(p, Image.new("F", (16400, 2)), "TIFF")),
        ("wide_cmyk.jpg", lambda p: save(p, Image.new("CMYK", (16400, 2)), "JPEG")),
        ("truncated.jpg", _truncated_jpeg),
    ],
)
def test_an_image_neither_the_asked_format_nor_png_can_hold_is_returned_as_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, make
) -> None:
    source = make(tmp_path / "out" / name)
    [exported] = export_outputs([source], tmp_path / "ret", output_format="webp")
    assert exported.name == name and exported.read_bytes() == source.read_bytes()
    assert "cannot be written as png" in caplog.text and "returning it as it was saved" in caplog.text
    assert [p.name for p in exported.parent.iterdir()] == [name]  # no partial file left

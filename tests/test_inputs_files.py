"""input_file into ComfyUI's input folder: media copied as input.<ext>, archives unpacked all or nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from prediction.input_errors import InputArchiveError, InputFileError
from prediction.input_files import place_input_file, sniff_type
from prediction.settings import InputSettings

SETTINGS = InputSettings(archive_max_files=50, archive_max_bytes=1_000_000)


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(uploads, input folder): the input folder is inside `tmp_path`, so an escape would land beside it."""
    uploads, input_dir = tmp_path / "uploads", tmp_path / "area" / "input"
    uploads.mkdir()
    input_dir.mkdir(parents=True)
    return uploads, input_dir


def everything_under(folder: Path) -> list[str]:
    """Every path under `folder`, hidden staging folders included."""
    return sorted(
        str(Path(root, name).relative_to(folder))
        for root, dirs, files in os.walk(folder)
        for name in dirs + files
    )


def make_zip(path: Path, members: list[tuple[str, bytes] | zipfile.ZipInfo], data: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in members:
            if isinstance(member, zipfile.ZipInfo):
                zf.writestr(member, data)
            else:
                zf.writestr(*member)
    return path


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


# --- media files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "placed"),
    [
        ("photo.png", image_bytes("PNG"), "input.png"),
        ("PHOTO.JPEG", image_bytes("JPEG"), "input.jpeg"),
        ("tmpa1b2c3", image_bytes("PNG"), "input.png"),
        ("upload", image_bytes("JPEG"), "input.jpg"),
        ("upload.bin", image_bytes("WEBP"), "input.webp"),
        ("upload", image_bytes("GIF"), "input.gif"),
        ("upload", image_bytes("AVIF"), "input.avif"),  # as Pillow writes it
        ("clip", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20, "input.mp4"),
        ("clip", b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 20, "input.mov"),
        ("photo", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 8, "input.avif"),
        ("photo", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 8, "input.heic"),
        ("photo", b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00mif1heix" + b"\x00" * 8, "input.heic"),
        ("photo", b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf" + b"\x00" * 8, "input.avif"),
        ("photo", b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + b"\x00" * 8, "input.heic"),
        ("photo.avif", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "input.avif"),
        ("song", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x00" * 8, "input.m4a"),
        ("clip", b"\x00\x00\x00\x18ftypXAVC\x00\x00\x00\x00XAVCmp42" + b"\x00" * 8, "input.mp4"),
        ("clip", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "input.webm"),
        ("clip", b"RIFF\x00\x00\x00\x00AVI LIST", "input.avi"),
        ("sound", b"RIFF\x00\x00\x00\x00WAVEfmt ", "input.wav"),
        ("sound.flac", b"fLaC\x00", "input.flac"),
    ],
)
def test_media_file_copied_as_input_ext(folders, name: str, content: bytes, placed: str) -> None:
    uploads, input_dir = folders
    source = uploads / name
    source.write_bytes(content)
    assert place_input_file(source, input_dir, settings=SETTINGS) == [placed]
    assert (input_dir / placed).read_bytes() == content
    assert everything_under(input_dir) == [placed]
    assert source.read_bytes() == content  # Cog's file is copied, not moved


def test_new_input_replaces_previous_one(folders) -> None:
    uploads, input_dir = folders
    (input_dir / "input.png").write_bytes(b"previous")
    source = uploads / "a.png"
    source.write_bytes(image_bytes("PNG"))
    place_input_file(source, input_dir, settings=SETTINGS)
    assert (input_dir / "input.png").read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("name", "content"), [("notes.txt", b"hello"), ("blob", b"\x00\x01\x02"), ("x.zip", b"PK no")]
)
def test_unknown_type_refused_with_nothing_placed(folders, name: str, content: bytes) -> None:
    uploads, input_dir = folders
    (uploads / name).write_bytes(content)
    with pytest.raises(InputFileError, match="type is not one") as caught:
        place_input_file(uploads / name, input_dir, settings=SETTINGS)
    assert isinstance(caught.value, ValueError)
    assert everything_under(input_dir) == []


# --- archives that unpack ---------------------------------------------------------------------------


def test_zip_unpacked_with_nested_folders(folders) -> None:
    uploads, input_dir = folders
    archive = make_zip(
        uploads / "upload",  # no extension: sniffed
        [("a.png", b"A"), ("frames/0001.png", b"1"), ("frames/deep/0002.png", b"2"), ("frames/", b"")],
    )
    placed = place_input_file(archive, input_dir, settings=SETTINGS)
    assert placed == ["a.png", "frames/0001.png", "frames/deep/0002.png"]
    assert (input_dir / "frames" / "deep" / "0002.png").read_bytes() == b"2"
    assert everything_under(input_dir) == [
        "a.png",
        "frames",
        "frames/0001.png",
        "frames/deep",
        "frames/deep/0002.png",
    ]


def test_zip_windows_separators_unpacked_as_folders(folders) -> None:
    uploads, input_dir = folders
    archive = make_zip(uploads / "w.zip", [("dir\\x.png", b"X")])
    assert place_input_file(archive, input_dir, settings=SETTINGS) == ["dir/x.png"]


@pytest.mark.parametrize(
    ("name", "mode"), [("in.tar", "w"), ("in.tar.gz", "w:gz"), ("upload", "w:gz"), ("in.tbz", "w:bz2")]
)
def test_tar_unpacked_with_nested_folders(folders, name: str, mode: str) -> None:
    uploads, input_dir = folders
    archive = make_tar(
        uploads / name,
        [tar_file("./a.png", b"A"), tar_file("./frames/0001.png", b"1"), tar_file("frames/x/2.png", b"2")],
        mode,
    )
    assert place_input_file(archive, input_dir, settings=SETTINGS) == [
        "a.png",
        "frames/0001.png",
        "frames/x/2.png",
    ]
    assert (input_dir / "frames" / "x" / "2.png").read_bytes() == b"2"


def test_tar_of_a_folder_made_with_dot_root_unpacked(folders, tmp_path: Path) -> None:
    uploads, input_dir = folders
    made = tmp_path / "made"
    (made / "sub").mkdir(parents=True)
    (made / "sub" / "b.png").write_bytes(b"B")
    (made / "a.png").write_bytes(b"A")
    with tarfile.open(uploads / "in.tgz", "w:gz") as tf:
        tf.add(made, arcname=".")  # what `tar -czf in.tgz -C made .` writes: a "." member first
    with tarfile.open(uploads / "in.tgz") as tf:
        assert tf.getnames()[0] == "."
    assert place_input_file(uploads / "in.tgz", input_dir, settings=SETTINGS) == ["a.png", "sub/b.png"]


def test_tar_links_inside_archive_kept(folders) -> None:
    uploads, input_dir = folders
    archive = make_tar(
        uploads / "in.tar",
        [
            tar_file("frames/a.png", b"A"),
            tar_link("frames/first.png", "a.png", tarfile.SYMTYPE),
            tar_link("copy.png", "frames/a.png", tarfile.LNKTYPE),
        ],
    )
    place_input_file(archive, input_dir, settings=SETTINGS)
    assert (input_dir / "frames" / "first.png").is_symlink()
    assert (input_dir / "frames" / "first.png").read_bytes() == b"A"
    assert (input_dir / "copy.png").read_bytes() == b"A"


def test_archive_replaces_same_names_and_keeps_others(folders) -> None:
    uploads, input_dir = folders
    (input_dir / "keep.png").write_bytes(b"K")
    (input_dir / "frames").mkdir()
    (input_dir / "frames" / "stale.png").write_bytes(b"S")
    archive = make_zip(uploads / "in.zip", [("frames/new.png", b"N")])
    place_input_file(archive, input_dir, settings=SETTINGS)
    assert everything_under(input_dir) == ["frames", "frames/new.png", "keep.png"]


# --- archives refused as a whole --------------------------------------------------------------------


def zip_symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def zip_device(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o666) << 16
    return info


def zip_case(members: list, data: bytes = b""):
    return lambda path: make_zip(path, members, data)


def tar_case(members: list, mode: str = "w"):
    return lambda path: make_tar(path, members, mode)


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


def _fifo(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info, None


REFUSED = [
    ("zip-dotdot", zip_case([("ok.png", b"A"), ("../evil.png", b"E")]), "../evil.png", "'..'"),
    ("zip-dotdot-nested", zip_case([("a/../../evil.png", b"E")]), "a/../../evil.png", "'..'"),
    ("zip-backslash-dotdot", zip_case([("..\\evil.png", b"E")]), "..\\evil.png", "'..'"),
    ("zip-absolute", zip_case([("/tmp/evil.png", b"E")]), "/tmp/evil.png", "absolute"),
    ("zip-drive", zip_case([("C:/evil.png", b"E")]), "C:/evil.png", "absolute"),
    ("zip-symlink", zip_case([zip_symlink("link")], b"/etc/passwd"), "link", "symbolic link"),
    ("zip-device", zip_case([zip_device("null")]), "null", "device"),
    (
        "tar-dotdot",
        tar_case([tar_file("ok.png", b"A"), tar_file("../evil.png", b"E")]),
        "../evil.png",
        "'..'",
    ),
    ("tar-absolute", tar_case([tar_file("/tmp/evil.png", b"E")], "w:gz"), "/tmp/evil.png", "absolute"),
    (
        "tar-symlink-up",
        tar_case([tar_link("link", "../../etc", tarfile.SYMTYPE)]),
        "link",
        "pointing outside",
    ),
    (
        "tar-symlink-absolute",
        tar_case([tar_link("link", "/etc/passwd", tarfile.SYMTYPE)]),
        "link",
        "absolute",
    ),
    (
        "tar-write-through-symlink",
        tar_case([tar_link("sub", "inner", tarfile.SYMTYPE), tar_file("sub/x.png", b"X")]),
        "sub/x.png",
        "through a link in the archive",
    ),
    ("tar-hardlink-up", tar_case([tar_link("hard", "../outside.png", tarfile.LNKTYPE)]), "hard", "hard link"),
    (
        "tar-hardlink-absolute",
        tar_case([tar_link("hard", "/etc/passwd", tarfile.LNKTYPE)]),
        "hard",
        "hard link",
    ),
    (
        "tar-hardlink-to-nothing",
        tar_case([tar_link("hard", "missing.png", tarfile.LNKTYPE)]),
        "hard",
        "hard link",
    ),
    ("tar-device", tar_case([tar_file("ok.png", b"A"), _device("null")]), "null", "device"),
    ("tar-fifo", tar_case([_fifo("pipe")]), "pipe", "pipe"),
]


@pytest.mark.parametrize(("case", "build", "member", "problem"), REFUSED, ids=[case[0] for case in REFUSED])
def test_unsafe_archive_refused_with_nothing_placed(folders, case, build, member: str, problem: str) -> None:
    uploads, input_dir = folders
    archive = build(uploads / "upload")
    with pytest.raises(InputArchiveError, match=problem) as caught:
        place_input_file(archive, input_dir, settings=SETTINGS)
    assert caught.value.member == member
    assert repr(member) in str(caught.value)
    assert everything_under(input_dir) == []
    assert sorted(os.listdir(input_dir.parent)) == ["input"]  # nothing escaped beside it either
    assert sorted(os.listdir(uploads)) == ["upload"]


def test_zip_bomb_over_size_limit_refused(folders) -> None:
    uploads, input_dir = folders
    archive = make_zip(uploads / "bomb.zip", [("zeros.bin", b"\x00" * 2_000_000)])
    assert archive.stat().st_size < 10_000
    with pytest.raises(InputArchiveError, match="INPUT_ARCHIVE_MAX_BYTES"):
        place_input_file(archive, input_dir, settings=SETTINGS)
    assert everything_under(input_dir) == []


def test_tar_gz_bomb_over_size_limit_refused(folders) -> None:
    uploads, input_dir = folders
    archive = make_tar(uploads / "bomb.tgz", [tar_file("zeros.bin", b"\x00" * 2_000_000)], "w:gz")
    with pytest.raises(InputArchiveError, match="INPUT_ARCHIVE_MAX_BYTES"):
        place_input_file(archive, input_dir, settings=SETTINGS)
    assert everything_under(input_dir) == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_over_member_limit_refused(folders, kind: str) -> None:
    uploads, input_dir = folders
    names = [f"f{i}.png" for i in range(51)]
    if kind == "zip":
        archive = make_zip(uploads / "many.zip", [(name, b"x") for name in names])
    else:
        archive = make_tar(uploads / "many.tar", [tar_file(name, b"x") for name in names])
    with pytest.raises(InputArchiveError, match="INPUT_ARCHIVE_MAX_FILES"):
        place_input_file(archive, input_dir, settings=SETTINGS)
    assert everything_under(input_dir) == []


def test_damaged_zip_refused_with_nothing_placed(folders) -> None:
    uploads, input_dir = folders
    good = make_zip(uploads / "good.zip", [("a.png", b"A" * 1000), ("b.png", b"B" * 1000)]).read_bytes()
    damaged = bytearray(good)
    damaged[40:60] = b"\xff" * 20  # inside a.png's compressed data: its CRC check fails
    (uploads / "bad.zip").write_bytes(bytes(damaged))
    with pytest.raises(InputArchiveError):
        place_input_file(uploads / "bad.zip", input_dir, settings=SETTINGS)
    assert everything_under(input_dir) == []


# --- the pieces -------------------------------------------------------------------------------------


def test_sniff_type_plain_tar_without_extension(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "blob", [tar_file("a.png", b"A")])
    assert sniff_type(archive) == ".tar"

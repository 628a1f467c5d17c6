"""Safe extraction: members stay inside the target folder or nothing is written; `.tar` weight sources."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, leftovers, payload, sha256, tar_bytes, tmpfs
from weightkit.download import ArchiveLimits, Downloader, FetchRequest, safe_extract_tar, safe_extract_zip
from weightkit.errors import ArchiveTooLargeError, DiskSpaceError, DownloadError, UnsafeArchiveError
from weightkit.verified import VerifiedRecords

LIMITS = ArchiveLimits(members=1000, bytes=1 << 30, members_setting="MAX_FILES", bytes_setting="MAX_BYTES")


def _tar(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """(name, kind, content-or-link-target) → tar bytes; kind is file, dir, symlink, hardlink or fifo."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(content, bytes)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = str(content)
            tar.addfile(info)
    return out.getvalue()


def _zip(members: list[tuple[str, bytes]], symlink: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, content in members:
            zf.writestr(name, content)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return out.getvalue()


def _extract_tar(tmp_path: Path, members) -> tuple[Path, list[Path]]:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(members))
    dest = tmp_path / "out"
    return dest, safe_extract_tar(archive, dest, limits=LIMITS)


@pytest.mark.parametrize(
    ("members", "bad"),
    [
        ([("ok.txt", "file", b"x"), ("../evil.txt", "file", b"x")], "../evil.txt"),
        ([("a/../../evil.txt", "file", b"x")], "a/../../evil.txt"),
        ([("/tmp/evil.txt", "file", b"x")], "/tmp/evil.txt"),
        ([("link", "symlink", "../../outside")], "link"),
        ([("link", "symlink", "/etc")], "link"),
        ([("d/link", "symlink", "../..")], "d/link"),
        ([("here", "symlink", "."), ("here/x", "file", b"x")], "here/x"),
        ([("sub", "dir", ""), ("alias", "symlink", "sub"), ("alias/evil", "file", b"x")], "alias/evil"),
        ([("hard", "hardlink", "../../etc/passwd")], "hard"),
        ([("hard", "hardlink", "not-in-archive")], "hard"),
        ([("pipe", "fifo", "")], "pipe"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside-path",
        "absolute",
        "symlink-out",
        "symlink-absolute",
        "symlink-up-from-subdir",
        "through-link-to-dot",
        "through-link-to-subdir",
        "hardlink-out",
        "hardlink-to-nothing",
        "fifo",
    ],
)
def test_unsafe_tar_member_is_refused_by_name_and_nothing_is_written(tmp_path, members, bad):
    with pytest.raises(UnsafeArchiveError) as caught:
        _extract_tar(tmp_path, members)
    assert caught.value.member == bad and repr(bad) in str(caught.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_safe_tar_extracts_files_folders_and_inner_links(tmp_path):
    dest, files = _extract_tar(
        tmp_path,
        [
            ("models", "dir", ""),
            ("models/a.bin", "file", b"aaa"),
            ("./models/b.bin", "file", b"bbb"),
            ("models/a-link", "symlink", "a.bin"),
            ("copy.bin", "hardlink", "models/a.bin"),
        ],
    )
    assert sorted(p.relative_to(dest).as_posix() for p in files) == ["models/a.bin", "models/b.bin"]
    assert (dest / "models" / "a-link").read_bytes() == b"aaa" and (dest / "copy.bin").read_bytes() == b"aaa"


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_unsafe_zip_member_is_refused_and_nothing_is_written(tmp_path, bad):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip([("fine.txt", b"x"), (bad, b"x")]))
    with pytest.raises(UnsafeArchiveError) as caught:
        safe_extract_zip(archive, tmp_path / "out", limits=LIMITS)
    assert caught.value.member == bad and not (tmp_path / "out").exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip([("fine.txt", b"x")], symlink="passwd"))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out", limits=LIMITS)


def test_safe_zip_extracts_nested_files(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip([("imgs/", b""), ("imgs/a.png", b"png"), ("b.txt", b"b")]))
    files = safe_extract_zip(archive, tmp_path / "out", limits=LIMITS)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == ["b.txt", "imgs/a.png"]


def _tar_request(tmp_path: Path, url: str, data: bytes) -> FetchRequest:
    return FetchRequest(
        dest=tmp_path / "weights" / "upscale_models" / "x4.pth",
        urls=(url,),
        size=len(data),
        sha256=sha256(data),
        folder="upscale_models",
        name="x4.pth",
    )


def test_tar_source_is_unpacked_and_its_weight_verified_and_recorded(server, tmp_path):
    data = payload(2 << 20)
    server.serve("/x4.pth.tar", _tar([("x4.pth", "file", data)]))
    records = VerifiedRecords(tmp_path / "records")
    request = _tar_request(tmp_path, server.url("/x4.pth.tar"), data)
    result = Downloader(fast_settings(), records=records).fetch(request)
    assert request.dest.read_bytes() == data and result.sha256 == sha256(data)
    assert records.lookup(request.dest) == sha256(data)
    assert sorted(p.name for p in request.dest.parent.iterdir()) == [".x4.pth.lock", "x4.pth"]


@pytest.mark.parametrize(
    ("members", "bad"),
    [
        ([("x4.pth", "file", b"w"), ("../../escaped.pth", "file", b"evil")], "../../escaped.pth"),
        ([("x4.pth", "symlink", "../../../../etc/passwd")], "x4.pth"),
    ],
    ids=["dotdot-member", "symlink-out"],
)
def test_tar_source_with_unsafe_member_fails_naming_it_and_writes_nothing(server, tmp_path, members, bad):
    server.serve("/x4.pth.tar", _tar(members))
    request = _tar_request(tmp_path, server.url("/x4.pth.tar"), b"w")
    with pytest.raises(DownloadError) as caught:
        Downloader(fast_settings()).fetch(request)
    assert repr(bad) in str(caught.value)
    assert isinstance(caught.value.__cause__.__cause__, UnsafeArchiveError)
    assert not request.dest.exists() and not list(tmp_path.rglob("escaped.pth"))
    assert leftovers(tmp_path) == []


def _many_members_then_garbage(path: Path, count: int) -> Path:
    """A tar of `count` one-byte members whose end is cut off: reading every member would fail."""
    data = _tar([(f"f{i}.bin", "file", b"x") for i in range(count)])
    path.write_bytes(data[: len(data) * 3 // 4] + b"\xff" * 1000)
    return path


def test_tar_member_limit_is_enforced_while_reading_members(tmp_path):
    archive = _many_members_then_garbage(tmp_path / "many.tar", 400)
    limits = ArchiveLimits(members=100, bytes=1 << 30, members_setting="MAX_FILES")
    with pytest.raises(ArchiveTooLargeError, match="more than 100 members") as caught:
        safe_extract_tar(archive, tmp_path / "out", limits=limits)  # not a read error: the tail is unread
    assert caught.value.member == "f100.bin" and "MAX_FILES" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_zip_member_limit_is_read_from_its_directory_record_before_the_directory(tmp_path):
    archive = tmp_path / "many.zip"
    archive.write_bytes(_zip([(f"f{i}.bin", b"x") for i in range(300)]))
    data = bytearray(archive.read_bytes())
    directory = data.find(b"PK\x01\x02")
    data[directory : directory + 4] = b"XXXX"  # zipfile would refuse to parse this directory
    archive.write_bytes(bytes(data))
    limits = ArchiveLimits(members=100, bytes=1 << 30)
    with pytest.raises(ArchiveTooLargeError, match="more than 100 members"):
        safe_extract_zip(archive, tmp_path / "out", limits=limits)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_archive_byte_limit_counts_the_declared_sizes_before_writing(tmp_path, kind):
    archive = tmp_path / f"bomb.{kind}"
    zeros = b"\0" * (4 << 20)
    if kind == "tar":
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("zeros.bin")
            info.size = len(zeros)
            tar.addfile(info, io.BytesIO(zeros))
        extract = safe_extract_tar
    else:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("zeros.bin", zeros)
        extract = safe_extract_zip
    assert archive.stat().st_size < 64 << 10
    with pytest.raises(ArchiveTooLargeError, match="more than 1,000,000 bytes"):
        extract(archive, tmp_path / "out", limits=ArchiveLimits(members=10, bytes=1_000_000))
    assert not (tmp_path / "out").exists()


@pytest.fixture
def small_volume(tmp_path):
    """A 30 MB tmpfs, as a small weights volume; needs root to mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tmpfs(tmp_path / "volume", size="30m") as volume:
        yield volume


def test_a_gzip_bomb_behind_a_user_tar_url_cannot_fill_the_volume(server, small_volume):
    bomb = tar_bytes({"lora.safetensors": bytes(200 << 20)}, mode="w:gz")
    assert len(bomb) < 300 << 10
    server.serve("/my_lora.tar", bomb)
    dest = small_volume / "loras" / "abc-my_lora.safetensors"
    settings = fast_settings(min_free_bytes=1 << 20)
    with pytest.raises(DiskSpaceError) as caught:
        Downloader(settings).fetch(FetchRequest.for_url(server.url("/my_lora.tar"), dest))
    assert caught.value.needed >= 200 << 20
    assert leftovers(small_volume) == [] and not dest.exists()
    assert sum(p.stat().st_size for p in small_volume.rglob("*") if p.is_file()) < 1 << 20

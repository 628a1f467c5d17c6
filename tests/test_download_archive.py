"""Safe extraction: members stay inside the target folder or nothing is written; `.tar` weight sources."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, leftovers, payload, sha256
from tests.faultserver import FaultServer
from weightkit.download import Downloader, FetchRequest, safe_extract_tar, safe_extract_zip
from weightkit.errors import DownloadError, UnsafeArchiveError
from weightkit.verified import VerifiedRecords


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


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
    return dest, safe_extract_tar(archive, dest)


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
        safe_extract_zip(archive, tmp_path / "out")
    assert caught.value.member == bad and not (tmp_path / "out").exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip([("fine.txt", b"x")], symlink="passwd"))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out")


def test_safe_zip_extracts_nested_files(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip([("imgs/", b""), ("imgs/a.png", b"png"), ("b.txt", b"b")]))
    files = safe_extract_zip(archive, tmp_path / "out")
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

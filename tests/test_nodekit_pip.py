"""`nodekit.pip` as values: which pip may install into an externally managed Python, how pip's failure
is put in words, and requirement files in the encodings pip reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodekit.errors import RequirementsError
from nodekit.pip import TargetPython, _why, read_requirements_text


def managed(pip: str) -> TargetPython:
    return TargetPython(
        executable="/usr/bin/python3", version="3.11.9", externally_managed=True, distributions={"pip": pip}
    )


def test_pip_23_0_on_an_externally_managed_python_fails_before_running_with_what_to_do(tmp_path):
    with pytest.raises(RequirementsError) as caught:
        managed("23.0").install("tiny", tmp_path / "r.txt", tmp_path / "c.txt", cwd=tmp_path)
    message = str(caught.value)
    assert "its pip 23.0 refuses to install there but has no --break-system-packages" in message
    assert "upgrade that pip to 23.0.1 or later" in message and "virtual environment" in message


@pytest.mark.parametrize(("pip", "flags"), [("22.3.1", []), ("23.0.1", ["--break-system-packages"])])
def test_pips_before_23_0_need_no_flag_and_from_23_0_1_get_it(pip, flags):
    assert managed(pip).pip_flags() == flags


def test_a_refusal_says_whether_the_marker_was_seen():
    tail = "error: externally-managed-environment"
    assert "although no marker was seen" in _why(tail, marker_seen=False)
    seen = _why(tail, marker_seen=True)
    assert "although" not in seen and "even with --break-system-packages" in seen


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig", "utf-8"])
def test_a_requirements_file_is_read_in_the_encodings_pip_reads(tmp_path, encoding):
    path = tmp_path / "requirements.txt"
    text = "# café\ntinydep\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the codec alone writes no byte order mark
    path.write_bytes(data)
    assert read_requirements_text(path) == text


def test_undecodable_bytes_are_replaced_not_raised(tmp_path: Path):
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"tinyd\xe9p\n")
    assert read_requirements_text(path) == "tinyd\ufffdp\n"

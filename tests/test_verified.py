"""Hash once, then only stat: a changed file is re-hashed, an unchanged one is not."""

from __future__ import annotations

import hashlib
import json
import os

from weightkit.verified import VerifiedRecords, sha256_file


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "w.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_unchanged_file_is_not_read_again(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    records = VerifiedRecords(tmp_path / "records")
    first = records.sha256(path)
    # Remove read permission is not enough as root; instead prove no read happens by swapping the
    # content behind an identical size and mtime: a stat-only check keeps the recorded hash.
    stat = path.stat()
    path.write_bytes(b"WEIGHTS")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert records.sha256(path) == first == hashlib.sha256(b"weights").hexdigest()


def test_changed_mtime_or_size_is_rehashed(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    records = VerifiedRecords(tmp_path / "records")
    records.sha256(path)
    path.write_bytes(b"WEIGHTS")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert records.sha256(path) == hashlib.sha256(b"WEIGHTS").hexdigest()
    path.write_bytes(b"longer weights")
    assert records.lookup(path) is None
    assert records.sha256(path) == hashlib.sha256(b"longer weights").hexdigest()


def test_record_is_per_path_and_can_be_forgotten(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    records = VerifiedRecords(tmp_path / "records")
    records.record(a, "0" * 64)
    assert records.lookup(a) == "0" * 64
    assert records.lookup(b) is None
    records.forget(a)
    assert records.lookup(a) is None


def test_a_record_says_who_vouched_for_the_hash_and_an_old_record_reads_as_computed(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    records = VerifiedRecords(tmp_path / "records")
    records.record(path, digest, source="huggingface")
    found = records.lookup_record(path)
    assert found is not None and (found.sha256, found.source, found.vouched) == (digest, "huggingface", True)
    (record_file,) = (tmp_path / "records").iterdir()
    old = json.loads(record_file.read_text())
    del old["source"]  # as records were written before sources
    record_file.write_text(json.dumps(old))
    found = records.lookup_record(path)
    assert found is not None and (found.sha256, found.source, found.vouched) == (digest, "computed", False)
    assert records.lookup(path) == digest

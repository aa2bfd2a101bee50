"""swin_umamba.fileio: atomic writes leave the old file or the new one, never a part; SHA-256 of files."""
from __future__ import annotations

import hashlib

import pytest

from swin_umamba.fileio import atomic_target, sha256_of, write_text_atomic


def test_write_text_atomic_creates_folders_and_keeps_newlines(tmp_path):
    path = tmp_path / "a" / "b" / "out.csv"
    write_text_atomic(path, "x,y\r\n1,2\n")
    assert path.read_bytes() == b"x,y\r\n1,2\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.csv"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_target(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_sha256_of_matches_hashlib_across_block_boundaries(tmp_path):
    data = bytes(range(256)) * (1 << 14) + b"tail"  # 4 MiB and a bit: two blocks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()

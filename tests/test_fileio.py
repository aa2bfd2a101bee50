"""swin_umamba.fileio: atomic writes leave the old file or the new one, never a part; SHA-256 of files."""
from __future__ import annotations

import hashlib
import os

import pytest

from swin_umamba.fileio import atomic_target, remove_leftover_temporaries, sha256_of, write_text_atomic


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


def test_a_durable_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append((os.readlink(f"/proc/self/fd/{fd}"),
                                                                path.exists())), real_fsync(fd)))
    with atomic_target(path, durable=True) as tmp:
        tmp.write_bytes(b"new")
    (file_synced, named_then), (folder_synced, named_after) = synced
    assert file_synced == str(tmp) and not named_then
    assert folder_synced == str(tmp_path) and named_after
    assert path.read_bytes() == b"new"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_files_get_the_permissions_of_a_plain_write(tmp_path):
    """A new file gets 0666 less the umask, a replaced file keeps its mode (mkstemp's 0600 would hide a
    checkpoint from the user's group)."""
    previous = os.umask(0o027)
    try:
        new = tmp_path / "checkpoint_final.pth"
        with atomic_target(new, durable=True) as tmp:
            tmp.write_bytes(b"new")
        assert new.stat().st_mode & 0o777 == 0o640
        kept = tmp_path / "summary.csv"
        kept.write_text("old")
        kept.chmod(0o604)
        write_text_atomic(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(previous)


def test_leftover_temporaries_of_one_path_are_removed(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    with pytest.raises(KeyboardInterrupt):
        with atomic_target(path) as tmp:
            tmp.write_bytes(b"half")
            os.link(tmp, tmp_path / f"{tmp.name}.kept")  # what a kill, which runs no clean-up, leaves
            raise KeyboardInterrupt
    os.replace(tmp_path / f"{tmp.name}.kept", tmp)
    other = tmp_path / ".checkpoint_best.pth.x.tmp"
    other.write_bytes(b"")
    assert remove_leftover_temporaries(path) == [tmp]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]


def test_sha256_of_matches_hashlib_across_block_boundaries(tmp_path):
    data = bytes(range(256)) * (1 << 14) + b"tail"  # 4 MiB and a bit: two blocks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()

"""File helpers every package of swin-umamba uses: writes that are never seen half done, file digests."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator


TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


@contextlib.contextmanager
def atomic_target(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary file beside `path` to write to; it becomes `path` (os.replace) when the block ends
    normally and is removed when it raises, so readers see the old file or the new one, never a part.
    Folders are created. `durable`: the file's data reaches the disk (fsync) before the rename, and the
    rename itself after it, so that a crash of the machine cannot leave a file that is named but empty."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        yield Path(tmp)
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable and os.name == "posix":  # a folder can be opened and synced only on POSIX
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _new_temporary(path: Path) -> str:
    """An empty new file beside `path` with the permissions a plain write of `path` would leave: those of
    the file it replaces, else 0666 less the umask (tempfile.mkstemp's 0600 would hide a checkpoint or a
    report from the rest of a group)."""
    try:
        replaced = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        replaced = None
    while True:
        tmp = str(path.parent / f"{_temporary_prefix(path)}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        os.close(handle)
        if replaced is not None:
            os.chmod(tmp, replaced)
        return tmp


def _fsync(path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_leftover_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that writes of `path` through atomic_target left behind when their process
    was killed; returns them. Only for paths that one process writes at a time."""
    path = Path(path)
    leftovers = sorted(path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*{TEMPORARY_SUFFIX}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` (newlines as given) through atomic_target."""
    with atomic_target(path) as tmp, open(tmp, "w", newline="") as stream:
        stream.write(text)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()

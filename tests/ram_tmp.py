"""The run's temporary folder in memory (a tmpfs such as /dev/shm) where the machine has room for it.

The end-to-end tests write a few GB (checkpoints, preprocessed data, predictions). On a small disk that
is more than the page cache takes before the kernel throttles writers to the disk's speed, and on the
2-core machine the suite's budget is set on that cost about 30 s of a 7-minute run. In memory nothing
waits for the disk. The folder is used only where the tmpfs and the free memory leave room for the
suite's files (``NEEDED_GIB``, about twice what a run leaves) besides its processes; it is removed at the
end of the run. A run given ``--basetemp`` uses that folder as pytest always does.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RAM_FOLDER = Path("/dev/shm")
PREFIX = "swin-umamba-tests-"
NEEDED_GIB = 10  # free space on the tmpfs, and memory available beyond it for the run's processes
PROCESS_GIB = 8
GIB = 1 << 30


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _is_executable_tmpfs(folder: Path) -> bool:
    """`folder` is the mount point of a tmpfs without noexec (tests build and load compiled code there)."""
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _, mount_point, kind, options = line.split()[:4]
                if Path(mount_point) == folder:
                    return kind == "tmpfs" and "noexec" not in options.split(",")
    except (OSError, ValueError):
        pass
    return False


def has_room(folder: Path = RAM_FOLDER) -> bool:
    """`folder` is a writable tmpfs that allows executables, with NEEDED_GIB free, and memory holds that
    and PROCESS_GIB more."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return False
    return (_is_executable_tmpfs(folder) and os.access(folder, os.W_OK) and usage.free >= NEEDED_GIB * GIB
            and _available_memory() >= (NEEDED_GIB + PROCESS_GIB) * GIB)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path = RAM_FOLDER) -> list[Path]:
    """Folders of earlier runs that were killed before they could remove theirs (their process is gone)."""
    removed = []
    for path in folder.glob(f"{PREFIX}*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and path.stat().st_uid == os.getuid() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make_run_folder(folder: Path = RAM_FOLDER) -> Path:
    """A new folder for this run in `folder`, named after this process."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder))

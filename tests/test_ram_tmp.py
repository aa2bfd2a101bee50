"""tests/ram_tmp.py: the run's temporary folder in memory where there is room, stale folders removed."""
from __future__ import annotations

import os
import subprocess
import sys

from tests import ram_tmp


def test_this_runs_temporary_folder_is_in_memory_exactly_when_there_is_room(tmp_path, request):
    given = request.config.getoption("basetemp")
    in_memory = ram_tmp.RAM_FOLDER in tmp_path.parents and ram_tmp.PREFIX in str(tmp_path)
    if given is not None and ram_tmp.PREFIX not in str(given):
        assert not in_memory  # --basetemp from the command line is used as given
    else:
        assert in_memory == ram_tmp.has_room()


def test_a_folder_that_is_no_tmpfs_mount_has_no_room(tmp_path):
    assert not ram_tmp.has_room(tmp_path)


def test_folders_of_ended_runs_are_removed_and_those_of_running_ones_kept(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True).stdout.strip()
    stale = tmp_path / f"{ram_tmp.PREFIX}{ended}-abc"
    running = tmp_path / f"{ram_tmp.PREFIX}{os.getpid()}-def"
    other = tmp_path / "someone-elses"
    for folder in (stale, running, other):
        (folder / "inside").mkdir(parents=True)
    assert ram_tmp.remove_stale(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name])


def test_the_run_folder_is_named_after_this_process(tmp_path):
    folder = ram_tmp.make_run_folder(tmp_path)
    assert folder.is_dir() and folder.name.startswith(f"{ram_tmp.PREFIX}{os.getpid()}-")

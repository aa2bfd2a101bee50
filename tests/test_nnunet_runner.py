"""workflow.nnunet_runner.run_logged: output into the log, exit codes and the time limit."""
from __future__ import annotations

import os
import sys
import time

import pytest

from swin_umamba.workflow.nnunet_runner import CommandFailed, CommandTimedOut, run_logged


def test_output_goes_to_the_log_and_a_failure_names_the_exit_code(tmp_path):
    log = tmp_path / "run.log"
    run_logged([sys.executable, "-c", "print('first line')"], dict(os.environ), log)
    assert "first line" in log.read_text()
    with pytest.raises(CommandFailed) as info:
        run_logged([sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)"], dict(os.environ), log)
    assert info.value.returncode == 3 and not isinstance(info.value, CommandTimedOut)
    assert info.value.tail().splitlines() == ["bad input"]


def test_a_command_past_its_time_limit_is_stopped(tmp_path):
    log = tmp_path / "run.log"
    code = "import time; print('started', flush=True); time.sleep(60); print('never')"
    start = time.monotonic()
    with pytest.raises(CommandTimedOut) as info:
        run_logged([sys.executable, "-c", code], dict(os.environ), log, timeout=2)
    assert time.monotonic() - start < 30
    assert info.value.timeout == 2 and "time limit" in str(info.value)
    assert log.read_text().splitlines()[1:] == ["started"]  # after the "$ command" line
    # a command that ends in time is not affected by the limit
    run_logged([sys.executable, "-c", "print('quick')"], dict(os.environ), log, timeout=60)


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_the_time_limit_stops_the_programs_workers_too(tmp_path):
    """nnU-Net's worker processes inherit the output pipe: a limit that stopped only the program would
    wait for them, and leave them running."""
    pid_file = tmp_path / "worker.pid"
    code = ("import subprocess, sys, time\n"
            f"worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(worker.pid))\n"
            "print('started', flush=True); time.sleep(120)")
    start = time.monotonic()
    with pytest.raises(CommandTimedOut):
        run_logged([sys.executable, "-c", code], dict(os.environ), tmp_path / "run.log", timeout=3)
    assert time.monotonic() - start < 30
    worker = int(pid_file.read_text())
    for _ in range(50):  # the kill is delivered asynchronously
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, 9)
        pytest.fail(f"worker process {worker} still runs after the time limit")

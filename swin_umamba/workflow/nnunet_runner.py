"""Running nnU-Net's console programs as child processes, each into a log file.

    nnunet_tool(name)                      path of a console script such as nnUNetv2_train
    nnunet_environment(folders, **extra)   the child's environment, with our trainers registered
    run_logged(command, env, log, show)    run it: all output into `log`, chosen lines to the console
                                           (with `timeout`: stopped after that many seconds)
    log_tail(log)                          the last lines of a log, for an error message
    format_seconds(seconds)                "12.3 s", "4 min 05 s", "2 h 03 min 04 s"
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from swin_umamba.environment import EXT_TRAINER_VAR, NNUNET_FOLDER_VARS, trainers_dir
from swin_umamba.environment import STOP_AFTER_EPOCHS_VAR as STOP_ENV_VAR

NNUNET_FOLDERS = tuple(NNUNET_FOLDER_VARS)  # a work folder holds nnU-Net's folders under the variables' names


class CommandError(RuntimeError):
    """A program is missing or could not be started; the message says what to do."""


class CommandFailed(CommandError):
    """A program exited non-zero; its output is in `log` from byte `offset` on."""

    def __init__(self, command: list[str], returncode: int, log: Path, offset: int = 0):
        self.program, self.returncode, self.log, self.offset = Path(command[0]).name, returncode, Path(log), offset
        super().__init__(f"{self.program} failed with exit code {returncode}; log: {log}")

    def tail(self, lines: int = 40) -> str:
        """The last non-blank lines this program wrote."""
        return log_tail(self.log, lines, self.offset)


class CommandTimedOut(CommandFailed):
    """A program ran past its time limit and was stopped; its output is in `log` from byte `offset` on."""

    def __init__(self, command: list[str], timeout: float, returncode: int, log: Path, offset: int = 0):
        super().__init__(command, returncode, log, offset)
        self.timeout = timeout
        self.args = (f"{self.program} stopped after its time limit of {format_seconds(timeout)}; log: {log}",)


def format_seconds(seconds: float) -> str:
    """Tenths of a second under a minute, then whole seconds with minutes (and hours)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    if not minutes:
        return f"{seconds:.1f} s"
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def nnunet_tool(name: str) -> str:
    """Path of an nnU-Net console script: beside this Python (its environment, activated or not), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise CommandError(f"{name} not found next to {sys.executable} nor on PATH: install nnU-Net v2 "
                           "(pip install 'nnunetv2>=2.8,<2.9') in the environment of swin-umamba")
    return found


def nnunet_environment(folders: Path | None = None, **extra: str | None) -> dict[str, str]:
    """This process's environment for an nnU-Net child process, with

    - nnUNet_raw, nnUNet_preprocessed, nnUNet_results set to folders/<that name> when `folders` is given,
    - the package's trainers folder added in front of nnUNet_extTrainer (unless listed already),
    - this Python's scripts folder first on PATH, unbuffered output, no SWIN_UMAMBA_STOP_AFTER_EPOCHS,
    - timm's torch.jit.interface FutureWarning hidden (PYTHONWARNINGS),
    - then the variables of `extra` (None removes one).
    """
    from swin_umamba.workflow.trainer_lookup import JIT_INTERFACE_WARNING

    env = dict(os.environ)
    if folders is not None:
        env.update({name: str(Path(folders) / name) for name in NNUNET_FOLDERS})
    ours = trainers_dir()
    paths = [p for p in env.get(EXT_TRAINER_VAR, "").split(os.pathsep) if p.strip()]
    if not any(Path(p).resolve() == ours for p in paths):
        paths.insert(0, str(ours))
    env[EXT_TRAINER_VAR] = os.pathsep.join(paths)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    # nnU-Net's trainer search imports timm before any of our code runs: hide that one FutureWarning
    # in the child (PYTHONWARNINGS matches a literal message prefix; added last, it wins for that message only)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""),
                                                   f"ignore:{JIT_INTERFACE_WARNING}:FutureWarning"]))
    env.pop(STOP_ENV_VAR, None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# nnU-Net's programs start worker processes that inherit the output pipe: on POSIX each program runs
# in a process group of its own, and stopping it stops the whole group
_OWN_GROUP = os.name == "posix"


def _stop(proc: subprocess.Popen, sig: int) -> None:
    """Send `sig` to the program and, on POSIX, to every process of its group."""
    try:
        if _OWN_GROUP:
            os.killpg(proc.pid, sig)
        elif sig == signal.SIGTERM:
            proc.terminate()
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def run_logged(command: list[str], env: Mapping[str, str], log: Path,
               show: Callable[[str], str | None] | None = None, append: bool = False,
               timeout: float | None = None) -> float:
    """Run `command`: a "$ command" line, then everything it prints, go to `log` (appended with `append`);
    for each output line (without its newline) `show(line)` says what to print, None for nothing.

    Returns the seconds it ran. Raises CommandError when it cannot start, CommandTimedOut when it runs
    longer than `timeout` seconds (it is killed then) and CommandFailed when it exits non-zero; on
    Ctrl-C (or any error) the child is stopped first."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a" if append else "w", encoding="utf-8") as stream:
        stream.write(("\n" if append else "") + f"$ {shlex.join(command)}\n")
        stream.flush()
        offset = stream.tell()
        try:
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
                                    start_new_session=_OWN_GROUP)
        except OSError as exc:
            raise CommandError(f"could not start {command[0]}: {exc}") from exc
        timed_out = threading.Event()

        def stop_at_time_limit():
            timed_out.set()
            _stop(proc, signal.SIGKILL if _OWN_GROUP else signal.SIGTERM)

        timer = threading.Timer(timeout, stop_at_time_limit) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            # text mode reads "\r" (progress bars redrawing) as a line end too
            for line in proc.stdout:
                line = line.rstrip("\n")
                stream.write(line + "\n")
                stream.flush()
                shown = show(line) if show else None
                if shown is not None:
                    print(shown, flush=True)
            returncode = proc.wait()
        except BaseException:  # Ctrl-C: do not leave nnU-Net or its workers running
            _stop(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _stop(proc, signal.SIGKILL if _OWN_GROUP else signal.SIGTERM)
            raise
        finally:
            if timer is not None:
                timer.cancel()
    if timed_out.is_set():
        raise CommandTimedOut(command, timeout, returncode, log, offset)
    if returncode != 0:
        raise CommandFailed(command, returncode, log, offset)
    return time.monotonic() - start


def log_tail(log: Path, lines: int = 40, offset: int = 0) -> str:
    """The last `lines` non-blank lines of `log` from byte `offset` on; "(no log)" if it cannot be read."""
    try:
        with open(log, "rb") as stream:
            stream.seek(offset)
            text = stream.read().decode("utf-8", errors="replace").replace("\r", "\n")
    except OSError:
        return "(no log)"
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])

"""What the console shows while a job runs nnU-Net's programs.

    steps = StepCounter(5)
    steps.begin("plan: ...")          "[1/5] plan: ..."
    steps.note("log: ...")            "      log: ..."
    steps.done()                      "      done in 12.3 s"

    show = TrainingProgress(100)      for run_logged(..., show=show): nnU-Net's training output
                                      condensed to one line per epoch
"""
from __future__ import annotations

import re
import time
from typing import Sequence

from swin_umamba.workflow.nnunet_runner import format_seconds

NOTE_INDENT = " " * 6


def say(message: str) -> None:
    print(message, flush=True)


class StepCounter:
    """Numbered step lines, indented notes under them, and the time each step took."""

    def __init__(self, total: int):
        self.total, self.index = total, 0
        self._step_started = time.monotonic()

    def begin(self, text: str) -> None:
        self.index += 1
        self._step_started = time.monotonic()
        say(f"[{self.index}/{self.total}] {text}")

    @staticmethod
    def note(message: str) -> None:
        say(f"{NOTE_INDENT}{message}")

    def done(self, extra: str = "") -> float:
        """Prints and returns the seconds since the last begin()."""
        elapsed = time.monotonic() - self._step_started
        self.note(f"done in {format_seconds(elapsed)}{extra}")
        return elapsed


_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ")


class TrainingProgress:
    """Turns nnU-Net's training log lines into one console line per epoch (and keeps error lines).

    Called with each output line; returns the text to print, or None."""

    def __init__(self, num_epochs: int | None = None, indent: str = "    ", class_names: Sequence[str] = ()):
        self.num_epochs, self.indent, self.class_names = num_epochs, indent, list(class_names)
        self.epoch: str | None = None
        self.values: dict[str, str] = {}

    def _named(self, values: str) -> str:
        """"[0.5, 0.1]" as "liver 0.5, spleen 0.1" when the class names fit, else as given."""
        numbers = [v.strip() for v in values.strip().strip("[]").split(",") if v.strip()]
        if not self.class_names or len(numbers) != len(self.class_names):
            return f"per class {values}"
        return ", ".join(f"{name} {number}" for name, number in zip(self.class_names, numbers))

    def __call__(self, line: str) -> str | None:
        text = _STAMP.sub("", line.strip())
        if m := re.fullmatch(r"Epoch (\d+)", text):
            self.epoch, self.values = m.group(1), {}
        elif m := re.fullmatch(r"(train_loss|val_loss) (\S+)", text):
            self.values[m.group(1)] = m.group(2)
        elif text.startswith("Pseudo dice "):
            # numpy 2 prints [np.float32(0.8205), ...]: keep the numbers
            self.values["dice"] = self._named(re.sub(r"np\.float\d+\(([^)]*)\)", r"\1", text[len("Pseudo dice "):]))
        elif m := re.fullmatch(r"Epoch time: (\S+) s", text):
            total = f"/{self.num_epochs}" if self.num_epochs else ""
            return (f"{self.indent}epoch {int(self.epoch or 0) + 1}{total}: "
                    f"train loss {self.values.get('train_loss', '?')}, val loss {self.values.get('val_loss', '?')}, "
                    f"pseudo Dice {self.values.get('dice', '?')} ({float(m.group(1)):.0f} s)")
        elif text.startswith("Mean Validation Dice"):
            return f"{self.indent}validation of the fold's held-out training cases: {text}"
        elif "Traceback" in text or re.match(r"^\w*(Error|Exception)\b", text):
            return self.indent + text
        return None

"""Fetching one file over HTTP(S) into a partial file: resumed with Range requests, shown as a progress
line, and every way it can fail named (address unreachable, HTTP error, an HTML page, a cut connection).

The caller owns the partial file's name and decides what it becomes; nothing here writes anywhere else.
"""
from __future__ import annotations

import http.client
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TextIO

from swin_umamba.version import __version__

BLOCK_BYTES = 1 << 16
TIMEOUT_S = 30.0  # per connection attempt and per read
ATTEMPTS = 3  # requests per fetch: the first and the resumes after a cut connection


class DownloadError(RuntimeError):
    """A fetch that did not complete. `kind` is one of UNREACHABLE, HTTP, HTML, CUT."""

    UNREACHABLE, HTTP, HTML, CUT = "unreachable", "http error", "html page", "connection cut"

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One line: bytes so far of the total, percent, rate and time left. On a terminal it is redrawn in
    place a few times a second; elsewhere (a log) a line is written every 10 %."""

    def __init__(self, stream: TextIO | None = None, min_interval_s: float = 0.25):
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s
        self.total: int | None = None
        self.done = self.session_start = 0
        self.started = self.last_shown = time.monotonic()
        self.last_tenth = -1

    def begin(self, done: int, total: int | None) -> None:
        """A response starts: `done` bytes are already in the partial file, `total` is the full size."""
        self.done, self.total, self.session_start = done, total, done
        self.started = time.monotonic()
        if done:
            self.stream.write(f"resuming at {_mb(done)}\n")
        self.show(force=True)

    def advance(self, n: int) -> None:
        self.done += n
        self.show()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.done - self.session_start) / elapsed
        if not self.total:
            return f"{_mb(self.done)}  {_mb(int(rate))}/s"
        left = (self.total - self.done) / rate if rate > 0 else None
        return (f"{_mb(self.done)} / {_mb(self.total)}  {100 * self.done / self.total:3.0f} %  "
                f"{_mb(int(rate))}/s  {_clock(left) + ' left' if left is not None else '--:-- left'}")

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.interactive:
            if force or now - self.last_shown >= self.min_interval_s:
                self.stream.write("\r" + self.line().ljust(60))
                self.stream.flush()
                self.last_shown = now
            return
        tenth = 10 * self.done // self.total if self.total else -1
        if force or tenth > self.last_tenth:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self.last_tenth = tenth

    def end(self) -> None:
        if self.interactive:
            self.stream.write("\r" + self.line().ljust(60) + "\n")
            self.stream.flush()


class _Cut(Exception):
    """The body ended early; the partial file holds what arrived."""


def _looks_like_html(block: bytes) -> bool:
    head = block.lstrip()[:15].lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _open(url: str, have: int, timeout: float):
    headers = {"User-Agent": f"swin-umamba/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past `have`: the partial file is the whole body
            return None
        raise DownloadError(DownloadError.HTTP, f"{url} answered HTTP {exc.code} ({exc.reason})") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(DownloadError.UNREACHABLE, f"cannot reach {host_of(url)} for {url} ({reason})") from exc


def _fetch_once(url: str, part: Path, progress: Progress, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    response = _open(url, have, timeout)
    if response is None:
        return
    with response:
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type.lower():
            raise DownloadError(DownloadError.HTML, f"{url} sent an HTML page ({content_type}) instead of the file: "
                                "the address is wrong or asks for a login")
        # a server that ignores Range answers 200 with the whole body: start over
        start = have if response.status == http.client.PARTIAL_CONTENT else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        progress.begin(start, total)
        received = 0
        out = None
        try:
            while True:
                try:
                    block = response.read(BLOCK_BYTES)
                except (http.client.IncompleteRead, OSError) as exc:
                    raise _Cut(str(exc)) from exc
                if not block:
                    break
                if out is None:
                    if start == 0 and _looks_like_html(block):
                        raise DownloadError(DownloadError.HTML, f"{url} sent an HTML page instead of the file: "
                                            "the address is wrong or asks for a login")
                    out = open(part, "ab" if start else "wb")
                out.write(block)
                received += len(block)
                progress.advance(len(block))
        finally:
            if out is not None:
                out.close()
        if total is not None and start + received < total:
            raise _Cut(f"{start + received} of {total} bytes")


def fetch(url: str, part: Path, progress: Progress | None = None, timeout: float = TIMEOUT_S,
          attempts: int = ATTEMPTS) -> int:
    """Complete `part` with the body of `url`: a `part` that exists is resumed from its size (Range), and a
    connection cut mid-body is resumed the same way, `attempts` requests in all. Returns the size of
    `part`. Raises DownloadError; what arrived before a cut stays in `part` for the next call."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress()
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, progress, timeout)
            progress.end()
            return part.stat().st_size
        except _Cut as cut:
            progress.end()
            if attempt == attempts:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(DownloadError.CUT, f"the connection to {host_of(url)} was cut {attempts} times, "
                                    f"last after {have} bytes ({cut})") from cut
            progress.stream.write(f"connection cut ({cut}); resuming (attempt {attempt + 1} of {attempts})\n")
    raise AssertionError("unreachable")  # the loop returns or raises

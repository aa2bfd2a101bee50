"""`swin-umamba weights download` as library code: fetch the ImageNet VMamba-Tiny v0 file, check it with the
loader's own checks, and only then give it its final name.

The file grows as `<name>.part` beside its final place and is renamed once it has passed; its SHA-256
is written beside it as `<name>.sha256` (the format `sha256sum -c` reads), which lets a later run and
`swin-umamba doctor` see that the file is the one that passed without reading it into a network.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from swin_umamba.download import DownloadError, Progress, fetch
from swin_umamba.environment import PRETRAINED_WEIGHTS_VAR
from swin_umamba.fileio import sha256_of, write_text_atomic
from swin_umamba.pretrained import (
    RECORDED_SHA256,
    RELEASE_FILE,
    RELEASE_URL,
    PretrainedWeightsError,
    cached_weights_path,
    verify_v0_file,
)

PART_SUFFIX = ".part"
DIGEST_SUFFIX = ".sha256"


class WeightsDownloadError(RuntimeError):
    """The file could not be fetched or did not pass; nothing is left under the final name."""


@dataclass
class WeightsFile:
    """The outcome: where the checked file is, its digest, and whether this run downloaded it."""

    path: Path
    sha256: str
    downloaded: bool
    tensors_matched: int | None  # None when the file passed in an earlier run
    warnings: list[str] = field(default_factory=list)

    def export_line(self) -> str:
        return f"export {PRETRAINED_WEIGHTS_VAR}={self.path.resolve()}"


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def digest_path(final: Path) -> Path:
    return final.with_name(final.name + DIGEST_SUFFIX)


def recorded_digest(final: Path) -> str | None:
    """The SHA-256 written beside `final` when it passed, or None."""
    try:
        return digest_path(final).read_text().split()[0].lower()
    except (OSError, IndexError):
        return None


def cached_file_status(final: Path | None = None) -> tuple[str, str | None]:
    """("missing" | "verified" | "unverified", sha256 or None) of the downloaded file: verified when its
    SHA-256 is the one written when it passed the check."""
    final = final or cached_weights_path()
    if not final.is_file():
        return "missing", None
    digest = sha256_of(final)
    return ("verified" if recorded_digest(final) == digest else "unverified"), digest


def _normalise_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    hex_digest = value.strip().lower()
    if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
        raise WeightsDownloadError(f"--sha256 {value!r} is not a SHA-256 digest (64 hexadecimal characters)")
    return hex_digest


def _offline_advice(url: str, final: Path) -> str:
    return (f"Run `swin-umamba weights download --dest DIR` on a machine with internet and copy "
            f"{RELEASE_FILE} to {final} here (or point {PRETRAINED_WEIGHTS_VAR} at the copy), or give a "
            f"mirror this machine can reach with --url (the file is {RELEASE_URL}).")


def _digest_warnings(digest: str, expected: str | None) -> list[str]:
    """Without --sha256, a digest other than the recorded one is worth a warning, not a refusal."""
    if expected is not None or digest == RECORDED_SHA256:
        return []
    return [f"the SHA-256 {digest} differs from the one recorded for {RELEASE_FILE}, {RECORDED_SHA256}; the file "
            "passed the structural check and is kept (give --sha256 to require a digest)"]


def _check(path: Path, expected: str | None, source: str, say: Callable[[str], None]) -> WeightsFile:
    """The loader's checks and the digests of the file from `source` (an address, or the file in place);
    raises WeightsDownloadError when the file must not be kept."""
    try:
        report = verify_v0_file(path)
    except PretrainedWeightsError as exc:
        raise WeightsDownloadError(f"the file from {source} is not the VMamba-Tiny v0 checkpoint: {exc.reason}") from exc
    digest = sha256_of(path)
    say(f"checked: {len(report.loaded)} tensors fit the VMamba-Tiny encoder; SHA-256 {digest}")
    if expected is not None and digest != expected:
        raise WeightsDownloadError(f"SHA-256 mismatch for the file from {source}: got {digest}, --sha256 expects "
                                   f"{expected}")
    return WeightsFile(path=path, sha256=digest, downloaded=False, tensors_matched=len(report.loaded),
                       warnings=_digest_warnings(digest, expected))


def _existing(final: Path, expected: str | None, say: Callable[[str], None]) -> WeightsFile | None:
    """The file already in place, if it passed before (or passes now) and fits --sha256; else None."""
    if not final.is_file():
        return None
    digest = sha256_of(final)
    if expected is not None and digest != expected:
        say(f"{final} is there but its SHA-256 {digest} is not the --sha256 given; downloading again")
        return None
    if recorded_digest(final) == digest:
        say(f"{final} is there and passed the check when it was downloaded (SHA-256 {digest}); nothing to download")
        return WeightsFile(path=final, sha256=digest, downloaded=False, tensors_matched=None,
                           warnings=_digest_warnings(digest, expected))
    try:
        found = _check(final, expected, str(final), say)
    except WeightsDownloadError as exc:
        say(f"{final} is there but does not pass ({exc}); downloading again")
        return None
    write_text_atomic(digest_path(final), f"{found.sha256}  {final.name}\n")
    say(f"{final} is there and passes the check; nothing to download")
    return found


def download_imagenet_weights(url: str = RELEASE_URL, dest_dir: Path | None = None, sha256: str | None = None,
                              say: Callable[[str], None] = print, progress_stream: TextIO | None = None,
                              ) -> WeightsFile:
    """Fetch the ImageNet file from `url` into `dest_dir` (default: the per-user cache folder, where the
    trainers look) under its release name, resuming a `.part` left by an interrupted run; check it; then
    rename it. A file already there that passed is kept and nothing is downloaded."""
    expected = _normalise_sha256(sha256)
    final = (Path(dest_dir).expanduser() / RELEASE_FILE) if dest_dir is not None else cached_weights_path()
    found = _existing(final, expected, say)
    if found is not None:
        return found
    part = part_path(final)
    say(f"downloading {url}\n  to {final}")
    try:
        fetch(url, part, Progress(progress_stream))
    except DownloadError as exc:
        if exc.kind == DownloadError.UNREACHABLE:
            raise WeightsDownloadError(f"{exc}. {_offline_advice(url, final)}") from exc
        if exc.kind == DownloadError.CUT:
            raise WeightsDownloadError(f"{exc}. What arrived is kept in {part}; run the command again to resume "
                                       "from there.") from exc
        if part.exists() and part.stat().st_size == 0:
            part.unlink()
        raise WeightsDownloadError(f"{exc}. Check the address, or give a mirror with --url.") from exc
    try:
        checked = _check(part, expected, url, say)
    except WeightsDownloadError:
        part.unlink()  # a finished body that fails would fail again on resume
        raise
    # the digest record is removed first and written after the rename: a record never vouches for a file
    # it was not computed from
    digest_path(final).unlink(missing_ok=True)
    os.replace(part, final)
    write_text_atomic(digest_path(final), f"{checked.sha256}  {final.name}\n")
    checked.path, checked.downloaded = final, True
    return checked

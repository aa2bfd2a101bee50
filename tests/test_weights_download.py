"""`swin-umamba weights download` against an HTTP server on 127.0.0.1 that this module starts: a full
download, resumes after cut connections, HTTP and HTML errors, a file that is not a checkpoint, digests,
no server at all, and a file:// address. After each run the final name holds a file that passed the
check, or nothing."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from swin_umamba.cli import main
from swin_umamba.environment import CACHE_DIR_VAR, PRETRAINED_WEIGHTS_VAR
from swin_umamba.pretrained import RECORDED_SHA256, RELEASE_FILE, resolve_weights_path, verify_v0_file
from swin_umamba.weights_download import digest_path, part_path
from tests.http_file_server import PROXY_VARS, serving
from tests.synthetic_weights import write_compact_checkpoint


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("weights") / RELEASE_FILE
    write_compact_checkpoint(path)
    return path.read_bytes()


@pytest.fixture
def server(weights_bytes, monkeypatch):
    """A server on 127.0.0.1 (port 0) in a thread; set .mode, .body, .content_type per test."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with serving(weights_bytes) as httpd:
        yield httpd


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "weights"


def download(url: str, *extra: str) -> int:
    return main(["weights", "download", "--url", url, *extra])


def assert_nothing_under_final_name(folder: Path) -> None:
    assert not (folder / RELEASE_FILE).exists()
    assert not digest_path(folder / RELEASE_FILE).exists()


def test_full_download_to_the_cache_is_checked_and_found_by_training(server, weights_bytes, tmp_path, monkeypatch,
                                                                      capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_VAR, str(cache))
    monkeypatch.delenv(PRETRAINED_WEIGHTS_VAR, raising=False)
    assert download(server.url) == 0
    out, err = capsys.readouterr()
    final = cache / RELEASE_FILE
    digest = hashlib.sha256(weights_bytes).hexdigest()
    assert final.read_bytes() == weights_bytes and not part_path(final).exists()
    assert digest_path(final).read_text().split() == [digest, RELEASE_FILE]
    assert digest in out and "208 tensors" in out
    assert out.strip().splitlines()[-1] == f"export {PRETRAINED_WEIGHTS_VAR}={final.resolve()}"
    # the synthetic file is not the released one: a warning naming both digests, the file is kept
    assert "warning" in err and digest in err and RECORDED_SHA256 in err
    assert "%" in err and "/s" in err and "left" in err  # the progress line
    assert resolve_weights_path() == final


def test_second_run_downloads_nothing(server, dest, capsys):
    assert download(server.url, "--dest", str(dest)) == 0
    assert len(server.ranges) == 1
    capsys.readouterr()
    assert download(server.url, "--dest", str(dest)) == 0
    out = capsys.readouterr().out
    assert len(server.ranges) == 1, "a second run must not ask the server again"
    assert "nothing to download" in out and f"export {PRETRAINED_WEIGHTS_VAR}={(dest / RELEASE_FILE).resolve()}" in out


def test_connection_cut_mid_body_is_resumed_with_a_range_request(server, weights_bytes, dest, capsys):
    server.mode = "cut first"
    assert download(server.url, "--dest", str(dest)) == 0
    assert server.ranges == [None, f"bytes={len(weights_bytes) // 2}-"]
    assert (dest / RELEASE_FILE).read_bytes() == weights_bytes
    assert "connection cut" in capsys.readouterr().err


def test_connection_cut_every_time_keeps_the_part_for_the_next_run(server, weights_bytes, dest, capsys):
    server.mode = "cut always"
    assert download(server.url, "--dest", str(dest)) == 1
    err = capsys.readouterr().err
    assert "cut 3 times" in err and "run the command again" in err
    assert len(server.ranges) == 3  # bounded: the first request and two resumes
    assert_nothing_under_final_name(dest)
    kept = part_path(dest / RELEASE_FILE).stat().st_size
    assert 0 < kept < len(weights_bytes)

    server.mode, server.ranges = "ok", []
    assert download(server.url, "--dest", str(dest)) == 0
    assert server.ranges == [f"bytes={kept}-"]
    assert (dest / RELEASE_FILE).read_bytes() == weights_bytes and not part_path(dest / RELEASE_FILE).exists()


def test_http_error_is_named(server, dest, capsys):
    server.mode = "404"
    assert download(server.url, "--dest", str(dest)) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and server.url in err and "--url" in err
    assert_nothing_under_final_name(dest)
    assert not part_path(dest / RELEASE_FILE).exists()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_the_file_is_named(server, dest, capsys, content_type):
    server.mode, server.content_type = "html", content_type
    assert download(server.url, "--dest", str(dest)) == 1
    err = capsys.readouterr().err
    assert "HTML page" in err and server.url in err
    assert_nothing_under_final_name(dest)
    assert not part_path(dest / RELEASE_FILE).exists()


def test_file_that_is_not_a_checkpoint_is_not_kept(server, dest, capsys):
    server.body = bytes(range(256)) * 64
    assert download(server.url, "--dest", str(dest)) == 1
    err = capsys.readouterr().err
    assert "not a PyTorch checkpoint" in err and server.url in err
    assert_nothing_under_final_name(dest)
    assert not part_path(dest / RELEASE_FILE).exists()


def test_wrong_sha256_is_an_error_and_nothing_is_kept(server, weights_bytes, dest, capsys):
    wrong = "0" * 64
    assert download(server.url, "--dest", str(dest), "--sha256", wrong) == 1
    err = capsys.readouterr().err
    assert "SHA-256 mismatch" in err and wrong in err and hashlib.sha256(weights_bytes).hexdigest() in err
    assert_nothing_under_final_name(dest)
    assert not part_path(dest / RELEASE_FILE).exists()


def test_given_sha256_that_matches_needs_no_warning(server, weights_bytes, dest, capsys):
    assert download(server.url, "--dest", str(dest), "--sha256", hashlib.sha256(weights_bytes).hexdigest().upper()) == 0
    assert "warning" not in capsys.readouterr().err
    verify_v0_file(dest / RELEASE_FILE)


def test_malformed_sha256_is_refused_before_any_request(server, dest, capsys):
    assert download(server.url, "--dest", str(dest), "--sha256", "abc") == 1
    assert "'abc' is not a SHA-256" in capsys.readouterr().err and server.ranges == []


def test_damaged_file_under_the_final_name_is_replaced(server, weights_bytes, dest, capsys):
    dest.mkdir()
    (dest / RELEASE_FILE).write_bytes(weights_bytes[:1000])
    assert download(server.url, "--dest", str(dest)) == 0
    assert "does not pass" in capsys.readouterr().out
    assert (dest / RELEASE_FILE).read_bytes() == weights_bytes


def test_no_server_names_the_address_and_what_to_do(dest, monkeypatch, capsys):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as probe:  # a port nobody listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{RELEASE_FILE}"
    assert download(url, "--dest", str(dest)) == 1
    err = capsys.readouterr().err
    assert f"cannot reach 127.0.0.1:{port}" in err and "machine with internet" in err and "--url" in err
    assert_nothing_under_final_name(dest)
    assert not os.path.exists(part_path(dest / RELEASE_FILE))


def test_file_address_is_copied_and_checked(weights_bytes, tmp_path, dest, capsys):
    """A file:// address (a shared drive on a machine without internet) goes through the same checks."""
    source = tmp_path / "share" / "copy.pth"
    source.parent.mkdir()
    source.write_bytes(weights_bytes)
    assert download(source.as_uri(), "--dest", str(dest)) == 0
    assert (dest / RELEASE_FILE).read_bytes() == weights_bytes and "208 tensors" in capsys.readouterr().out

"""A file server on 127.0.0.1 for the download tests: http.server on a free port in a thread, serving
one body in the ways a real server fails (see FileServer.mode). No other address is ever used."""
from __future__ import annotations

import contextlib
import http.server
import threading
from typing import Iterator

from swin_umamba.pretrained import RELEASE_FILE

# variables that would send a request to 127.0.0.1 through a proxy
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.body` the way `server.mode` says ("ok" with Range support, "404", "html", "cut first":
    the first response stops halfway, "cut always"), and records each request's Range header."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        mode = server.mode
        if mode == "404":
            self.send_error(404, "Not Found")
            return
        if mode == "html":
            page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", server.content_type)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body, start = server.body, 0
        requested = self.headers.get("Range")
        if requested:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        cut = mode == "cut always" or (mode == "cut first" and len(server.ranges) == 1)
        # a cut sends less than Content-Length promises, then closes the connection
        self.wfile.write(rest[: len(rest) // 2] if cut else rest)
        self.close_connection = True


@contextlib.contextmanager
def serving(body: bytes) -> Iterator[http.server.HTTPServer]:
    """A server for `body` at `.url`; set `.mode`, `.body`, `.content_type` (of "html") while it runs."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    httpd.mode, httpd.body, httpd.content_type, httpd.ranges = "ok", body, "text/html", []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/{RELEASE_FILE}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)

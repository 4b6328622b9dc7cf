"""A real HTTP proxy in front of moto's S3 server, to play S3-compatible stores that misbehave.

* `strip_conditions`: drops `If-None-Match` and `If-Match` from every request,
  the way a store (or a gateway in front of one) that does not implement
  conditional writes behaves: a create-only PUT becomes an overwrite.
* `bytes_per_second`: sends the bodies of blob downloads (`GET .../_blobs/...`)
  slowly, so a test can act while a pull is in the middle of its download.

botocore signs the headers it sends; moto does not check signatures, so a
request changed here is still served.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CONDITIONAL_HEADERS = {"if-none-match", "if-match"}
#: Headers that describe one hop, not the message (RFC 9110 7.6.1).
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@contextmanager
def s3_proxy(upstream: str, *, strip_conditions: bool = False, bytes_per_second: int | None = None) -> Iterator[str]:
    """Serve on a free port of 127.0.0.1 while inside; yields the proxy's URL."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:  # no line per request
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    data += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return data
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self) -> None:
            body = self._body()
            headers = {
                key: value
                for key, value in self.headers.items()
                if key.lower() not in HOP_HEADERS
                and not (strip_conditions and key.lower() in CONDITIONAL_HEADERS)
                and key.lower() != "content-length"
            }
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.end_headers()
                slow = bytes_per_second and self.command == "GET" and "/_blobs/" in self.path
                chunk = max(1, (bytes_per_second or 1) // 20) if slow else 1 << 20
                while data := response.read(chunk):
                    self.wfile.write(data)
                    self.wfile.flush()
                    if slow:
                        time.sleep(0.05)
            finally:
                upstream_conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

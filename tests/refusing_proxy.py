"""An HTTP proxy in front of the moto server that refuses some S3 writes, as a throttled
or failing S3 would: ``503 SlowDown`` for PUT and POST requests on keys under one prefix.

The job under test reaches it through ``AWS_ENDPOINT_URL`` like any endpoint, so its
botocore retries, its own whole-file retries and its error handling all meet real HTTP
responses. ``refusals`` is how many writes are still refused: a number counts down, -1
refuses until it is changed; the write probe's key is never refused (the run must start).
With ``refusals`` 0 it only records: every request, and the encryption each one asked for.
"""
from __future__ import annotations

import http.client
import re
import threading
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection"}


class RefusingProxy:
    def __init__(self, target: str, bucket: str, prefix: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.refused_path = f"/{bucket}/{prefix}"
        self.refusals = 0
        self.refused = 0
        #: (method, path) of every request, in the order they came
        self.requests: list[tuple[str, str]] = []
        #: (method, path, {header: value}) of every request, with only its server-side
        #: encryption headers (``x-amz-server-side-encryption*``, names in lower case)
        self.encryption: list[tuple[str, str, dict[str, str]]] = []
        #: for tests/s3_iam.py: (method, path, x-amz-copy-source or None, the keys a
        #: DeleteObjects body names) of every request
        self.authorized: list[tuple[str, str, str | None, list[str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "RefusingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _refuse(self, method: str, path: str) -> bool:
        if method not in ("PUT", "POST") or not path.startswith(self.refused_path):
            return False
        if "_featurize_write_probe" in path:
            return False
        with self._lock:
            if self.refusals == 0:
                return False
            if self.refusals > 0:
                self.refusals -= 1
            self.refused += 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                sse = {k.lower(): v for k, v in self.headers.items()
                       if k.lower().startswith("x-amz-server-side-encryption")}
                deleted = [unescape(k) for k in re.findall(r"<Key>(.*?)</Key>",
                                                            body.decode("utf-8", "replace"))] \
                    if self.command == "POST" and "?delete" in self.path else []
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    proxy.encryption.append((self.command, self.path, sse))
                    proxy.authorized.append((self.command, self.path,
                                             self.headers.get("x-amz-copy-source"), deleted))
                if proxy._refuse(self.command, self.path):
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.target, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # keeps the object's own Content-Length
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

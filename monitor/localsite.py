"""A small HTTP site on 127.0.0.1 serving sample regulator pages: the demo's, and the tests'.

HTTP/1.1 with Content-Length, so clients keep connections alive as they would with a real site.
A path can be overridden with a function, which is how tests make a page slow, down or odd.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPES = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html",  # FSTB's Big5 pages declare their charset only in a <meta> tag
    ".json": "application/json",
    ".pdf": "application/pdf",
}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[BaseHTTPRequestHandler], Response | None]  # None: the route wrote its own reply


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (a timeout being tested) is normal here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalSite:
    def __init__(self, root: Path, tls: ssl.SSLContext | None = None):
        """`tls`: a server context (its certificate loaded) to serve HTTPS instead of HTTP."""
        self.root = Path(root)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._server = QuietServer(("127.0.0.1", 0), self._handler())
        self._scheme = "https" if tls else "http"
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval: shutting the site down (after every test) takes 50 ms, not 500.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def __enter__(self) -> LocalSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_file(self, path: str) -> Response:
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.root.resolve()) or not file.is_file():
            return Response(404, b"<html><head><title>404 Not Found</title></head></html>")
        content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        return Response(200, file.read_bytes(), {"Content-Type": content_type})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes; with Nagle's algorithm the body then waits
                # for the client's delayed ACK: 40 ms per request on a kept-alive connection.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                self.body = b""
                self.dispatch()

            def do_POST(self) -> None:  # the SFC's e-Distribution API searches by POST
                self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.dispatch()

            def dispatch(self) -> None:
                path = self.path.split("?", 1)[0]
                site.requests.append((self.path, dict(self.headers)))
                route = site.routes.get(path)
                response = route(self) if route else site.serve_file(path)
                if response is not None:
                    self.send(response)

            def send(self, response: Response) -> None:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("Cache-Control", "no-cache, no-store")  # as the SFC and HKMA send
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

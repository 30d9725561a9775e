"""A small threaded HTTP(S) server base for the stand-ins.

Each stand-in subclasses `JsonHandler`, declares routes with `route(method, regex)`, and is run as its own
process through `serve(handler_cls, argv)` (see `python -m standins.<name> --help`).
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

Route = tuple[str, re.Pattern[str], Callable[..., None]]


def route(method: str, pattern: str):
    """Mark a handler method as serving `method` on paths matching `pattern` (named groups become kwargs)."""
    def mark(fn):
        fn._route = (method, re.compile(pattern + r"\Z", re.IGNORECASE))
        return fn
    return mark


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HealerStandin/1.0"
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed per request), no Nagle/delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    routes: list[Route] = []
    lock = threading.RLock()  # one lock per stand-in class; subclasses may replace it

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.routes = [(*getattr(fn, "_route"), fn) for fn in cls.__dict__.values() if hasattr(fn, "_route")]
        cls.lock = threading.RLock()

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ request helpers
    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def body_bytes(self) -> bytes:
        if not hasattr(self, "_body"):
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def json_body(self) -> Any:
        raw = self.body_bytes()
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------------ response helpers
    def send_json(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def base_url(self) -> str:
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        host, port = self.server.server_address[:2]
        return f"{scheme}://{host}:{port}"

    def not_found(self) -> None:
        self.send_json(404, {"error": {"code": "NotFound", "message": f"No route for {self.command} {self.path_only}"}})

    # ------------------------------------------------------------------ dispatch
    max_body = 64 * 1024 * 1024  # control APIs seed whole days of telemetry in one request

    def _dispatch(self) -> None:
        # One handler serves every request of a keep-alive connection: start each request without a cached body,
        # refuse oversized ones, and drain a body the route did not read so it never becomes the next request line.
        self.__dict__.pop("_body", None)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            self.close_connection = True
            return self.send_json(413, {"error": {"code": "RequestEntityTooLarge", "message": "body too large"}})
        try:
            self._route()
        finally:
            self.body_bytes()

    def _route(self) -> None:
        path = self.path_only
        for method, pattern, fn in self.routes:
            if method != self.command:
                continue
            m = pattern.match(path)
            if m:
                try:
                    fn(self, **m.groupdict())
                except Exception as exc:  # a stand-in bug must be visible, not a hung client
                    self.send_json(500, {"error": {"code": "StandinError", "message": repr(exc)}})
                return
        self.not_found()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


def serve(handler_cls: type[JsonHandler], argv: list[str] | None = None,
          configure: Callable[[argparse.Namespace], None] | None = None,
          extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    parser = argparse.ArgumentParser(description=handler_cls.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="PEM certificate: serve HTTPS")
    parser.add_argument("--key", help="PEM private key for --cert")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args(argv)
    if configure:
        configure(args)
    ThreadingHTTPServer.request_queue_size = 256
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler_cls)
    httpd.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.serve_forever()

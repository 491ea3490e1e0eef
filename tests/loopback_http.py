"""A scripted HTTP/1.1 server on 127.0.0.1 for protocol tests of the HTTP backends.

Each route answers with a `Reply`: a status, a body given as steps (bytes to send, a
pause, a wait until the test releases it), and how the body ends: cleanly, or by
dropping the connection mid-body. It records every request it gets.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hold:
    """A step that sends nothing until the test sets `release` (or the server stops)."""

    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Reply:
    status: int = 200
    steps: list = field(default_factory=list)  # bytes | float (seconds to pause) | Hold
    content_type: str = "application/x-ndjson"
    headers: dict = field(default_factory=dict)
    framing: str = "chunked"  # "chunked", or "close": the body ends when the connection closes
    drop: bool = False  # end by dropping the connection without finishing the body
    hold_headers: Hold | None = None  # answer nothing at all until released (a model loading)

    @classmethod
    def json(cls, obj, status: int = 200) -> "Reply":
        return cls(status=status, steps=[json.dumps(obj).encode()], content_type="application/json", framing="length")


Route = Callable[[dict], Reply]


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                self._answer(json.loads(raw) if raw else {})

            def _answer(self, body) -> None:
                server.requests.append((self.command, self.path, body))
                route = server.routes.get((self.command, self.path))
                reply = route(body) if route else Reply.json({"error": f"no route {self.path}"}, 404)
                try:
                    server._send(self, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (cancel, timeout): what the test wanted

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.hold_headers is not None:
            self._wait(reply.hold_headers)
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        for k, v in reply.headers.items():
            handler.send_header(k, v)
        if reply.framing == "length":
            body = b"".join(s for s in reply.steps if isinstance(s, bytes))
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        if reply.framing == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        for step in reply.steps:
            if isinstance(step, bytes):
                if reply.framing == "chunked":
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(step), step))
                else:
                    handler.wfile.write(step)
                handler.wfile.flush()
            elif isinstance(step, Hold):
                self._wait(step)
            else:
                self.stopping.wait(step)
        if reply.drop:
            # Shut the socket without the final zero-length chunk: a body cut off mid-stream.
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.framing == "chunked":
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()

    def _wait(self, hold: Hold) -> None:
        while not hold.release.wait(0.05) and not self.stopping.is_set():
            pass

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"

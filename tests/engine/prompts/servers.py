"""Real HTTP servers on 127.0.0.1 (ephemeral port) for the LLM and download tests."""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time


class FakeChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` server with scripted behaviour.

    ``mode``: ``ok`` (numbered list of 20 new descriptions per request), ``fail500``, ``garbage``
    (200 with non-JSON), ``hang`` (sleeps past the client's timeout), ``flaky`` (500 for the first
    ``fail_first`` requests, then ok), ``repeat`` (always the same 3 items), ``unauthorized`` (401),
    ``meanings`` (a fixed numbered list of meanings).
    """

    def __init__(self, mode: str = "ok", fail_first: int = 0, hang_s: float = 2.0):
        self.mode, self.fail_first, self.hang_s = mode, fail_first, hang_s
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                owner.headers.append(dict(self.headers))
                owner.paths.append(self.path)
                owner.respond(self, body, len(owner.requests))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def content(self, number: int) -> str:
        if self.mode == "repeat":
            return "1. a\n2. b\n3. c"
        if self.mode == "meanings":
            return ("Here are the meanings:\n1. a large long-legged bird\n"
                    "2. a machine for lifting heavy objects\n3. a stretching of the neck")
        lines = [f"{i + 1}. thing {number}-{i} in front, place {number}-{i}, light {i}, shot {i}"
                 for i in range(20)]
        return "Sure! Here are 20 descriptions:\n" + "\n".join(lines) + "\nEnjoy!"

    def respond(self, handler, body, number):
        mode = self.mode
        if mode == "flaky":
            mode = "fail500" if number <= self.fail_first else "ok"
        if mode == "hang":
            time.sleep(self.hang_s)
            mode = "ok"
        if mode == "fail500":
            return self._send(handler, 500, b'{"error": "overloaded"}')
        if mode == "unauthorized":
            return self._send(handler, 401, b'{"error": "bad key"}')
        if mode == "garbage":
            return self._send(handler, 200, b"<html>proxy error</html>")
        answer = {"choices": [{"message": {"role": "assistant", "content": self.content(number)}}]}
        return self._send(handler, 200, json.dumps(answer).encode())

    @staticmethod
    def _send(handler, code, payload):
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class FileServer:
    """Serves one payload for GET on 127.0.0.1; counts requests."""

    def __init__(self, payload: bytes):
        self.count = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.count += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/categories_places365.txt"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (port just released)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"

"""Real HTTP servers on 127.0.0.1 (ephemeral port) for the LLM and download tests."""
from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import time


def request_class(body: dict) -> str:
    """The class text of a contextual-diversification request ("photo of {c}. What ...")."""
    text = body["messages"][-1]["content"]
    m = re.search(r"photo of (.+?)\. What foreground", text)
    return m.group(1) if m else "thing"


def _aspects(c: str, n: int, i: int) -> tuple[str, str, str, str]:
    """Four distinct aspects of item i of answer n; the class is in the foreground."""
    return (f"{c} number {n}-{i} in front", f"place {n}-{i}", f"light {i}", f"shot {i}")


def answer(style: str, c: str, n: int, count: int = 20) -> str:
    """An answer with ``count`` items in one of the styles real models use (issue #14)."""
    items = [_aspects(c, n, i) for i in range(count)]
    labels = ("Foreground", "Background", "Lighting Condition", "Camera Angle")
    if style == "numbered":
        body = "\n".join(f"{i + 1}. " + ", ".join(a) for i, a in enumerate(items))
        return f"Sure! Here are {count} descriptions:\n" + body + "\nEnjoy!"
    if style == "inline_bold":   # 1. **Foreground:** x, **Background:** y, ...
        return "\n".join(f"{i + 1}. " + ", ".join(f"**{l}:** {v}" for l, v in zip(labels, a))
                         for i, a in enumerate(items))
    if style == "bold_labels":   # **Foreground**: x on continuation lines
        return "\n\n".join(f"{i + 1}. **{labels[0]}**: {a[0]}\n" + "\n".join(
            f"   **{l}**: {v}" for l, v in zip(labels[1:], a[1:])) for i, a in enumerate(items))
    if style == "bold_lines":    # a whole line in bold
        return "Here you go:\n\n" + "\n".join(f"**{i + 1}. " + ", ".join(a) + ".**"
                                                for i, a in enumerate(items))
    if style == "subbullets":    # "1." alone, then - Foreground: ... sub-bullets
        return "\n".join(f"{i + 1}.\n" + "\n".join(f"- {l}: {v}" for l, v in zip(labels, a))
                         for i, a in enumerate(items))
    if style == "description_headings":
        return "\n\n".join((f"**Description {i + 1}:**" if i % 2 else f"### Description {i + 1}")
                            + "\n" + "\n".join(f"* **{l}:** {v}" for l, v in zip(labels, a))
                            for i, a in enumerate(items))
    if style == "think":          # a reasoning block whose numbered lines are not items
        plan = ("<think>\nThe user wants descriptions. Let me structure each one:\n"
                "1. Foreground objects\n2. Background\n3. Lighting\n4. Camera Angle\n"
                "- maybe mention water\n</think>\n\n")
        return plan + answer("numbered", c, n, count)
    if style == "companions":     # the foreground names only what is with the class
        return "\n".join(f"{i + 1}. a fishing rod {n}-{i} and a landing net, a misty lake "
                         f"{n}-{i}, soft light {i}, close-up shot {i}" for i in range(count))
    if style == "reordered":      # labelled, but not in the paper's order
        return "\n".join(f"{i + 1}. Camera Angle: {a[3]}; Lighting: {a[2]}; Foreground: {a[0]}; "
                         f"Background: {a[1]}" for i, a in enumerate(items))
    if style == "json":
        objs = [dict(zip(("foreground", "background", "lighting_condition", "camera_angle"), a))
                for a in items]
        return "Here is the JSON:\n```json\n" + json.dumps(objs, indent=2) + "\n```\nDone."
    if style == "json_strings":
        return json.dumps([", ".join(a) for a in items])
    if style == "headings_fence":
        return ("## Descriptions of the photo\n\n```\n" + answer("numbered", c, n, count)
                + "\n```\n\nLet me know if you need more!")
    if style == "few":            # fewer than asked for
        return answer("numbered", c, n, 7)
    if style == "duplicates":     # every item twice
        half = [_aspects(c, n, i) for i in range(count // 2)]
        return "\n".join(f"{j + 1}. " + ", ".join(half[j % len(half)]) for j in range(count))
    if style == "unusable":       # every sub-bullet its own item, one aspect each
        return "\n".join(f"{4 * i + k + 1}. {v}" for i, a in enumerate(items)
                         for k, v in enumerate(a[1:]))
    if style == "refusal":
        return "I'm sorry, but I can't help with that request."
    raise ValueError(f"unknown answer style {style!r}")


STYLES = ("numbered", "inline_bold", "bold_labels", "bold_lines", "subbullets",
          "description_headings", "think", "companions", "reordered", "json", "json_strings",
          "headings_fence", "few", "duplicates")
"""Answer styles whose items are all usable (the last two: fewer than 20, duplicates)."""

MEANINGS_MARKDOWN = ("<think>\nCrane: bird, machine, verb. 1. bird 2. machine\n</think>\n"
                     "Here are meanings of **crane**:\n\n1. **A large long-legged bird**\n"
                     "2. *a machine for lifting heavy objects*\n3. `to stretch the neck to see "
                     "better`\n\nLet me know if you need more!")


class FakeChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` server with scripted behaviour.

    ``mode``: an answer style of :func:`answer` (``ok`` = ``numbered``), ``markdown_mix`` (the
    styles of :data:`STYLES` in turn), ``alternate`` (unusable and numbered in turn),
    ``fail500``, ``unavailable`` (503 with ``Retry-After``), ``rate_limited`` (429 with
    ``Retry-After`` for the first ``fail_first`` requests, then ok), ``garbage`` (200 with
    non-JSON), ``hang`` (sleeps past the client's timeout), ``flaky`` (500 for the first
    ``fail_first`` requests, then ok), ``repeat`` (always the same 3 items), ``unauthorized``
    (401), ``meanings`` / ``meanings_markdown`` (a fixed list of meanings).
    """

    def __init__(self, mode: str = "ok", fail_first: int = 0, hang_s: float = 2.0,
                 retry_after: str = "2"):
        self.mode, self.fail_first, self.hang_s = mode, fail_first, hang_s
        self.retry_after = retry_after
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

    def content(self, body: dict, number: int) -> str:
        mode = self.mode
        if mode == "repeat":
            return answer("numbered", request_class(body), 0, 3)
        if mode == "meanings":
            return ("Here are the meanings:\n1. a large long-legged bird\n"
                    "2. a machine for lifting heavy objects\n3. a stretching of the neck")
        if mode == "meanings_markdown":
            return MEANINGS_MARKDOWN
        c = request_class(body)
        if mode in ("ok", "flaky", "hang", "rate_limited"):
            mode = "numbered"
        elif mode == "markdown_mix":
            mode = STYLES[(number - 1) % len(STYLES)]
        elif mode == "alternate":
            mode = "unusable" if number % 2 else "numbered"
        return answer(mode, c, number)

    def respond(self, handler, body, number):
        mode = self.mode
        if mode == "flaky":
            mode = "fail500" if number <= self.fail_first else "ok"
        if mode == "rate_limited" and number <= self.fail_first:
            return self._send(handler, 429, b'{"error": "slow down"}',
                              {"Retry-After": self.retry_after})
        if mode == "unavailable":
            return self._send(handler, 503, b'{"error": "maintenance"}',
                              {"Retry-After": self.retry_after})
        if mode == "hang":
            time.sleep(self.hang_s)
            mode = "ok"
        if mode == "fail500":
            return self._send(handler, 500, b'{"error": "overloaded"}')
        if mode == "unauthorized":
            return self._send(handler, 401, b'{"error": "bad key"}')
        if mode == "garbage":
            return self._send(handler, 200, b"<html>proxy error</html>")
        reply = {"choices": [{"message": {"role": "assistant",
                                          "content": self.content(body, number)}}]}
        return self._send(handler, 200, json.dumps(reply).encode())

    @staticmethod
    def _send(handler, code, payload, headers=None):
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(code)
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
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

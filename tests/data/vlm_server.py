"""A tiny OpenAI-compatible chat-completions server for tests: deterministic answers, scripted failures.

    server = ChatServer(api_key="k").start()     # base_url: http://127.0.0.1:<port>/v1
    server.script = ["429", "500", "garbage"]     # what the next requests get, in order; then normal answers
    ...
    server.stop()

Modes: "429" (with Retry-After: 0), "500", "garbage" (a body that is not JSON), "no_choices" (JSON without
an answer), "prose" (an answer that is no instruction), "slow" (answers after `slow_s`), "401".
Normal answers come from `answer(body)`: by default one of ANSWERS picked by a hash of the request's images,
so the same clips always get the same instruction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-test-7f3a9c1e5b"  # what tests put in KEY_ENV; it must never show up in logs or errors
KEY_ENV = "RETAKE_TEST_VLM_KEY"

ANSWERS = (
    "Zoom out and pan to the right.",
    "Move the camera closer to the subject.",
    "Replace the background with a sunny street.",
    "Add a second person walking behind her.",
    "Remove the chair on the left.",
)


def default_answer(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(_image_urls(body)).encode()).digest()
    return ANSWERS[digest[0] % len(ANSWERS)]


def _image_urls(body: dict[str, Any]) -> list[str]:
    urls = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            urls += [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
    return urls


class ChatServer:
    def __init__(self, api_key: str = "test-key", answer: Callable[[dict], str] = default_answer) -> None:
        self.api_key = api_key
        self.answer = answer
        self.script: list[str] = []
        self.slow_s = 1.0
        self.bodies: list[dict[str, Any]] = []  # every request that reached the handler
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                server.handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length", 0))
        body = json.loads(request.rfile.read(length))
        with self.lock:
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            mode = self.script.pop(0) if self.script else "ok"
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        request.retake_counted = True  # type: ignore[attr-defined]  # cleared once the request stops counting
        try:
            self._reply(request, body, mode)
        finally:
            self._leave(request)

    def _leave(self, request: BaseHTTPRequestHandler) -> None:
        """Stop counting `request` as in flight: before its reply is written (a client that has the reply may
        send its next request at once, before this thread runs again), or when it ends without one."""
        with self.lock:
            if getattr(request, "retake_counted", False):
                request.retake_counted = False  # type: ignore[attr-defined]
                self.in_flight -= 1

    def _reply(self, request: BaseHTTPRequestHandler, body: dict[str, Any], mode: str) -> None:
        if request.path != "/v1/chat/completions":
            return self._send(request, 404, {"error": {"message": f"no route {request.path}"}})
        if mode == "401" or request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._send(request, 401, {"error": {"message": "invalid api key"}})
        if mode == "429":
            return self._send(request, 429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
        if mode == "500":
            return self._send(request, 500, {"error": {"message": "internal error"}})
        if mode == "garbage":
            return self._send_raw(request, 200, b"<html>upstream hiccup</html>")
        if mode == "no_choices":
            return self._send(request, 200, {"id": "x", "choices": []})
        if mode == "slow":
            time.sleep(self.slow_s)
        # Keep several requests in the handler at once, so concurrency limits can be observed.
        time.sleep(0.05)
        text = "The first clip shows a dog. The second shows a cat." if mode == "prose" else self.answer(body)
        usage = {"prompt_tokens": 50 + 85 * len(_image_urls(body)), "completion_tokens": len(text.split())}
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self._send(
            request, 200, {"id": "cmpl", "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def _send(
        self, request: BaseHTTPRequestHandler, status: int, data: dict, headers: dict | None = None
    ) -> None:
        self._send_raw(request, status, json.dumps(data).encode(), headers)

    def _send_raw(
        self, request: BaseHTTPRequestHandler, status: int, raw: bytes, headers: dict | None = None
    ) -> None:
        self._leave(request)
        try:
            request.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                request.send_header(key, value)
            request.send_header("Content-Length", str(len(raw)))
            request.end_headers()
            request.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

"""A local OpenAI-compatible chat server over real HTTP, for targets and judges in tests.

It answers `POST /v1/chat/completions` with what `answer(prompt)` returns and
real `usage` counts, records every request, and injects faults: a queue of
statuses for the next requests (with headers such as Retry-After), and
prompts that always fail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIServer:
    def __init__(self, answer: Callable[[str], str]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        #: (status, headers) for the next requests, first first.
        self.faults: list[tuple[int, dict[str, str]]] = []
        #: A prompt containing one of these always gets this status.
        self.failing: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply(self, payload: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        prompt = payload["messages"][-1]["content"]
        with self._lock:
            self.requests.append({"payload": payload, "authorization": headers.get("authorization")})
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return fault[0], fault[1], {"error": {"message": f"injected {fault[0]}"}}
        for needle, status in self.failing.items():
            if needle in prompt:
                return status, {}, {"error": {"message": "this prompt always fails"}}
        text = self.answer(prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        body = {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        }
        return 200, {}, {**body, "model": payload["model"], "usage": usage}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {}, {"error": {"message": "not found"}})
                    return
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*server._reply(payload, {k.lower(): v for k, v in self.headers.items()}))

            def _send(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

"""A local OpenAI-compatible HTTP server that replays recorded chat completions.

Each POST to ``/v1/chat/completions`` is answered with the next scripted step, in
order, or, given ``respond``, with the step that function picks for the request (so
concurrent or many-model clients get answers by what they asked, not by arrival); its
JSON body is kept in ``requests`` for the test to inspect. A step is a recorded
completion (a dict), or a ``Step`` with an HTTP status and/or a delay.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

REPLAYS = Path(__file__).parent / "replays"


@dataclass
class Step:
    body: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    delay_s: float = 0.0


def completion(
    text: str,
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    id: str = "chatcmpl-replay",
) -> dict[str, Any]:
    """A chat completion in the shape the OpenAI API answers, holding ``text``."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": 1764720000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def recorded(name: str) -> list[dict[str, Any]]:
    """The completions recorded in ``replays/<name>.json`` (a JSON list)."""
    return json.loads((REPLAYS / f"{name}.json").read_text())


class ReplayServer:
    def __init__(
        self,
        steps: list[dict[str, Any] | Step] | None = None,
        *,
        respond: Callable[[dict[str, Any]], Step] | None = None,
    ) -> None:
        self.steps = [s if isinstance(s, Step) else Step(s) for s in steps or []]
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.paths.append(self.path)
                    index = len(server.requests) - 1
                if server.respond is not None:
                    step = server.respond(body)
                elif index < len(server.steps):
                    step = server.steps[index]
                else:
                    step = Step({"error": {"message": "no more recorded answers"}}, status=500)
                if step.delay_s:
                    time.sleep(step.delay_s)
                data = json.dumps(step.body).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

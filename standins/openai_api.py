"""Stand-in for chat completions: Azure OpenAI and OpenAI-compatible, as the `openai` SDK calls them.

    python -m standins.openai_api --port N [--token-secret S] [--api-key K] [--cert C --key K]

  POST /openai/deployments/{deployment}/chat/completions?api-version=V   Azure OpenAI: `Authorization: Bearer <JWT>`
       (HS256 with --token-secret, audience https://cognitiveservices.azure.com) or `api-key: K`
  POST /v1/chat/completions                                              OpenAI-compatible: `Bearer K`
  200 {"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message": {"role",
       "content"}, "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
  429 {"error": {...}} + `retry-after` when scripted; 401 without valid credentials; 400 without messages.

Scripted behaviour (control API, no auth), consumed one per completion request, FIFO:
  POST /_standin/script [{"kind": "json", "content": {...}} | {"kind": "text", "content": "..."} |
                         {"kind": "malformed"} | {"kind": "throttle", "retry_after": 1} |
                         {"kind": "slow", "delay": 2, "then": {...another step...}}]
  With nothing scripted the answer is a valid, generic diagnosis without a patch.
  GET /_standin/requests   every completion request (path, headers without credentials, body)
  POST /_standin/reset
"""
from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

from standins.httpbase import JsonHandler, route, serve
from standins.tokens import verify

AUDIENCES = ("https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/")
DEFAULT_ANSWER = {"summary": "The error is raised by application code on a request path.",
                  "likely_cause": "See the stack: the innermost in-app frame does not guard its input.",
                  "proposed_fix": "Validate the input before use and return a client error.",
                  "confidence": "low", "patch": None}


class State:
    def __init__(self) -> None:
        self.token_secret = ""
        self.api_key = ""
        self.script: deque = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.RLock()


STATE = State()


class OpenAIHandler(JsonHandler):
    """Chat completions stand-in."""

    def _authorised(self, azure: bool) -> bool:
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if azure and STATE.api_key and self.headers.get("api-key") == STATE.api_key:
            return True
        if scheme.lower() == "bearer" and token:
            if azure and STATE.token_secret:
                claims, _, _ = verify(token, STATE.token_secret, AUDIENCES)
                return claims is not None
            return bool(STATE.api_key) and token == STATE.api_key
        return False

    def _complete(self, model: str, azure: bool) -> None:
        try:
            body = self.json_body() or {}
        except ValueError:
            body = None
        with STATE.lock:
            STATE.requests.append({"path": self.path_only, "azure": azure, "body": body,
                                   "authorised": None})
            entry = STATE.requests[-1]
        if not self._authorised(azure):
            entry["authorised"] = False
            return self.send_json(401, {"error": {"code": "401", "message": "Access denied due to invalid "
                                                  "subscription key or wrong API endpoint."}})
        entry["authorised"] = True
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.send_json(400, {"error": {"code": "invalid_request_error", "message": "messages required"}})
        with STATE.lock:
            step = STATE.script.popleft() if STATE.script else {"kind": "json", "content": DEFAULT_ANSWER}
        if step.get("kind") == "slow":
            time.sleep(float(step.get("delay", 1)))
            step = step.get("then") or {"kind": "json", "content": DEFAULT_ANSWER}
        if step.get("kind") == "throttle":
            ra = step.get("retry_after", 1)
            return self.send_json(429, {"error": {"code": "429", "message": "Requests to the ChatCompletions "
                                                  "Operation have exceeded the rate limit."}},
                                  {"retry-after": f"{ra:g}", "retry-after-ms": str(int(float(ra) * 1000))})
        if step.get("kind") == "malformed":
            content = '{"summary": "truncated answer", "likely_cause": '
        elif step.get("kind") == "text":
            content = str(step.get("content", ""))
        else:
            content = json.dumps(step.get("content", DEFAULT_ANSWER))
        prompt = sum(len(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict)) // 4
        completion = max(len(content) // 4, 1)
        self.send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})

    @route("POST", r"/openai/deployments/(?P<deployment>[A-Za-z0-9_.\-]{1,64})/chat/completions")
    def azure(self, deployment: str) -> None:
        if not self.query.get("api-version"):
            return self.send_json(404, {"error": {"code": "404", "message": "Resource not found"}})
        self._complete(deployment, azure=True)

    @route("POST", r"/(?:v1/)?chat/completions")
    def openai(self) -> None:
        body_model = "model"
        self._complete(body_model, azure=False)

    # ------------------------------------------------------------------ control
    @route("POST", r"/_standin/script")
    def script(self) -> None:
        steps = self.json_body()
        if not isinstance(steps, list):
            return self.send_json(400, {"error": "a list of steps"})
        with STATE.lock:
            STATE.script.extend(steps)
        self.send_json(200, {"queued": len(STATE.script)})

    @route("GET", r"/_standin/requests")
    def list_requests(self) -> None:
        with STATE.lock:
            self.send_json(200, {"requests": list(STATE.requests)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        with STATE.lock:
            STATE.script.clear()
            STATE.requests.clear()
        self.send_json(200, {"reset": True})


def main(argv: list[str] | None = None) -> None:
    def extra(parser) -> None:
        parser.add_argument("--token-secret", default="", help="HS256 secret of accepted Entra-style tokens")
        parser.add_argument("--api-key", default="", help="accepted API key")

    def configure(args) -> None:
        STATE.token_secret, STATE.api_key = args.token_secret, args.api_key

    serve(OpenAIHandler, argv, configure=configure, extra_args=extra)


class OpenAIStandin:
    def __init__(self, server: Any, url: str):
        self.server, self.url = server, url

    def control(self, method: str, path: str, body: Any = None) -> Any:
        import httpx
        resp = httpx.request(method, f"{self.url}/_standin/{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def script(self, *steps: dict[str, Any]) -> None:
        self.control("POST", "script", list(steps))

    def requests(self) -> list[dict[str, Any]]:
        return self.control("GET", "requests")["requests"]

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def stop(self) -> None:
        self.server.stop()


def start_openai(workdir, *, token_secret: str = "", api_key: str = "") -> OpenAIStandin:
    from standins.harness import free_port, start_python_server
    port = free_port()
    args = ["--port", str(port), "--token-secret", token_secret, "--api-key", api_key]
    server = start_python_server("openai", "standins.openai_api", args, port, workdir)
    return OpenAIStandin(server, f"http://127.0.0.1:{port}")


if __name__ == "__main__":
    main(sys.argv[1:])

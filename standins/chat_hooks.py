"""Common parts of the chat webhook stand-ins (Teams Workflows, Slack incoming webhooks): record every POST with
the status the stand-in answered, and let a test make the next N deliveries fail.

Control: `GET /_standin/received` (every request: path, body, status, error), `POST /_standin/reset`,
`POST /_standin/fail {"count": N, "status": 503}`, `POST /_standin/latency {"seconds": S}` (a slow service).
"""
from __future__ import annotations

import time
from typing import Any

from standins.httpbase import JsonHandler, route


class RecordingHook(JsonHandler):
    received: list[dict[str, Any]] = []
    failures: list[int] = []
    ok_status = 200
    latency = 0.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:  # inherit the control routes
            for entry in getattr(base, "routes", []):
                if entry not in cls.routes:
                    cls.routes.append(entry)
        cls.received, cls.failures = [], []

    def validate(self, body: Any) -> str | None:
        """None when the payload is acceptable, else the service's error."""
        raise NotImplementedError

    def accept(self) -> None:
        raise NotImplementedError

    def refuse(self, error: str) -> None:
        raise NotImplementedError

    def take(self) -> None:
        if type(self).latency:
            time.sleep(type(self).latency)
        try:
            body = self.json_body()
        except ValueError:
            body, error = self.body_bytes()[:2000].decode("utf-8", "replace"), "invalid_payload"
        else:
            error = self.validate(body)
        with self.lock:
            failing = type(self).failures.pop(0) if type(self).failures else None
            status = failing or (self.ok_status if error is None else 400)
            type(self).received.append({"path": self.path_only, "body": body, "status": status,
                                        "error": error if failing is None else f"injected HTTP {failing}"})
        if failing:
            return self.send_json(failing, {"error": "injected failure"})
        if error is not None:
            return self.refuse(error)
        self.accept()

    @route("GET", r"/_standin/received")
    def list_received(self) -> None:
        with self.lock:
            self.send_json(200, {"received": list(type(self).received)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        with self.lock:
            type(self).received.clear()
            type(self).failures.clear()
            type(self).latency = 0.0
        self.send_json(200, {})

    @route("POST", r"/_standin/latency")
    def set_latency(self) -> None:
        type(self).latency = float((self.json_body() or {}).get("seconds", 0))
        self.send_json(200, {})

    @route("POST", r"/_standin/fail")
    def fail(self) -> None:
        body = self.json_body() or {}
        with self.lock:
            type(self).failures.extend([int(body.get("status", 503))] * int(body.get("count", 1)))
        self.send_json(200, {})


def accepted(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deliveries the stand-in accepted (2xx)."""
    return [r for r in received if 200 <= r["status"] < 300]

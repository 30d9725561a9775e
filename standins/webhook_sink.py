"""Stand-in for a notification webhook (Teams / Slack / Logic App): accepts JSON POSTs and keeps them.

Control: `GET /_standin/received`, `POST /_standin/reset`.
"""
from __future__ import annotations

from standins.httpbase import JsonHandler, route, serve


class WebhookSinkHandler(JsonHandler):
    """Notification webhook stand-in."""
    received: list[dict] = []

    @route("POST", r"/hook(?:/.*)?")
    def hook(self) -> None:
        with self.lock:
            type(self).received.append({"path": self.path_only, "body": self.json_body()})
        self.send_json(200, {"ok": True})

    @route("GET", r"/_standin/received")
    def list_received(self) -> None:
        with self.lock:
            self.send_json(200, {"received": list(type(self).received)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        with self.lock:
            type(self).received.clear()
        self.send_json(200, {})


if __name__ == "__main__":
    serve(WebhookSinkHandler)

"""Stand-in for a pre-action policy hook (a change-management gate): answers each POST by the last path segment.

`/hook/allow`, `/hook/ask`, `/hook/deny`: {"decision": ..., "reason": "stand-in says ..."}; `/hook/slow`: allow, but
only after 5 s (longer than any hook timeout a test sets); `/hook/garbage`: 200 with a body that is not JSON;
`/hook/error`: 500. Control: `GET /_standin/received` (the request bodies), `POST /_standin/reset`.
"""
from __future__ import annotations

import threading

from standins.httpbase import JsonHandler, route, serve

_slow = threading.Event()


class PolicyHookHandler(JsonHandler):
    """Pre-action hook stand-in."""
    received: list[dict] = []

    @route("POST", r"/hook/(?P<mode>[a-z]+)")
    def hook(self, mode: str) -> None:
        with self.lock:
            type(self).received.append({"mode": mode, "body": self.json_body()})
        if mode in ("allow", "ask", "deny"):
            return self.send_json(200, {"decision": mode, "reason": f"stand-in says {mode}"})
        if mode == "slow":
            _slow.wait(5.0)   # the caller's timeout is what the test exercises
            return self.send_json(200, {"decision": "allow"})
        if mode == "garbage":
            return self.send_raw(200, b"<html>maybe</html>", "text/html")
        self.send_json(500, {"error": "hook broke"})

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
    serve(PolicyHookHandler)

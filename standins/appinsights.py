"""Stand-in for the Application Insights ingestion endpoint (`POST /v2.1/track`, `/v2/track`).

The Azure Monitor OpenTelemetry exporter sends JSON arrays of envelopes (optionally gzip-compressed); this
server keeps them so a test can assert what Healer emitted. Control: `GET /_standin/envelopes`, `POST /_standin/reset`.
"""
from __future__ import annotations

import gzip
import json

from standins.httpbase import JsonHandler, route, serve


class AppInsightsHandler(JsonHandler):
    """Application Insights ingestion stand-in."""
    envelopes: list[dict] = []

    @route("POST", r"/v2(?:\.1)?/track")
    def track(self) -> None:
        raw = self.body_bytes()
        if self.headers.get("Content-Encoding", "").lower() == "gzip" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode()
        items = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                           if line.strip()]
        with self.lock:
            type(self).envelopes.extend(items)
        self.send_json(200, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})

    @route("GET", r"/_standin/envelopes")
    def list_envelopes(self) -> None:
        with self.lock:
            self.send_json(200, {"envelopes": list(type(self).envelopes)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        with self.lock:
            type(self).envelopes.clear()
        self.send_json(200, {})


if __name__ == "__main__":
    serve(AppInsightsHandler)

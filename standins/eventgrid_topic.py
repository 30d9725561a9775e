"""Stand-in for an Event Grid custom topic (basic tier), receiving what `EventGridPublisherClient.send` POSTs.

- `POST /api/events?api-version=<v>` with header `aeg-sas-key: <key>` (AzureKeyCredential) or
  `Authorization: Bearer <JWT with aud https://eventgrid.azure.net>` (TokenCredential; signature not checked).
- Body: a JSON array of Event Grid schema events (`application/json`) or of CloudEvents 1.0
  (`application/cloudevents-batch+json`). Each event is validated; one bad event rejects the batch with 400
  `{"error": {"code": "BadRequest", "message": ...}}`, as the service does. Batch limit 1 MB.
- Control: `GET /_standin/events` lists stored events (in arrival order), `DELETE /_standin/events` clears them.

Run: python -m standins.eventgrid_topic --port P --cert C --key K --topic-key SECRET
"""
from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import re

import jwt

from standins.httpbase import JsonHandler, route, serve

MAX_BATCH = 1024 * 1024
EVENTGRID_AUDIENCES = {"https://eventgrid.azure.net", "https://eventgrid.azure.net/"}
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _is_time(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def validate_eventgrid_event(ev) -> str | None:
    if not isinstance(ev, dict):
        return "each event must be a JSON object"
    for name in ("id", "subject", "eventType", "dataVersion"):
        if not isinstance(ev.get(name), str) or (name != "dataVersion" and not ev[name]):
            return f"required property '{name}' is missing or not a string"
    if not _is_time(ev.get("eventTime")):
        return "required property 'eventTime' is missing or not an ISO 8601 time"
    if "data" not in ev:
        return "required property 'data' is missing"
    if ev.get("metadataVersion") not in (None, "1"):
        return "metadataVersion must be '1'"
    return None


def validate_cloudevent(ev) -> str | None:
    if not isinstance(ev, dict):
        return "each event must be a JSON object"
    if ev.get("specversion") != "1.0":
        return "specversion must be '1.0'"
    for name in ("id", "source", "type"):
        if not isinstance(ev.get(name), str) or not ev[name]:
            return f"required attribute '{name}' is missing"
    if "time" in ev and not _is_time(ev["time"]):
        return "attribute 'time' is not an RFC 3339 time"
    return None


class EventGridTopicHandler(JsonHandler):
    """Stand-in Event Grid custom topic."""

    topic_key = ""
    events: list[dict] = []
    requests: list[dict] = []

    max_body = 64 * 1024

    def bad(self, message: str) -> None:
        self.send_json(400, {"error": {"code": "BadRequest", "message": message}})

    def authorized(self) -> bool:
        key = self.headers.get("aeg-sas-key")
        if key is not None:
            return bool(self.topic_key) and hmac.compare_digest(key.encode(), self.topic_key.encode())
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            try:
                claims = jwt.decode(auth[7:].strip(), options={"verify_signature": False})
            except jwt.PyJWTError:
                return False
            aud = claims.get("aud")
            auds = set(aud) if isinstance(aud, list) else {aud}
            return bool(auds & EVENTGRID_AUDIENCES)
        return False

    @route("POST", r"/api/events")
    def publish(self) -> None:
        if not self.query.get("api-version"):
            return self.bad("the api-version query parameter is required")
        if not self.authorized():
            return self.send_json(401, {"error": {"code": "Unauthorized", "message": "missing or invalid key"}})
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            body = json.loads(self.body_bytes() or b"null")
        except ValueError:
            return self.bad("body is not JSON")
        if not isinstance(body, list) or not body:
            return self.bad("body must be a non-empty JSON array of events")
        if content_type == "application/cloudevents-batch+json":
            schema, check = "cloudevents", validate_cloudevent
        elif content_type == "application/json":
            schema, check = "eventgrid", validate_eventgrid_event
        else:
            return self.bad(f"unsupported content type {content_type!r}")
        for index, ev in enumerate(body):
            problem = check(ev)
            if problem:
                return self.bad(f"event[{index}]: {problem}")
        with self.lock:
            self.requests.append({"schema": schema, "count": len(body),
                                  "apiVersion": self.query.get("api-version")})
            for ev in body:
                self.events.append({**ev, "_schema": schema})
        self.send_json(200)

    @route("GET", r"/_standin/events")
    def list_events(self) -> None:
        with self.lock:
            self.send_json(200, {"events": list(self.events), "requests": list(self.requests)})

    @route("DELETE", r"/_standin/events")
    def clear(self) -> None:
        with self.lock:
            self.events.clear()
            self.requests.clear()
        self.send_json(200, {"cleared": True})


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic-key", required=True, help="the key expected in aeg-sas-key")


def _configure(args: argparse.Namespace) -> None:
    EventGridTopicHandler.topic_key = args.topic_key
    EventGridTopicHandler.events = []
    EventGridTopicHandler.requests = []


if __name__ == "__main__":
    serve(EventGridTopicHandler, configure=_configure, extra_args=_args)

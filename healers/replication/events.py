"""Parse and validate ACR push/delete events delivered by Event Grid (Event Grid schema or CloudEvents 1.0).

Everything here is untrusted input: sizes are bounded, names and digests are checked against the OCI
distribution grammar, and anything malformed raises `EventParseError` with a message safe to audit.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal, Union
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from shared import safejson

IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
IMAGE_DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
HANDLED_TYPES = {IMAGE_PUSHED: "push", IMAGE_DELETED: "delete"}

MAX_BODY_BYTES = 1024 * 1024          # Event Grid's own batch limit
MAX_EVENTS_PER_BATCH = 5000
MAX_FIELD = 1024

# OCI distribution-spec grammar (spec.md, "Pulling manifests").
REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
REGISTRY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
HOST_RE = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?")
REGION_RE = re.compile(r"[a-z0-9]{1,40}")
_REGISTRY_IN_RESOURCE_ID = re.compile(r"/providers/Microsoft\.ContainerRegistry/registries/([^/]+)", re.IGNORECASE)


class EventParseError(ValueError):
    """The delivery is not a well-formed event; the message says what is wrong (never echoes large input)."""


class AcrImageEvent(BaseModel):
    """One ACR ImagePushed / ImageDeleted event, normalised across both delivery schemas."""
    model_config = ConfigDict(frozen=True)

    kind: Literal["acr"] = "acr"
    event_id: str
    event_type: str
    action: Literal["push", "delete"]
    schema_name: Literal["eventgrid", "cloudevents", "api"]   # "api": POST /api/replication/waits
    registry: str                 # short registry name, lower case ("myreg")
    login_server: str | None      # request.host, e.g. "myreg.azurecr.io"
    repository: str
    tag: str | None
    digest: str
    media_type: str | None
    location: str | None          # region that emitted the event, when ACR says so
    request_id: str | None
    event_time: dt.datetime

    @property
    def wait_key(self) -> tuple[str, str, str]:
        return (self.registry, self.repository, self.digest)


class ValidationHandshake(BaseModel):
    """Event Grid subscription validation: answer `{"validationResponse": validation_code}`."""
    model_config = ConfigDict(frozen=True)

    kind: Literal["validation"] = "validation"
    event_id: str
    validation_code: str
    validation_url: str | None

    def response_body(self) -> dict[str, str]:
        return {"validationResponse": self.validation_code}


class IgnoredEvent(BaseModel):
    """A well-formed event of a type this healer does not handle (to be audited, not dropped silently)."""
    model_config = ConfigDict(frozen=True)

    kind: Literal["ignored"] = "ignored"
    event_id: str
    event_type: str
    reason: str


ParsedEvent = Union[AcrImageEvent, ValidationHandshake, IgnoredEvent]


# ---------------------------------------------------------------------------------------------- helpers

def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _str(obj: Mapping[str, Any], key: str, *, required: bool = True, limit: int = MAX_FIELD) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise EventParseError(f"missing field '{key}'")
        return None
    if not isinstance(value, str):
        raise EventParseError(f"field '{key}' must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise EventParseError(f"field '{key}' is longer than {limit} characters")
    return value


def _time(value: Any, key: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise EventParseError(f"field '{key}' must be an ISO 8601 time string")
    text = value.strip()
    # Event Grid emits 7 fractional digits ("...47.6549614Z"); Python accepts at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise EventParseError(f"field '{key}' is not an ISO 8601 time: {_short(value)}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _registry_name(resource_id: str | None, host: str | None) -> str:
    if resource_id:
        m = _REGISTRY_IN_RESOURCE_ID.search(resource_id)
        if m:
            name = m.group(1).lower()
            if REGISTRY_NAME_RE.fullmatch(name):
                return name
            raise EventParseError(f"malformed registry name in resource id: {_short(name)}")
    if host:
        name = host.split(".", 1)[0].split(":", 1)[0]
        if REGISTRY_NAME_RE.fullmatch(name):
            return name
    raise EventParseError("cannot tell the registry: no registry resource id in topic/source and no request.host")


def _acr_event(event_id: str, event_type: str, schema_name: str, resource_id: str | None,
               event_time: dt.datetime, data: Any) -> AcrImageEvent:
    if not isinstance(data, Mapping):
        raise EventParseError("field 'data' must be an object")
    target = data.get("target")
    if not isinstance(target, Mapping):
        raise EventParseError("field 'data.target' must be an object")
    request = data.get("request") if isinstance(data.get("request"), Mapping) else {}

    repository = _str(target, "repository", limit=256)
    if not REPOSITORY_RE.fullmatch(repository):
        raise EventParseError(f"malformed repository name: {_short(repository)}")
    digest = _str(target, "digest", limit=200)
    if not DIGEST_RE.fullmatch(digest):
        raise EventParseError(f"malformed digest: {_short(digest)}")
    tag = _str(target, "tag", required=False, limit=128)
    if tag is not None and not TAG_RE.fullmatch(tag):
        raise EventParseError(f"malformed tag: {_short(tag)}")
    host = _str(request, "host", required=False, limit=253)
    if host is not None:
        host = host.lower()
        if not HOST_RE.fullmatch(host):
            raise EventParseError(f"malformed request.host: {_short(host)}")
    location = _str(data, "location", required=False, limit=64)
    if location is not None:
        location = location.lower().replace(" ", "")
        if not REGION_RE.fullmatch(location):
            raise EventParseError(f"malformed location: {_short(location)}")

    return AcrImageEvent(
        event_id=event_id, event_type=event_type, action=HANDLED_TYPES[event_type], schema_name=schema_name,
        registry=_registry_name(resource_id, host), login_server=host, repository=repository, tag=tag,
        digest=digest, media_type=_str(target, "mediaType", required=False, limit=255), location=location,
        request_id=_str(request, "id", required=False, limit=128), event_time=event_time,
    )


# ---------------------------------------------------------------------------------------------- public API

def parse_event(obj: Any) -> ParsedEvent:
    """Parse one event object (already decoded JSON) in either schema."""
    if not isinstance(obj, Mapping):
        raise EventParseError(f"an event must be a JSON object, got {type(obj).__name__}")
    if "specversion" in obj:
        return _parse_cloudevent(obj)
    if "eventType" in obj:
        return _parse_eventgrid(obj)
    raise EventParseError("not an Event Grid event (no 'eventType') nor a CloudEvent (no 'specversion')")


def _parse_eventgrid(obj: Mapping[str, Any]) -> ParsedEvent:
    event_id = _str(obj, "id", limit=256)
    event_type = _str(obj, "eventType", limit=256)
    if event_type == SUBSCRIPTION_VALIDATION:
        data = obj.get("data")
        if not isinstance(data, Mapping):
            raise EventParseError("subscription validation event without a data object")
        return ValidationHandshake(event_id=event_id, validation_code=_str(data, "validationCode", limit=256),
                                   validation_url=_str(data, "validationUrl", required=False, limit=2048))
    if event_type not in HANDLED_TYPES:
        return IgnoredEvent(event_id=event_id, event_type=event_type, reason="event type not handled")
    event_time = _time(obj.get("eventTime"), "eventTime")
    return _acr_event(event_id, event_type, "eventgrid", _str(obj, "topic", required=False), event_time,
                      obj.get("data"))


def _parse_cloudevent(obj: Mapping[str, Any]) -> ParsedEvent:
    if obj.get("specversion") != "1.0":
        raise EventParseError(f"unsupported CloudEvents specversion: {_short(obj.get('specversion'))}")
    event_id = _str(obj, "id", limit=256)
    event_type = _str(obj, "type", limit=256)
    _str(obj, "source", limit=MAX_FIELD)
    if event_type not in HANDLED_TYPES:
        return IgnoredEvent(event_id=event_id, event_type=event_type, reason="event type not handled")
    data = obj.get("data")
    if data is None and "data_base64" in obj:
        raise EventParseError("binary (data_base64) ACR events are not supported")
    event_time = _time(obj.get("time"), "time") if obj.get("time") is not None else _time_from_data(data)
    return _acr_event(event_id, event_type, "cloudevents", _str(obj, "source"), event_time, data)


def _time_from_data(data: Any) -> dt.datetime:
    if isinstance(data, Mapping) and data.get("timestamp") is not None:
        return _time(data.get("timestamp"), "data.timestamp")
    raise EventParseError("missing field 'time'")


def parse_body(body: bytes | str | Any) -> list[ParsedEvent]:
    """Parse an HTTP delivery body: a JSON array of events (Event Grid / CloudEvents batch) or one event."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_BODY_BYTES:
            raise EventParseError(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise EventParseError("body is not UTF-8") from None
    if isinstance(body, str):
        if len(body) > MAX_BODY_BYTES:
            raise EventParseError(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = safejson.loads(body, MAX_BODY_BYTES)
        except safejson.JsonLimitError as exc:
            reason = exc.reason.replace("not valid JSON (", "not JSON (") if exc.limit == "syntax" else exc.reason
            raise EventParseError(reason) from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise EventParseError("empty event batch")
    if len(items) > MAX_EVENTS_PER_BATCH:
        raise EventParseError(f"more than {MAX_EVENTS_PER_BATCH} events in one batch")
    out = []
    for index, item in enumerate(items):
        try:
            out.append(parse_event(item))
        except EventParseError as exc:
            raise EventParseError(f"event[{index}]: {exc}") from None
    return out


def parse_trigger_event(*, id: str, event_type: str, subject: str | None, topic: str | None,
                        event_time: dt.datetime | str | None, data: Any) -> ParsedEvent:
    """Parse what an Azure Functions Event Grid trigger hands over (`func.EventGridEvent` attributes)."""
    if isinstance(event_time, dt.datetime):
        event_time = event_time.isoformat()
    return parse_event({"id": id, "eventType": event_type, "subject": subject, "topic": topic,
                        "eventTime": event_time, "data": data, "dataVersion": "1.0"})


def cloudevents_handshake(headers: Mapping[str, str], allowed_origins: frozenset[str] | None = None
                          ) -> dict[str, str] | None:
    """CloudEvents webhook validation (HTTP OPTIONS with WebHook-Request-Origin): the headers to answer with.

    Returns None when the request is not a handshake or the origin is not allowed.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    origin = lowered.get("webhook-request-origin")
    if not origin or len(origin) > 253:
        return None
    origin = origin.strip().lower()
    if not HOST_RE.fullmatch(origin):
        return None
    if allowed_origins is not None and origin not in allowed_origins:
        return None
    return {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}

"""Outcome events of a wait, published to a custom Event Grid topic with `EventGridPublisherClient`.

One event per wait, with an id derived from the wait (`WaitRecord.outcome_event_id`): publishing again after a
crash sends the same id, so subscribers see each wait's outcome exactly once.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from collections.abc import Sequence

from .core import Decision, WaitRecord, outcome_payload

IMAGE_REPLICATED = "Healer.ImageReplicated"
IMAGE_REPLICATION_TIMED_OUT = "Healer.ImageReplicationTimedOut"
TAG_RACE_DETECTED = "Healer.TagRaceDetected"
IMAGE_REPLICATION_THROTTLED = "Healer.ImageReplicationThrottled"   # still answering 429 when the wait ended
IMAGE_REPLICATION_FAILED = "Healer.ImageReplicationFailed"         # a named failure (regional endpoints off)
DATA_VERSION = "1.0"

_TYPE_BY_STATUS = {"ready": IMAGE_REPLICATED, "timed_out": IMAGE_REPLICATION_TIMED_OUT,
                   "tag_race": TAG_RACE_DETECTED, "throttled": IMAGE_REPLICATION_THROTTLED,
                   "failed": IMAGE_REPLICATION_FAILED}
_TYPE_BY_ACTION = {"publish_ready": IMAGE_REPLICATED, "publish_timed_out": IMAGE_REPLICATION_TIMED_OUT,
                   "publish_tag_race": TAG_RACE_DETECTED, "publish_throttled": IMAGE_REPLICATION_THROTTLED,
                   "publish_failed": IMAGE_REPLICATION_FAILED}


def outcome_event_type(record: WaitRecord) -> str:
    try:
        return _TYPE_BY_STATUS[record.status]
    except KeyError:
        raise ValueError(f"wait {record.wait_id} is still {record.status}: no outcome to publish") from None


def outcome_subject(record: WaitRecord) -> str:
    return f"registries/{record.registry}/repositories/{record.repository}/manifests/{record.digest}"


def build_outcome_event(record: WaitRecord):
    """The `azure.eventgrid.EventGridEvent` for a finished wait (ready / timed_out / tag_race / throttled /
    failed)."""
    return event_from_stored(stored_outcome_event(record))


def stored_outcome_event(record: WaitRecord) -> dict[str, Any]:
    """The outcome event of a finished wait as plain JSON: saved with the wait BEFORE it is published, so that
    every later attempt sends exactly this event (same id, type, data and time) instead of deciding again."""
    event_time = dt.datetime.fromtimestamp(record.completed_at or record.created_at, dt.UTC)
    return {"id": record.outcome_event_id, "subject": outcome_subject(record), "eventType": outcome_event_type(record),
            "data": outcome_payload(record), "dataVersion": DATA_VERSION,
            "eventTime": event_time.isoformat().replace("+00:00", "Z")}


def event_from_stored(stored: dict[str, Any]):
    """The `azure.eventgrid.EventGridEvent` for a stored outcome event (`stored_outcome_event`)."""
    from azure.eventgrid import EventGridEvent

    event_time = dt.datetime.fromisoformat(str(stored["eventTime"]).replace("Z", "+00:00"))
    return EventGridEvent(subject=str(stored["subject"]), event_type=str(stored["eventType"]), data=stored["data"],
                          data_version=str(stored.get("dataVersion") or DATA_VERSION), id=str(stored["id"]),
                          event_time=event_time)


def publish_stored(publisher: OutcomePublisher, stored: dict[str, Any]) -> str:
    """Publish a stored outcome event; returns its id. Raises what the publisher raises."""
    event = event_from_stored(stored)
    publisher.publish([event])
    return event.id


def event_for_decision(decision: Decision):
    """The event to publish for a decision, or None when the decision publishes nothing."""
    if decision.action not in _TYPE_BY_ACTION:
        return None
    return build_outcome_event(decision.record)


class OutcomePublisher:
    """Lazily creates one `EventGridPublisherClient` for the topic endpoint and reuses it.

    `credential` is an `AzureKeyCredential` (header aeg-sas-key) or a TokenCredential (bearer, HTTPS only).
    The endpoint is the topic's full URL, e.g. https://<topic>.<region>-1.eventgrid.azure.net/api/events.
    """

    def __init__(self, endpoint: str, credential: Any) -> None:
        self._endpoint = endpoint
        self._credential = credential
        self._client = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._client is None:
                from azure.eventgrid import EventGridPublisherClient
                from shared.transport import sdk_options
                self._client = EventGridPublisherClient(self._endpoint, self._credential, **sdk_options())
            return self._client

    def publish(self, events: Sequence[Any]) -> None:
        """Send EventGridEvents in one request; raises azure.core.exceptions.HttpResponseError on failure."""
        if events:
            self._get().send(list(events))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def publish_outcome(publisher: OutcomePublisher, decision: Decision) -> str | None:
    """Publish the decision's outcome event if it has one; returns the event id published."""
    event = event_for_decision(decision)
    if event is None:
        return None
    publisher.publish([event])
    return event.id

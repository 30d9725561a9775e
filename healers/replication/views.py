"""Views of a wait (outcome payload, status body), stall detection, and its queue / Table-storage forms.

Pure, like `core` (which re-exports every name here): nothing does I/O or reads the clock.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .events import DIGEST_RE, REGISTRY_NAME_RE, REPOSITORY_RE
from .probe_states import state_totals

if TYPE_CHECKING:   # `core` imports this module at its end (re-exports); at run time it is imported lazily here
    from .core import ReplicationPolicy, WaitRecord


# ---------------------------------------------------------------------------------------------- views

MAX_LISTED = 50   # tag conflicts / lagging tags listed in a payload (keeps the stored event well under 32K chars)


def outcome_payload(record: WaitRecord) -> dict[str, Any]:
    """The data of the outcome event (and the status endpoint's body for a finished wait)."""
    first_seen = {r: record.first_seen[r] for r in record.required_regions if r in record.first_seen}
    lags = {r: round(max(0.0, t - record.event_time), 3) for r, t in first_seen.items()}
    data: dict[str, Any] = {
        "registry": record.registry, "repository": record.repository, "digest": record.digest,
        "action": record.action, "tags": list(record.tags), "generation": record.generation,
        "status": record.status.replace("_", "-"), "eventTime": _iso(record.event_time),
        "requiredRegions": list(record.required_regions),
        "regions": {r: {"firstSeen": _iso(first_seen[r]) if r in first_seen else None,
                        "lagSeconds": lags.get(r), "lastError": record.last_errors.get(r)}
                    for r in record.required_regions},
        "missingRegions": record.missing_regions(),
        "attempts": record.attempts,
        "probeStates": state_totals(record.state_counts),
        "requests": sum(record.probe_requests.values()),
    }
    for r in record.required_regions:
        region = data["regions"][r]
        region["state"] = record.probe_states.get(r)
        region["probeCounts"] = dict(sorted(record.state_counts.get(r, {}).items()))
        region["requests"] = record.probe_requests.get(r, 0)
        throttled = record.throttled_seconds.get(r, 0.0) + (
            max(0.0, (record.completed_at or record.last_check_at or 0.0) - record.throttled_since[r])
            if r in record.throttled_since else 0.0)
        if throttled:
            region["throttledSeconds"] = round(throttled, 3)
    if record.failure:
        data["failure"] = record.failure
    if record.excluded:
        data["excludedRegions"] = dict(sorted(record.excluded.items()))
    if record.degraded:
        data["degradedRegions"] = dict(sorted(record.degraded.items()))
    if lags and not data["missingRegions"]:
        data["totalLagSeconds"] = max(lags.values())
    if record.tag_conflicts:
        data["tagConflicts"] = [{"region": k.split(":", 1)[0], "tag": k.split(":", 1)[1], "resolvedDigest": v}
                                for k, v in sorted(record.tag_conflicts.items())[:MAX_LISTED]]
    if record.tag_lagging:
        data["tagLagging"] = [{"region": k.split(":", 1)[0], "tag": k.split(":", 1)[1], "olderDigest": v}
                              for k, v in sorted(record.tag_lagging.items())[:MAX_LISTED]]
    return data


def status_view(record: WaitRecord | None, *, stalled: str | None = None,
                restarted: bool = False) -> dict[str, Any]:
    """Body for the CI/CD status endpoint: pending / ready / timed-out / tag-race with per-region detail, or
    `stalled` (with why and the last check time) for a pending wait whose check chain died (`stalled_reason`).
    A finished wait shows the outcome decided, whatever its event's delivery (`outcomeDelivery`)."""
    if record is None:
        return {"status": "unknown"}
    view = (dict(record.outcome_event["data"]) if record.outcome_event and isinstance(
        record.outcome_event.get("data"), dict) else outcome_payload(record))
    view["deadline"] = _iso(record.deadline_at)
    view["nextCheck"] = _iso(record.next_check_at) if record.next_check_at and record.status == "pending" else None
    view["lastCheck"] = _iso(record.last_check_at) if record.last_check_at else None
    view["outcomeDelivery"] = record.outcome_delivery
    if stalled is not None:
        if record.status == "pending":
            view["status"] = "stalled"
        view["stalled"] = {"reason": stalled, "lastCheckAt": view["lastCheck"], "checkRestarted": restarted}
    return view


# ---------------------------------------------------------------------------------------------- stalls

def stalled_reason(record: WaitRecord, policy: ReplicationPolicy, now: float) -> str | None:
    """Why nothing will move this wait on by itself any more, or None while its check chain is (presumably) alive.

    A pending wait is stalled when its chain was dead-lettered, when it is `stall_grace_seconds` past its deadline
    (a live chain's last check is due at the deadline), or when its next check is `stall_overdue_seconds` late.
    A decided outcome still marked "publishing" that long after the decision is stalled too."""
    last = f"last check {_iso(record.last_check_at)}" if record.last_check_at else "never checked"
    if record.status == "pending":
        if record.chain_note:
            return f"its check chain was dead-lettered ({record.chain_note}); {last}"
        if now > _core().extended_deadline(record, now, policy) + policy.stall_grace_seconds:
            return f"its deadline passed at {_iso(record.deadline_at)} and no check has finished it; {last}"
        if record.next_check_at is not None and now - record.next_check_at > policy.stall_overdue_seconds:
            return f"its next check was due at {_iso(record.next_check_at)} and has not run; {last}"
        return None
    if record.outcome_delivery == "publishing":
        decided = record.completed_at or record.created_at
        if record.chain_note or now - decided > policy.stall_grace_seconds:
            note = f" ({record.chain_note})" if record.chain_note else ""
            return f"its outcome was decided at {_iso(decided)} but its event is not published yet{note}"
    return None


def restart_due(record: WaitRecord, policy: ReplicationPolicy, now: float) -> bool:
    """Stalled, and not restarted within the cooldown (status polls and deliveries do not pile up checks)."""
    if stalled_reason(record, policy, now) is None:
        return False
    return record.restarted_at is None or now - record.restarted_at >= policy.restart_cooldown_seconds


def restarted(record: WaitRecord, now: float) -> WaitRecord:
    """The wait as saved when a fresh check is sent for it (the check carries `attempts`, as every check does)."""
    rec = record.model_copy(deep=True)
    rec.restarted_at, rec.chain_note = now, None
    if rec.status == "pending":
        rec.next_check_at = now
    return rec


def _iso(ts: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- queue + storage

class CheckRef(BaseModel):
    """The body of a check queue message; the shell drops it when `generation` is stale."""
    model_config = ConfigDict(frozen=True)

    registry: str
    repository: str
    digest: str
    generation: int = Field(ge=0)

    @model_validator(mode="after")
    def _valid(self) -> CheckRef:
        if not (REGISTRY_NAME_RE.fullmatch(self.registry) and REPOSITORY_RE.fullmatch(self.repository)
                and DIGEST_RE.fullmatch(self.digest)):
            raise ValueError("malformed registry, repository or digest in check message")
        return self


def check_message(record: WaitRecord) -> str:
    return json.dumps({"registry": record.registry, "repository": record.repository, "digest": record.digest,
                       "generation": record.generation}, separators=(",", ":"))


def parse_check_message(text: str | bytes) -> CheckRef:
    """Raises ValueError (pydantic ValidationError) on a poison message."""
    if len(text) > 4096:
        raise ValueError("check message too large")
    return CheckRef.model_validate_json(text)


_JSON_FIELDS = ("tags", "required_regions", "first_seen", "tag_conflicts", "tag_conflict_since", "tag_lagging",
                "last_errors", "event_ids", "request_ids", "reported_locations", "outcome_event", "probe_states",
                "state_counts", "probe_requests", "throttled_since", "throttled_seconds", "throttle_streak",
                "not_before", "unresolvable_span", "confirmed", "excluded", "degraded", "pending_blobs")


def wait_keys(registry: str, repository: str, digest: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) for Table storage: keys may not contain / \\ # ?."""
    return registry, f"{repository.replace('/', '|')}@{digest}"


def to_entity(record: WaitRecord) -> dict[str, Any]:
    """Flat form for Azure Table storage: scalars as-is, lists/maps as JSON strings (bounded by the policy)."""
    data = record.model_dump()
    for name in _JSON_FIELDS:
        data[name] = json.dumps(data[name], separators=(",", ":"))
    pk, rk = wait_keys(record.registry, record.repository, record.digest)
    return {"PartitionKey": pk, "RowKey": rk, **{k: v for k, v in data.items() if v is not None}}


def from_entity(entity: Mapping[str, Any]) -> WaitRecord:
    data = {k: v for k, v in entity.items() if k in _core().WaitRecord.model_fields}
    for name in _JSON_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    return _core().WaitRecord.model_validate(data)


def _core():
    from . import core
    return core

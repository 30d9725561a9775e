"""Pure decision core of the replication-consistency healer.

Nothing here does I/O or reads the clock: every function takes `now` (epoch seconds) and returns a new value.

A *wait* is one (registry, repository, digest) being watched until every required region serves it (push) or
answers 404 for it (delete). The shell stores the `WaitRecord` (see `to_entity` / `from_entity` for a flat
Table-storage form), runs the probes that `regions_to_probe` names, and asks `decide` what to do next.
"""
from __future__ import annotations

import hashlib
import math
import uuid
from typing import Any, Literal
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .events import REGION_RE, REGISTRY_NAME_RE, AcrImageEvent
from .topology import TopologyView
from .probe_states import (
    FORBIDDEN_HINT, MAX_CONFIRMED, PROBLEM_STATES, PUBLIC_STATE, ManifestState, throttle_wait,
    throttled_total, unresolvable_confirmed, unresolvable_reason,
)

Action = Literal["push", "delete"]
WaitStatus = Literal["pending", "ready", "timed_out", "tag_race", "throttled", "failed"]
# What became of a decided outcome: "publishing" is the marker saved BEFORE the event is sent; any later check of
# the wait re-sends exactly the stored event (never decides again) until it is saved as "published".
# How a decided outcome's event went out: "publishing" (saved, being sent), "published"; or, when the gate stopped
# the publish: "skipped" (kill switch), "refused" (policy deny or invalid configuration), "dry-run", and
# "awaiting-approval" (policy ask; the approval publishes it). "recorded": no topic configured. Pipelines that wait
# on the event get it only when "published"; GET /api/replication/status shows the outcome and its delivery.
Delivery = Literal["publishing", "published", "dry-run", "skipped", "refused", "awaiting-approval", "recorded"]
NextAction = Literal["publish_ready", "publish_timed_out", "publish_tag_race", "publish_throttled",
                     "publish_failed", "recheck", "done"]

# Namespace for deterministic outcome-event ids (uuid5); fixed forever.
OUTCOME_NAMESPACE = uuid.UUID("5b0f6d2e-4a59-4c1e-9a3e-6c1f0b7e2d41")


# ---------------------------------------------------------------------------------------------- policy

class BackoffPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_seconds: float = Field(2.0, gt=0)
    factor: float = Field(1.6, ge=1.0)
    max_seconds: float = Field(30.0, gt=0)
    min_seconds: float = Field(0.5, gt=0)
    jitter: float = Field(0.25, ge=0.0, lt=1.0)   # fraction taken off the nominal delay, at most

    @model_validator(mode="after")
    def _consistent(self) -> BackoffPolicy:
        if self.min_seconds > self.base_seconds or self.base_seconds > self.max_seconds:
            raise ValueError("backoff needs min_seconds <= base_seconds <= max_seconds")
        # With jitter <= 1 - 1/factor the jittered delays never shrink while the nominal delay grows.
        if self.factor > 1.0 and self.jitter > 1.0 - 1.0 / self.factor + 1e-9:
            raise ValueError("backoff jitter must be <= 1 - 1/factor so that delays keep growing")
        return self


class ReplicationPolicy(BaseModel):
    """What the core needs from configuration."""
    model_config = ConfigDict(frozen=True)

    required_regions: dict[str, tuple[str, ...]]       # registry short name -> regions that must serve it
    deadline_seconds: float = Field(1800.0, gt=0)
    backoff: BackoffPolicy = BackoffPolicy()
    # How long a replica's tag may name a digest Healer has not seen pushed for that tag before a race is reported.
    # A tag naming an OLDER known push is lag (never a race); one naming a NEWER known push is a race at once.
    tag_race_grace_seconds: float = Field(60.0, ge=0)
    # A pending wait this long past its deadline has a dead check chain: reported "stalled"; a check that runs this
    # late times the wait out without counting what it sees (the deadline was missed, whatever arrived since).
    stall_grace_seconds: float = Field(60.0, ge=0)
    stall_overdue_seconds: float = Field(300.0, gt=0)  # a pending wait's next check this overdue: stalled
    restart_cooldown_seconds: float = Field(30.0, ge=0)  # between two restarts of one wait's check chain
    max_tags_per_wait: int = Field(20, ge=1)
    max_evidence: int = Field(50, ge=1)
    # DNS failures of a replica's host for this long (at least two probes) fail the wait fast, named.
    unresolvable_confirm_seconds: float = Field(15.0, ge=0)
    # A replica answering 429 moves its own deadline out by the time it is throttled, up to this (None: deadline).
    max_throttled_seconds: float | None = Field(None, gt=0)
    throttle_backoff_seconds: float = Field(2.0, gt=0)        # first wait after a 429 without Retry-After
    throttle_backoff_max_seconds: float = Field(60.0, gt=0)
    max_retry_after_seconds: float = Field(300.0, gt=0)       # a larger Retry-After is bounded to this

    @property
    def throttle_cap(self) -> float:
        return self.max_throttled_seconds if self.max_throttled_seconds is not None else self.deadline_seconds

    @field_validator("required_regions")
    @classmethod
    def _regions(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        out = {}
        for registry, regions in value.items():
            if not REGISTRY_NAME_RE.fullmatch(registry):
                raise ValueError(f"bad registry name {registry!r}")
            if not regions or any(not REGION_RE.fullmatch(r) for r in regions):
                raise ValueError(f"registry {registry!r} needs a non-empty list of region names")
            out[registry] = tuple(dict.fromkeys(regions))
        return out


# ---------------------------------------------------------------------------------------------- records

class WaitRecord(BaseModel):
    """Everything known about one wait. JSON-serialisable; times are epoch seconds (float)."""

    registry: str
    repository: str
    digest: str
    action: Action
    generation: int = 0                      # bumped when a new wait replaces a finished/superseded one
    tags: list[str] = []                     # tags to verify on every replica (push only)
    media_type: str | None = None
    required_regions: list[str]
    created_at: float                        # when the healer opened the wait
    event_time: float                        # earliest event time of the action that opened it (lag origin)
    deadline_at: float
    attempts: int = 0                        # checks decided so far
    status: WaitStatus = "pending"
    first_seen: dict[str, float] = {}        # region -> first observation satisfying it
    tag_conflicts: dict[str, str] = {}       # "region:tag" -> other digest the tag resolved to
    tag_conflict_since: dict[str, float] = {}  # "region:tag" -> first time that conflict was seen
    tag_lagging: dict[str, str] = {}         # "region:tag" -> OLDER pushed digest the replica's tag still names
    last_errors: dict[str, str] = {}         # region -> last probe problem (unauthorized / error detail)
    event_ids: list[str] = []                # deliveries merged into this wait (bounded)
    request_ids: list[str] = []
    reported_locations: list[str] = []       # regions whose ACR events arrived (evidence only)
    completed_at: float | None = None
    next_check_at: float | None = None
    last_check_at: float | None = None       # when a check last decided about this wait
    outcome_event: dict[str, Any] | None = None  # the decided outcome event, exactly as (to be) published
    outcome_delivery: Delivery | None = None
    outcome_reason: str | None = None        # why the outcome was decided (for audits of a re-send)
    published_at: float | None = None
    chain_note: str | None = None            # why the check chain died (dead-lettered), until a check runs again
    restarted_at: float | None = None        # last restart of a stalled check chain
    probe_states: dict[str, str] = {}        # region -> state of its last probe (ready, not-found, throttled...)
    state_counts: dict[str, dict[str, int]] = {}  # region -> {state: probes that ended in it}
    probe_requests: dict[str, int] = {}      # region -> registry requests made for this wait
    throttled_since: dict[str, float] = {}   # region -> start of its current run of 429 answers
    throttled_seconds: dict[str, float] = {}  # region -> time spent in finished runs of 429 answers
    throttle_streak: dict[str, int] = {}     # region -> consecutive 429 answers
    not_before: dict[str, float] = {}        # region -> not probed again before (Retry-After / backoff)
    unresolvable_span: dict[str, list[float]] = {}  # region -> [first, last] of an unbroken run of DNS failures
    confirmed: dict[str, list[str]] = {}     # region -> child manifests / blobs already seen there (bounded)
    pending_blobs: dict[str, list[str]] = {}  # region -> blobs its (immutable) manifests need and it lacked
    failure: str | None = None               # why a "failed" wait failed
    excluded: dict[str, str] = {}            # region -> why it is not waited for (replica removed / degraded)
    degraded: dict[str, str] = {}            # region -> replica status when the topology says it is not online

    @property
    def wait_id(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}#{self.generation}:{self.action}"

    @property
    def outcome_event_id(self) -> str:
        """One id per wait, whatever its outcome: subscribers dedupe on it."""
        return str(uuid.uuid5(OUTCOME_NAMESPACE, self.wait_id))

    def missing_regions(self) -> list[str]:
        return [r for r in self.required_regions if r not in self.first_seen and r not in self.excluded]


class RegionObservation(BaseModel):
    """One region's probe result, as the registry client reports it."""
    model_config = ConfigDict(frozen=True)

    region: str
    manifest: ManifestState
    tags: dict[str, str | None] = {}         # tag -> digest it resolves to; None = tag not found; absent = not probed
    detail: str | None = None
    observed_at: float
    retry_after: float | None = None         # throttled: the Retry-After the replica (or its token endpoint) sent
    requests: int = 0                        # registry requests this probe made
    confirmed: tuple[str, ...] = ()          # child manifests / blobs this probe found served
    missing: tuple[str, ...] = ()            # incomplete: the blobs not served yet (all that are lacking)


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: NextAction
    reason: str
    record: WaitRecord
    delay_seconds: float | None = None       # for "recheck": the queue visibility timeout
    probe_regions: list[str] = []            # for "recheck": what the next check should probe


class Intake(BaseModel):
    model_config = ConfigDict(frozen=True)

    record: WaitRecord | None                # None: nothing to store (unknown registry)
    reason: Literal["new-wait", "superseded", "restarted", "duplicate-delivery", "evidence-added",
                    "tag-added", "stale-event", "already-complete", "unknown-registry"]
    enqueue_check: bool                      # True: send a first check message now (visibility 0)


# ---------------------------------------------------------------------------------------------- intake

def _bounded_add(items: list[str], value: str | None, limit: int) -> list[str]:
    if not value or value in items:
        return items
    return (items + [value])[-limit:]


def _new_record(event: AcrImageEvent, regions: Sequence[str], policy: ReplicationPolicy, now: float,
                generation: int) -> WaitRecord:
    return WaitRecord(
        registry=event.registry, repository=event.repository, digest=event.digest, action=event.action,
        generation=generation, tags=[event.tag] if event.tag and event.action == "push" else [],
        media_type=event.media_type, required_regions=list(regions), created_at=now,
        event_time=min(event.event_time.timestamp(), now), deadline_at=now + policy.deadline_seconds,
        event_ids=[event.event_id], request_ids=[event.request_id] if event.request_id else [],
        reported_locations=[event.location] if event.location else [], next_check_at=now,
    )


def intake(existing: WaitRecord | None, event: AcrImageEvent, policy: ReplicationPolicy, now: float) -> Intake:
    """Fold one delivery into the wait for its (registry, repository, digest). Dedupes at-least-once deliveries."""
    regions = policy.required_regions.get(event.registry)
    if regions is None:
        return Intake(record=None, reason="unknown-registry", enqueue_check=False)
    if existing is None:
        return Intake(record=_new_record(event, regions, policy, now, 0), reason="new-wait", enqueue_check=True)

    if event.event_id in existing.event_ids:
        return Intake(record=existing, reason="duplicate-delivery", enqueue_check=False)

    rec = existing.model_copy(deep=True)
    rec.event_ids = _bounded_add(rec.event_ids, event.event_id, policy.max_evidence)
    rec.request_ids = _bounded_add(rec.request_ids, event.request_id, policy.max_evidence)
    rec.reported_locations = _bounded_add(rec.reported_locations, event.location, policy.max_evidence)
    event_ts = event.event_time.timestamp()

    if event.action != existing.action:
        if event_ts < existing.event_time:
            # A reordered, older delivery (e.g. the push arriving after the delete that followed it).
            return Intake(record=rec, reason="stale-event", enqueue_check=False)
        new = _new_record(event, regions, policy, now, existing.generation + 1)
        new.event_ids = rec.event_ids
        return Intake(record=new, reason="superseded", enqueue_check=True)

    rec.event_time = min(rec.event_time, event_ts)
    new_tag = event.action == "push" and event.tag is not None and event.tag not in rec.tags
    if not new_tag:
        return Intake(record=rec, reason="already-complete" if rec.status != "pending" else "evidence-added",
                      enqueue_check=False)
    if rec.status != "pending":
        # Same digest pushed again under a new tag after the wait finished: a fresh wait for that tag.
        new = _new_record(event, regions, policy, now, existing.generation + 1)
        return Intake(record=new, reason="restarted", enqueue_check=True)
    if len(rec.tags) >= policy.max_tags_per_wait:
        return Intake(record=rec, reason="evidence-added", enqueue_check=False)
    rec.tags = rec.tags + [event.tag]
    rec.first_seen = {}  # every replica must now also be checked for the new tag
    return Intake(record=rec, reason="tag-added", enqueue_check=False)


# ---------------------------------------------------------------------------------------------- backoff

def _unit(seed: str, attempt: int) -> float:
    h = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def nominal_delay(attempt: int, backoff: BackoffPolicy) -> float:
    """The un-jittered delay before check number `attempt + 1` (attempt >= 0)."""
    exponent = min(max(attempt, 0), 1000)
    try:
        raw = backoff.base_seconds * backoff.factor ** exponent
    except OverflowError:
        raw = math.inf
    return min(raw, backoff.max_seconds)


def backoff_delay(attempt: int, backoff: BackoffPolicy, seed: str) -> float:
    """Nominal delay minus up to `jitter` of it, deterministically from (seed, attempt)."""
    nominal = nominal_delay(attempt, backoff)
    return max(backoff.min_seconds, nominal * (1.0 - backoff.jitter * _unit(seed, attempt)))


# ---------------------------------------------------------------------------------------------- decisions

def regions_to_probe(record: WaitRecord, now: float | None = None) -> list[str]:
    """Regions whose state is still unknown or unsatisfied; satisfied regions are not probed again, and (given
    `now`) a throttled region is not probed before its Retry-After / per-replica backoff has passed."""
    if record.status != "pending":
        return []
    return [r for r in record.missing_regions() if now is None or record.not_before.get(r, -math.inf) <= now]


def region_throttled(record: WaitRecord, region: str, now: float) -> float:
    """Seconds this region has spent answering 429 during the wait (not counted toward its deadline)."""
    return throttled_total(record.throttled_seconds, record.throttled_since, region, now)


def region_deadline(record: WaitRecord, region: str, now: float, policy: ReplicationPolicy) -> float:
    """The wait's deadline for this region: moved out by the time it was throttled, up to the policy's cap."""
    return record.deadline_at + min(region_throttled(record, region, now), policy.throttle_cap)


def extended_deadline(record: WaitRecord, now: float, policy: ReplicationPolicy) -> float:
    """The latest region deadline among the regions still missing (the wait's own deadline when none was
    throttled)."""
    return max([record.deadline_at] + [region_deadline(record, r, now, policy) for r in record.missing_regions()])


TagHistory = Mapping[str, Mapping[str, float]]   # tag -> {digest: latest push time of that digest under the tag}


def _tag_move(rec: WaitRecord, tag: str, other: str, history: TagHistory) -> Literal["older", "newer", "unknown"]:
    """Where `other` (the digest a replica's tag names) stands against this wait's push of `tag`."""
    pushes = history.get(tag) or {}
    theirs = pushes.get(other)
    if theirs is None:
        return "unknown"
    ours = pushes.get(rec.digest, rec.event_time)
    return "older" if theirs < ours else "newer"


def _forget_tag(rec: WaitRecord, key: str) -> None:
    rec.tag_conflicts.pop(key, None)
    rec.tag_conflict_since.pop(key, None)
    rec.tag_lagging.pop(key, None)


def _note_state(rec: WaitRecord, obs: RegionObservation, policy: ReplicationPolicy) -> None:
    """Per-replica bookkeeping of one probe: state and counts, throttling runs, DNS-failure runs, confirmed blobs."""
    region, state, at = obs.region, obs.manifest, obs.observed_at
    public = PUBLIC_STATE[state]
    rec.probe_states[region] = public
    counts = rec.state_counts.setdefault(region, {})
    counts[public] = counts.get(public, 0) + 1
    rec.probe_requests[region] = rec.probe_requests.get(region, 0) + max(0, obs.requests)
    if state == "throttled":
        rec.throttled_since.setdefault(region, at)
        streak = rec.throttle_streak[region] = rec.throttle_streak.get(region, 0) + 1
        rec.not_before[region] = at + throttle_wait(obs.retry_after, streak, base=policy.throttle_backoff_seconds,
                                                    cap=policy.throttle_backoff_max_seconds,
                                                    max_retry_after=policy.max_retry_after_seconds)
    else:
        since = rec.throttled_since.pop(region, None)
        if since is not None:
            rec.throttled_seconds[region] = rec.throttled_seconds.get(region, 0.0) + max(0.0, at - since)
        rec.throttle_streak.pop(region, None)
        rec.not_before.pop(region, None)
    if state == "unresolvable":
        span = rec.unresolvable_span.get(region)
        rec.unresolvable_span[region] = [span[0], max(span[-1], at)] if span else [at, at]
    else:
        rec.unresolvable_span.pop(region, None)
    if state == "incomplete" and obs.missing:
        rec.pending_blobs[region] = list(obs.missing)[:MAX_CONFIRMED]
    elif state == "present":
        rec.pending_blobs.pop(region, None)
    if obs.confirmed:
        known = rec.confirmed.get(region, [])
        rec.confirmed[region] = (known + [d for d in obs.confirmed if d not in known])[-MAX_CONFIRMED:]
    if state in PROBLEM_STATES:
        detail = FORBIDDEN_HINT if state == "forbidden" and not obs.detail else (obs.detail or "")
        rec.last_errors[region] = f"{public}: {detail[:200]}".rstrip(": ")
    elif state == "incomplete":
        rec.last_errors[region] = f"incomplete: {(obs.detail or '')[:200]}".rstrip(": ")
    else:
        rec.last_errors.pop(region, None)


def _apply(rec: WaitRecord, obs: RegionObservation, history: TagHistory, policy: ReplicationPolicy) -> None:
    region = obs.region
    _note_state(rec, obs, policy)
    if rec.action == "delete":
        if obs.manifest == "absent":
            rec.first_seen.setdefault(region, obs.observed_at)
        return
    if obs.manifest != "present":
        return
    satisfied = True
    for tag in rec.tags:
        key = f"{region}:{tag}"
        resolved = obs.tags.get(tag)
        if resolved == rec.digest:
            _forget_tag(rec, key)
            continue
        satisfied = False
        if not resolved:   # tag not (yet) on this replica, or not probed: plain lag
            continue
        if _tag_move(rec, tag, resolved, history) == "older":
            # the replica serves our manifest but still has the tag on an earlier push: lag, not a race
            _forget_tag(rec, key)
            rec.tag_lagging[key] = resolved
        else:              # the tag names a later push (a race) or one Healer never saw (a race after the grace)
            rec.tag_lagging.pop(key, None)
            if rec.tag_conflicts.get(key) != resolved:
                rec.tag_conflict_since.pop(key, None)
            rec.tag_conflicts[key] = resolved
            rec.tag_conflict_since[key] = min(rec.tag_conflict_since.get(key, obs.observed_at), obs.observed_at)
    if satisfied:
        rec.first_seen.setdefault(region, obs.observed_at)
        rec.confirmed.pop(region, None)   # not probed again: nothing to remember


def _apply_topology(rec: WaitRecord, topology: TopologyView) -> None:
    """A replica removed from the registry is no longer waited for; a degraded one is reported and, by the
    registry's setting, excluded or waited for; one back online is waited for again."""
    for region in rec.required_regions:
        state = topology.regions.get(region, "absent")
        if state == "online":
            rec.excluded.pop(region, None)
            rec.degraded.pop(region, None)
        elif state == "absent":
            rec.degraded.pop(region, None)
            rec.excluded[region] = "replica removed from the registry"
        else:
            rec.degraded[region] = state
            if topology.degraded == "exclude":
                rec.excluded[region] = f"replica {state}; excluded (degraded replicas are not waited for)"
            else:
                rec.excluded.pop(region, None)


def decide(record: WaitRecord, observations: Sequence[RegionObservation], policy: ReplicationPolicy,
           now: float, tag_history: TagHistory | None = None, topology: TopologyView | None = None) -> Decision:
    """Fold the latest probe results into the wait and say what to do next. Never waits itself.

    `tag_history` (tag -> {digest: latest push time}) is what Healer saw pushed under the wait's tags: a replica
    whose tag names an older push is lagging; one whose tag names a newer push lost a tag overwrite race; an
    unknown digest is a race once it has persisted for `tag_race_grace_seconds`."""
    if record.status != "pending":
        return Decision(action="done", reason=f"wait already {record.status}", record=record)

    history = tag_history or {}
    rec = record.model_copy(deep=True)
    rec.attempts += 1
    rec.last_check_at = now
    rec.chain_note = None          # a check ran: the chain is alive
    late = now > extended_deadline(rec, now, policy) + policy.stall_grace_seconds
    if topology is not None and not late:
        _apply_topology(rec, topology)
        if topology.regional_endpoints is False:
            rec.status, rec.completed_at, rec.next_check_at = "failed", now, None
            rec.failure = (f"regional endpoints are not enabled for {rec.registry} (the registry says so); enable "
                           f"them with `az acr update -n {rec.registry} --regional-endpoints enabled` (Azure CLI "
                           "2.86.0+)")
            return Decision(action="publish_failed", reason=rec.failure, record=rec)
    required = set(rec.required_regions) - set(rec.excluded)
    if not late:   # a check this late ran on a stalled chain: what it sees came after the deadline
        for obs in observations:
            if obs.region in required:
                _apply(rec, obs, history, policy)

    races = {k: v for k, v in rec.tag_conflicts.items()
             if _tag_move(rec, k.split(":", 1)[1], v, history) == "newer"
             or now - rec.tag_conflict_since.get(k, now) >= policy.tag_race_grace_seconds}
    missing = rec.missing_regions()
    if not [r for r in rec.required_regions if r not in rec.excluded]:
        rec.status, rec.completed_at, rec.next_check_at = "failed", now, None
        rec.failure = "no replica left to wait for: " + "; ".join(f"{r}: {why}" for r, why in rec.excluded.items())
        return Decision(action="publish_failed", reason=rec.failure, record=rec)
    if races:
        rec.status, rec.completed_at, rec.next_check_at = "tag_race", now, None
        detail = ", ".join(f"{k} -> {v}" for k, v in sorted(races.items())[:20])
        return Decision(action="publish_tag_race", reason=f"tag resolves to another digest: {detail}", record=rec)
    if not missing:
        rec.status, rec.completed_at, rec.next_check_at = "ready", now, None
        what = "serve the digest" if rec.action == "push" else "answer 404"
        waited = [r for r in rec.required_regions if r not in rec.excluded]
        note = f" ({len(rec.excluded)} excluded: {', '.join(f'{r}: {w}' for r, w in rec.excluded.items())})" \
            if rec.excluded else ""
        return Decision(action="publish_ready", reason=f"all {len(waited)} regions {what}{note}", record=rec)
    unresolvable = [r for r in missing
                    if unresolvable_confirmed(rec.unresolvable_span.get(r), policy.unresolvable_confirm_seconds)]
    if unresolvable and not late:
        rec.status, rec.completed_at, rec.next_check_at = "failed", now, None
        rec.failure = unresolvable_reason(rec.registry, unresolvable, rec.required_regions)
        return Decision(action="publish_failed", reason=rec.failure, record=rec)
    overdue = [r for r in missing if late or now >= region_deadline(rec, r, now, policy)]
    if now >= rec.deadline_at and len(overdue) == len(missing):
        return _end(rec, missing, late, now)

    delay = backoff_delay(rec.attempts - 1, policy.backoff, rec.wait_id)
    throttled = [r for r in missing if r in rec.not_before]
    if throttled and len(throttled) == len(missing):   # nothing to probe before the earliest Retry-After
        delay = max(delay, min(rec.not_before[r] for r in throttled) - now)
    delay = min(delay, max(extended_deadline(rec, now, policy) - now, policy.backoff.min_seconds))
    delay = max(delay, policy.backoff.min_seconds)
    rec.next_check_at = now + delay
    note = f" (throttled: {', '.join(throttled)})" if throttled else ""
    return Decision(action="recheck", reason=f"waiting for {', '.join(missing)}{note}", record=rec,
                    delay_seconds=delay, probe_regions=missing)


def _end(rec: WaitRecord, missing: list[str], late: bool, now: float) -> Decision:
    """Every missing region is past its own deadline: throttled when each of them last answered 429 (the wait
    ended that way, it is not a replication timeout), else timed out; each region named with its last state."""
    all_throttled = all(rec.probe_states.get(r) == "throttled" for r in missing)
    rec.status = "throttled" if all_throttled else "timed_out"
    rec.completed_at, rec.next_check_at = now, None
    note = (f" (checked {now - rec.deadline_at:.0f} s after the deadline: its check chain had stalled; "
            "observations this late are not counted)") if late else ""
    lagging = sorted(k for k in rec.tag_lagging if k.split(":", 1)[0] in missing)
    tags = f"; tags not yet moved: {', '.join(lagging[:20])}" if lagging else ""
    states = [f"{r} ({rec.probe_states[r]})" for r in missing if rec.probe_states.get(r) not in (None, "not-found")]
    named = f"; last states: {', '.join(states)}" if states else ""
    if all_throttled:
        return Decision(action="publish_throttled", record=rec,
                        reason=f"still throttled (HTTP 429) at the deadline plus the time throttled{note}; "
                               f"not replicated yet: {', '.join(missing)}{tags}")
    return Decision(action="publish_timed_out",
                    reason=f"deadline passed{note}; missing: {', '.join(missing)}{tags}{named}", record=rec)


# Views, stalls and storage forms live in `views` (kept small); re-exported here for the callers of `core`.
from .views import (  # noqa: E402,F401
    MAX_LISTED, CheckRef, check_message, from_entity, outcome_payload, parse_check_message, restart_due, restarted,
    stalled_reason, status_view, to_entity, wait_keys,
)

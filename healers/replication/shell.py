"""The replication healer's imperative shell: intake of ACR events, queue-driven checks, outcomes, status.

State: one Table entity per wait (PartitionKey registry, RowKey `<repo with | for />@<digest>`, the flat form of
`core.WaitRecord`), written with insert-if-absent / ETag replace, plus a tag index entity per (repository, tag)
(RowKey `~tag:<repo>:<tag>`) for the status endpoint.

Checks are queue messages (`healer-replication`): {registry, repository, digest, generation, check}. `check` is
the wait's `attempts` when the message was sent; a message whose generation or check number no longer matches
the stored wait is a leftover (an older generation, or a second copy after a redelivery) and is dropped, so one
wait has one live chain of checks. A check never waits: when replicas are pending it sends the next check with
the decision's delay as the visibility timeout, then saves the wait.

One wait, one outcome: when a check decides, the finished wait is saved (ETag-guarded) WITH its outcome event and
the marker `outcome_delivery="publishing"` BEFORE the event is published; then it is saved as "published". Any
check of a wait in "publishing" (a retry after a failed publish, a redelivery after a crash, a restart) re-sends
exactly the stored event and never decides again, so a retry near the deadline cannot publish a different outcome
under the same event id. Kill switch / dry-run (global or scope `registry:<name>`) only stop publishing.

Stalls: a pending wait whose check chain died (dead-lettered, lost) is reported `stalled` by the status endpoint,
and the next status request or delivery for it restarts the chain (`core.stalled_reason`, `core.restart_due`).
The tag index keeps, per (repository, tag), the latest push time of each digest Healer saw pushed under it
(bounded): a replica whose tag still names an older push is lagging, one naming a newer push lost a race.
"""
from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from typing import Any, Literal
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from healers.replication.core import (
    BackoffPolicy, Decision, ReplicationPolicy, WaitRecord, check_message, decide, from_entity, intake,
    parse_check_message, regions_to_probe, restart_due, restarted, stalled_reason, status_view, to_entity, wait_keys,
)
from healers.replication.events import (
    DIGEST_RE, REGISTRY_NAME_RE, REPOSITORY_RE, TAG_RE, AcrImageEvent, IgnoredEvent,
    ParsedEvent, ValidationHandshake,
)
from shared import audit, gate
from shared.config import ConfigError, Settings
from shared.state import Conflict, Record, Store
from shared.work import Discard, RetryLater, enqueue
from healers.replication.topology import check_topology, topology_view

log = logging.getLogger("healer.replication")
HEALER = "replication"
QUEUE = "healer-replication"
TABLE = "replication"
MAX_ATTEMPTS = 10            # re-runs of one check after transient failures (publish, storage conflicts)
STALL_SECONDS = 300.0        # a pending wait not checked for this long past its due time gets a fresh check
TAG_HISTORY = 20             # digests remembered per (registry, repository, tag)
FIRST_CHECK_RESEND_SECONDS = 5.0  # a redelivered event resends the first check of a wait still unchecked after this
MAX_INTAKE_WRITES = 8
Clock = Callable[[], float]

# ---------------------------------------------------------------------------------------------- configuration

class RegistryTopologyConfig(BaseModel):
    """Per registry (object form of HEALER_REPLICATION_REGISTRIES): where to read its topology from ARM, and
    whether a degraded replica is waited for or excluded."""
    model_config = ConfigDict(frozen=True)

    resource_id: str = Field(max_length=400)
    degraded: Literal["exclude", "wait"] = "wait"

    @field_validator("resource_id")
    @classmethod
    def _rid(cls, value: str) -> str:
        from healers.replication.topology import parse_resource_id
        parse_resource_id(value)
        return value


class ReplicationConfig(BaseModel):
    """The replication settings, parsed and validated (see shared.config SETTINGS, "Replication healer")."""
    model_config = ConfigDict(frozen=True)

    registries: dict[str, tuple[str, ...]]
    topology: dict[str, RegistryTopologyConfig] = {}
    topology_ttl_seconds: float = Field(300.0, ge=0, le=24 * 3600)
    endpoints: dict[str, str] = {}
    deadline_seconds: float = Field(1800.0, gt=0, le=7 * 24 * 3600)
    backoff: BackoffPolicy = BackoffPolicy()
    tag_race_grace_seconds: float = Field(60.0, ge=0)
    fail_fast_seconds: float = Field(15.0, ge=0, le=3600)
    max_throttled_seconds: float = Field(1800.0, gt=0, le=7 * 24 * 3600)
    tenant: str | None = None
    topic_endpoint: str | None = None
    topic_key: str | None = Field(None, repr=False)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for host, url in value.items():
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 300:
                raise ValueError(f"endpoint for {host!r} must be an http(s) URL")
        return {k.lower(): v.rstrip("/") for k, v in value.items()}

    def policy(self) -> ReplicationPolicy:
        return _policy(self.registries_key, self.deadline_seconds, self.backoff, self.tag_race_grace_seconds,
                       self.fail_fast_seconds, self.max_throttled_seconds)

    @property
    def registries_key(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(sorted(self.registries.items()))


_policies: dict[Any, ReplicationPolicy] = {}


def _policy(registries: tuple, deadline: float, backoff: BackoffPolicy, grace: float, fail_fast: float = 15.0,
            max_throttled: float | None = None) -> ReplicationPolicy:
    key = (registries, deadline, backoff, grace, fail_fast, max_throttled)
    if key not in _policies:
        _policies[key] = ReplicationPolicy(required_regions=dict(registries), deadline_seconds=deadline,
                                           backoff=backoff, tag_race_grace_seconds=grace,
                                           stall_overdue_seconds=STALL_SECONDS,
                                           unresolvable_confirm_seconds=fail_fast,
                                           max_throttled_seconds=max_throttled)
    return _policies[key]


def _json_setting(settings: Settings, name: str, kind: type) -> Any:
    raw = settings.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"setting {name} is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(value, kind):
        raise ConfigError(f"setting {name} must be a JSON {kind.__name__}")
    return value


def _number(settings: Settings, name: str) -> float:
    try:
        return float(settings.require(name))
    except ValueError:
        raise ConfigError(f"setting {name} must be a number") from None


_REGISTRY_KEYS = {"regions", "resourceId", "degraded"}


def _registry_entries(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """HEALER_REPLICATION_REGISTRIES values are a list of regions, or {"regions": [...], "resourceId": "<registry
    resource id>" (read its replicas from ARM), "degraded": "wait" | "exclude"}."""
    regions: dict[str, Any] = {}
    topology: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            unknown = set(value) - _REGISTRY_KEYS
            if unknown:
                raise ConfigError(f"setting HEALER_REPLICATION_REGISTRIES: {name!r} has unknown keys {sorted(unknown)}"
                                  f" (allowed: {sorted(_REGISTRY_KEYS)})")
            regions[name] = value.get("regions")
            if value.get("resourceId") is not None:
                topology[name] = {"resource_id": value["resourceId"], "degraded": value.get("degraded", "wait")}
        else:
            regions[name] = value
    return regions, topology


def load_config(settings: Settings) -> ReplicationConfig:
    """Raises ConfigError naming the setting when anything is malformed."""
    registries, topology = _registry_entries(_json_setting(settings, "HEALER_REPLICATION_REGISTRIES", dict) or {})
    backoff = _json_setting(settings, "HEALER_REPLICATION_BACKOFF", dict) or {}
    names = {"baseSeconds": "base_seconds", "factor": "factor", "maxSeconds": "max_seconds",
             "minSeconds": "min_seconds", "jitter": "jitter"}
    unknown = set(backoff) - set(names)
    if unknown:
        raise ConfigError(f"setting HEALER_REPLICATION_BACKOFF has unknown keys {sorted(unknown)}")
    try:
        bp = BackoffPolicy(**{names[k]: v for k, v in backoff.items()})
        # validate the registry map with the core's own rules
        ReplicationPolicy(required_regions={k: tuple(v) if isinstance(v, list) else v
                                            for k, v in registries.items()})
        return ReplicationConfig(
            registries={k: tuple(dict.fromkeys(v)) for k, v in registries.items()},
            topology=topology,
            topology_ttl_seconds=_number(settings, "HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS"),
            endpoints=_json_setting(settings, "HEALER_REPLICATION_ENDPOINTS", dict) or {},
            deadline_seconds=_number(settings, "HEALER_REPLICATION_DEADLINE_SECONDS"),
            backoff=bp,
            tag_race_grace_seconds=_number(settings, "HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS"),
            fail_fast_seconds=_number(settings, "HEALER_REPLICATION_FAIL_FAST_SECONDS"),
            max_throttled_seconds=_number(settings, "HEALER_REPLICATION_MAX_THROTTLED_SECONDS"),
            tenant=settings.get("HEALER_REPLICATION_ACR_TENANT_ID"),
            topic_endpoint=settings.get("HEALER_REPLICATION_TOPIC_ENDPOINT"),
            topic_key=settings.get("HEALER_REPLICATION_TOPIC_KEY"),
        )
    except (ValidationError, TypeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"msg": str(exc), "loc": ()}
        raise ConfigError(f"replication settings are invalid: {'.'.join(map(str, first['loc']))} "
                          f"{first['msg']}") from None


# ---------------------------------------------------------------------------------------------- clients (cached)

_clients_lock = threading.Lock()
_probers: dict[Any, Any] = {}
_publishers: dict[Any, Any] = {}


def prober_for(config: ReplicationConfig):
    """One RegistryProber per endpoint map and tenant, with an ACR token provider fed by Healer's identity.

    The Entra token is only requested when a registry answers 401 with a Bearer challenge (anonymous local
    registries never do)."""
    key = (tuple(sorted(config.endpoints.items())), config.tenant)
    with _clients_lock:
        if key not in _probers:
            from healers.replication.acr_auth import ACR_AAD_SCOPE, AcrTokenProvider
            from healers.replication.registry_client import RegistryProber

            def aad_token() -> str:
                from shared.identity import credential
                return credential().get_token(ACR_AAD_SCOPE).token

            auth = AcrTokenProvider(aad_token, tenant=config.tenant, endpoint_map=config.endpoints)
            _probers[key] = RegistryProber(config.endpoints, auth=auth)
        return _probers[key]


def publisher_for(config: ReplicationConfig):
    """None when no topic is configured. Key credential only when a key is set (local/test topics)."""
    if not config.topic_endpoint:
        return None
    key = (config.topic_endpoint, config.topic_key)
    with _clients_lock:
        if key not in _publishers:
            from healers.replication.events_out import OutcomePublisher
            if config.topic_key:
                from azure.core.credentials import AzureKeyCredential
                credential: Any = AzureKeyCredential(config.topic_key)
            else:
                from shared.identity import credential as healer_credential
                credential = healer_credential()
            _publishers[key] = OutcomePublisher(config.topic_endpoint, credential)
        return _publishers[key]


_lag_histogram = None


def _record_lag(record: WaitRecord) -> None:
    """healer.replication.lag (seconds, attribute region) for the workbook; never breaks a decision."""
    global _lag_histogram
    try:
        if _lag_histogram is None:
            from opentelemetry import metrics
            _lag_histogram = metrics.get_meter("healer").create_histogram(
                "healer.replication.lag", unit="s", description="Push to first serving, per replica region")
        for region, seen in record.first_seen.items():
            _lag_histogram.record(max(0.0, seen - record.event_time),
                                  {"region": region, "registry": record.registry, "action": record.action})
    except Exception:
        log.debug("lag metric failed", exc_info=True)


# ---------------------------------------------------------------------------------------------- storage

def _store(settings: Settings) -> Store:
    return Store(settings, TABLE)


def _load(store: Store, registry: str, repository: str, digest: str) -> tuple[WaitRecord | None, Record | None]:
    pk, rk = wait_keys(registry, repository, digest)
    found = store.get(pk, rk)
    if found is None:
        return None, None
    return from_entity(found.columns), found


def _save(store: Store, record: WaitRecord, etag: str | None) -> str | None:
    """Insert-if-absent (etag None) or ETag-guarded replace; raises Conflict. Returns the new ETag."""
    entity = to_entity(record)
    pk, rk = entity.pop("PartitionKey"), entity.pop("RowKey")
    return store.replace(Record(pk, rk, {}, etag=etag, columns=entity)).etag


def tag_key(repository: str, tag: str) -> str:
    return f"~tag:{repository.replace('/', '|')}:{tag}"


def _pushes(data: dict[str, Any]) -> dict[str, float]:
    """The index entity's {digest: latest push time}, validated (older entities only name the newest push)."""
    raw = data.get("history")
    pushes: dict[str, float] = {}
    if isinstance(raw, dict):
        for digest, ts in list(raw.items())[:TAG_HISTORY * 2]:
            if isinstance(digest, str) and DIGEST_RE.fullmatch(digest) and isinstance(ts, (int, float)):
                pushes[digest] = float(ts)
    newest, ts = data.get("digest"), data.get("eventTime")
    if isinstance(newest, str) and isinstance(ts, (int, float)):
        pushes[newest] = max(float(ts), pushes.get(newest, float(ts)))
    return pushes


def _index_tag(store: Store, event: AcrImageEvent) -> None:
    """Point (repository, tag) at the digest of the newest push of it (by event time), and remember the latest push
    time of every digest pushed under it (the TAG_HISTORY most recent)."""
    if event.action != "push" or not event.tag:
        return
    ts = event.event_time.timestamp()
    for _ in range(MAX_INTAKE_WRITES):
        found = store.get(event.registry, tag_key(event.repository, event.tag))
        pushes = _pushes(found.data) if found is not None else {}
        if pushes.get(event.digest, -math.inf) >= ts:
            return
        pushes[event.digest] = ts
        pushes = dict(sorted(pushes.items(), key=lambda kv: kv[1])[-TAG_HISTORY:])
        newest = max(pushes.items(), key=lambda kv: kv[1])
        rec = Record(event.registry, tag_key(event.repository, event.tag),
                     {"digest": newest[0], "eventTime": newest[1], "history": pushes},
                     etag=found.etag if found else None)
        try:
            store.replace(rec)
            return
        except Conflict:
            continue


def _tag_history(store: Store, record: WaitRecord, observations: list[Any]) -> dict[str, dict[str, float]]:
    """What Healer saw pushed under the tags that some replica resolves to another digest (read only then)."""
    tags = sorted({t for o in observations for t, d in o.tags.items() if d and d != record.digest
                   and t in record.tags})
    history: dict[str, dict[str, float]] = {}
    for tag in tags:
        found = store.get(record.registry, tag_key(record.repository, tag))
        if found is not None:
            history[tag] = _pushes(found.data)
    return history


def _send_check(settings: Settings, record: WaitRecord, delay: float = 0.0) -> None:
    message = {**json.loads(check_message(record)), "check": record.attempts}
    # Storage visibility timeouts are whole seconds: round up so a check never runs before it is due.
    enqueue(settings, QUEUE, message, math.ceil(max(0.0, delay)))


def _subject(registry: str, repository: str, digest: str) -> str:
    return f"{registry}/{repository}@{digest}"


def _audit(settings: Settings, outcome: str, reason: str, *, registry: str, repository: str = "",
           digest: str = "", subject: str = "", **details: Any) -> None:
    resource = _subject(registry, repository, digest) if repository else registry
    audit.record(settings, healer=HEALER, outcome=outcome, reason=reason, resource=resource, subject=subject,
                 details=details)


# ---------------------------------------------------------------------------------------------- intake

_INTAKE_OUTCOME = {"new-wait": "recorded", "superseded": "recorded", "restarted": "recorded",
                   "tag-added": "recorded", "evidence-added": "duplicate", "duplicate-delivery": "duplicate",
                   "already-complete": "duplicate", "stale-event": "skipped"}


def accept(settings: Settings, parsed: ParsedEvent, *, now: Clock = time.time) -> str:
    """Fold one parsed delivery into its wait. Returns the audit outcome. Storage errors propagate (the
    Functions host then fails the invocation and Event Grid retries the delivery)."""
    if isinstance(parsed, ValidationHandshake):
        _audit(settings, "ignored", "subscription validation event reached the function (the host answers "
               "handshakes); nothing to do", registry="", subject=parsed.event_id)
        return "ignored"
    if isinstance(parsed, IgnoredEvent):
        _audit(settings, "ignored", f"event type {parsed.event_type[:200]} is not handled ({parsed.reason})",
               registry="", subject=parsed.event_id, eventType=parsed.event_type[:200])
        return "ignored"
    event = parsed
    config = load_config(settings)
    policy = config.policy()
    t = now()
    if event.registry not in policy.required_regions:
        _audit(settings, "refused", f"registry {event.registry!r} is not configured in HEALER_REPLICATION_REGISTRIES; "
               f"{event.action} of {event.repository}@{event.digest} not watched", registry=event.registry,
               repository=event.repository, digest=event.digest, subject=event.event_id, **_evidence(event))
        return "refused"
    try:
        check_topology(settings, config, event.registry)
    except ConfigError as exc:
        _audit(settings, "refused", f"{exc}; {event.action} of {event.repository}@{event.digest} not watched",
               registry=event.registry, repository=event.repository, digest=event.digest, subject=event.event_id)
        raise
    store = _store(settings)
    flushed: set[str] = set()
    for _ in range(MAX_INTAKE_WRITES):
        existing, found = _load(store, event.registry, event.repository, event.digest)
        result = intake(existing, event, policy, t)
        record = result.record
        assert record is not None
        # A stalled wait (its check chain died) gets a fresh check from this delivery; the ETag-guarded save makes
        # one delivery among concurrent ones the restarter.
        kick = (not result.enqueue_check and record.generation == (existing.generation if existing else -1)
                and restart_due(record, policy, t))
        if kick:
            record = restarted(record, t)
        if (existing is not None and existing.outcome_delivery == "publishing"
                and record.generation != existing.generation and existing.wait_id not in flushed):
            # The wait's decided outcome was never confirmed published, and a new generation is about to replace
            # it: send the stored event now (idempotent by its id), or it would be lost with the old record.
            _deliver_stored(settings, config, store, existing, None, now=t, replaced=True)
            flushed.add(existing.wait_id)
        if record != existing:
            try:
                _save(store, record, found.etag if found else None)
            except Conflict:
                continue  # another delivery of this wait wrote first: merge into what it wrote
        break
    else:
        raise RuntimeError(f"wait {event.wait_key} kept changing under {MAX_INTAKE_WRITES} merges; retry")

    # Event Grid redelivers an event it saw fail. If the failed attempt saved the wait but died before sending its
    # first check (queue down), this redelivery is a duplicate and would succeed without one, leaving the wait
    # pending forever: a wait still not checked a few seconds on gets its first check again (Event Grid's first
    # retry comes after ~10 s; an immediate duplicate does not resend; a needless second copy is a stale-check).
    resend = (result.reason == "duplicate-delivery" and record.status == "pending" and record.attempts == 0
              and record.next_check_at is not None and t - record.next_check_at > FIRST_CHECK_RESEND_SECONDS)
    if result.reason not in ("duplicate-delivery", "stale-event") or resend:
        _index_tag(store, event)   # idempotent; before the send, so a failed send does not leave it out
    if result.enqueue_check or kick or resend:
        _send_check(settings, record)
    outcome = _INTAKE_OUTCOME[result.reason]
    reason = _intake_reason(result.reason, record, event, kick)
    if resend and not kick:
        reason += "; the wait has not been checked yet, its first check was (re)sent"
    _audit(settings, outcome, reason, registry=event.registry,
           repository=event.repository, digest=event.digest, subject=event.event_id, intake=result.reason,
           generation=record.generation, **_evidence(event))
    return outcome


def _evidence(event: AcrImageEvent) -> dict[str, Any]:
    return {"eventType": event.event_type, "tag": event.tag, "location": event.location,
            "requestId": event.request_id, "schema": event.schema_name, "mediaType": event.media_type,
            "eventTime": event.event_time.isoformat()}


def _intake_reason(reason: str, record: WaitRecord, event: AcrImageEvent, kick: bool) -> str:
    what = f"{event.action} of {event.repository}@{event.digest}" + (f" (tag {event.tag})" if event.tag else "")
    regions = ", ".join(record.required_regions)
    text = {
        "new-wait": f"waiting for {what} in {regions}",
        "superseded": f"{what} supersedes the earlier {'push' if event.action == 'delete' else 'delete'}; "
                      f"new wait (generation {record.generation}) in {regions}",
        "restarted": f"{what} after the previous wait finished; new wait (generation {record.generation})",
        "tag-added": f"tag {event.tag} added to the pending wait; every replica is checked for it",
        "evidence-added": f"later delivery of {what} (location {event.location or '?'}) merged as evidence",
        "duplicate-delivery": f"duplicate delivery of event {event.event_id[:100]}",
        "already-complete": f"delivery of {what} after its wait finished ({record.status})",
        "stale-event": f"older {event.action} delivered after a newer action on {event.digest}; kept as evidence",
    }[reason]
    return text + ("; the wait had stalled, a new check was queued" if kick else "")


# ---------------------------------------------------------------------------------------------- checks

def control_scope(registry: str) -> str:
    return f"registry:{registry}"


def handle_check(settings: Settings, message: dict[str, Any], *, prober: Any = None, publisher: Any = None,
                 now: Clock = time.time) -> str:
    """One check of one wait. Returns what happened; raises RetryLater / Discard for shared.work."""
    try:
        ref = parse_check_message(json.dumps({k: message.get(k) for k in
                                              ("registry", "repository", "digest", "generation")}))
    except ValueError as exc:
        detail = str(exc).splitlines()[0][:200]
        raise Discard(f"malformed replication check message: {detail}") from None
    seq = message.get("check")
    if gate.config_refusal(settings, healer=HEALER, resource=_subject(ref.registry, ref.repository, ref.digest),
                           subject=ref.digest, what="check the replication wait") is not None:
        # an invalid configuration acts on nothing: the check comes back later (the wait is not abandoned)
        raise RetryLater(60 + random.random() * 60, "Healer's configuration is invalid")
    config = load_config(settings)
    policy = config.policy()
    store = _store(settings)
    record, found = _load(store, ref.registry, ref.repository, ref.digest)
    if record is None or found is None:
        _audit(settings, "skipped", "check for a wait that does not exist (deleted?); dropped",
               registry=ref.registry, repository=ref.repository, digest=ref.digest)
        return "missing"
    if record.generation != ref.generation:
        return "stale-generation"
    if record.status != "pending":
        if record.outcome_delivery == "awaiting-approval" and message.get("approvalId"):
            return _deliver_stored(settings, config, store, record, found.etag, now=now(), publisher=publisher,
                                   message=message)
        if record.outcome_delivery == "publishing":
            # decided before (a retry, a redelivery after a crash, a restart): send exactly the stored event
            return _deliver_stored(settings, config, store, record, found.etag, now=now(), publisher=publisher,
                                   message=message)
        return "done"
    if isinstance(seq, int) and seq != record.attempts:
        return "stale-check"   # a second copy of this wait's chain (redelivery); the live one carries on
    if record.registry not in policy.required_regions:
        _audit(settings, "refused", f"registry {record.registry!r} was removed from HEALER_REPLICATION_REGISTRIES; "
               f"the wait is abandoned", registry=record.registry, repository=record.repository,
               digest=record.digest)
        return "refused"

    prober = prober if prober is not None else prober_for(config)
    view = topology_view(settings, config, record)
    # a throttled replica is not probed before its Retry-After / per-replica backoff (the others still are); a
    # replica removed from the topology is not probed; with regional endpoints off nothing is
    probe = [r for r in regions_to_probe(record, now()) if view is None or view.regions.get(r) != "absent"]
    observations = [] if view is not None and view.regional_endpoints is False else prober.observe_all(record, probe)
    decision = decide(record, observations, policy, now(), _tag_history(store, record, observations), view)
    if decision.action == "recheck":
        return _recheck(settings, store, record, found, decision)
    if decision.action == "done":
        return "done"
    return _finish(settings, config, store, found, decision, publisher, message, now)


def _recheck(settings: Settings, store: Store, before: WaitRecord, found: Record, decision: Decision) -> str:
    record = decision.record
    # Send the next check first, then save: a crash in between leaves the old message to be redelivered
    # (it still matches the stored wait); a conflict leaves an orphan the check number makes harmless.
    _send_check(settings, record, decision.delay_seconds or 0.0)
    try:
        _save(store, record, found.etag)
    except Conflict:
        raise RetryLater(0.5 + random.random(), "the wait changed while it was checked (a new delivery merged)") \
            from None
    new_errors = {r: e for r, e in record.last_errors.items() if before.last_errors.get(r) != e}
    if new_errors:
        _audit(settings, "pending", "replica probe problems, still waiting: "
               + "; ".join(f"{r}: {e}" for r, e in sorted(new_errors.items())),
               registry=record.registry, repository=record.repository, digest=record.digest,
               subject=record.outcome_event_id, errors=new_errors, missing=record.missing_regions())
    return "recheck"


_RESULTS = {"published": "published", "dry-run": "dry-run", "skipped": "killed", "recorded": "recorded",
            "refused": "refused", "awaiting-approval": "pending"}
_DELIVERY = {"killed": "skipped", "refused": "refused", "dry-run": "dry-run", "pending": "awaiting-approval",
             "act": "publishing"}


def _gate(settings: Settings, record: WaitRecord, message: dict[str, Any] | None) -> gate.Verdict:
    """The gate call site of publishing a wait's outcome (replication.publish)."""
    stored = record.outcome_event or {}
    event_type, why = str(stored.get("eventType", "")), record.outcome_reason or ""
    resource = _subject(record.registry, record.repository, record.digest)
    return gate.check(settings, gate.Proposal(
        healer=HEALER, action="replication.publish", resource=resource, subject=record.outcome_event_id or "",
        plan=f"publish {event_type}; {why}", scope=control_scope(record.registry),
        not_done=f"{event_type} not published", approval_id=(message or {}).get("approvalId"),
        approval_subject=f"{record.outcome_event_id}|{record.generation}",
        params={"registry": record.registry, "repository": record.repository, "status": record.status},
        details={"eventType": event_type, "outcomeEventId": record.outcome_event_id, "payload": stored.get("data")},
        queue=QUEUE, on_approve={**json.loads(check_message(record)), "kind": "approved", "attempt": 0}))


def _finish(settings: Settings, config: ReplicationConfig, store: Store, found: Record, decision: Decision,
            publisher: Any, message: dict[str, Any], now: Clock) -> str:
    """A check decided: save the outcome (and its event) first, then publish exactly what was saved."""
    from healers.replication.events_out import stored_outcome_event

    record = decision.record
    publisher = publisher if publisher is not None else publisher_for(config)
    record.outcome_event = stored_outcome_event(record)
    record.outcome_reason = decision.reason[:1000]
    verdict = _gate(settings, record, message) if publisher is not None else None
    record.outcome_delivery = _DELIVERY[verdict.klass] if verdict else "recorded"  # type: ignore[assignment]
    try:
        etag = _save(store, record, found.etag)
    except Conflict:
        # Nothing is published yet: the retry probes and decides afresh against what was merged meanwhile.
        raise RetryLater(0.5 + random.random(), "the wait changed while it was checked (a new delivery merged)") \
            from None
    if record.outcome_delivery == "recorded":
        _audit_outcome(settings, record, record.outcome_delivery)
    if record.outcome_delivery != "publishing":
        return _RESULTS[record.outcome_delivery]  # the gate audited why it was not published
    return _deliver_stored(settings, config, store, record, etag, now=now(), publisher=publisher, message=message,
                           verdict=verdict)


def _deliver_stored(settings: Settings, config: ReplicationConfig, store: Store, record: WaitRecord,
                    etag: str | None, *, now: float, publisher: Any = None, message: dict[str, Any] | None = None,
                    replaced: bool = False, verdict: gate.Verdict | None = None) -> str:
    """Publish the stored outcome event of a wait marked "publishing" (or approved after "awaiting-approval"), then
    save it as delivered. Never decides. The gate is asked again (unless `verdict` was just given): a kill switch
    engaged meanwhile still stops it.

    A publish failure raises RetryLater (the retry lands here again). `replaced`: the record is about to be
    overwritten by a new generation, so it is only published and audited, not saved."""
    from healers.replication.events_out import publish_stored

    stored = record.outcome_event or {}
    publisher = publisher if publisher is not None else publisher_for(config)
    if publisher is None:
        delivery = "recorded"
    else:
        verdict = verdict or _gate(settings, record, message)
        delivery = _DELIVERY[verdict.klass]
    if delivery == "publishing":
        try:
            publish_stored(publisher, stored)
        except Exception as exc:  # HttpResponseError, network, auth: retried, finally dead-lettered and audited
            attempt = int((message or {}).get("attempt", 0)) + 1
            raise RetryLater(min(60.0, 2.0 ** attempt) * (0.5 + random.random() / 2),
                             f"publishing {stored.get('eventType')} failed: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None
        delivery = "published"
    done = record.model_copy(update={"outcome_delivery": delivery,
                                     "published_at": now if delivery == "published" else None})
    if not replaced and not _mark_delivered(store, done, etag):
        return _RESULTS[delivery]   # another copy of the chain saved it first (and audited it)
    if done.status == "ready" and done.action == "push" and delivery == "published":
        _record_lag(done)
    if delivery in ("published", "recorded"):
        _audit_outcome(settings, done, delivery)
        if delivery == "published" and (message or {}).get("approvalId"):
            from shared import approvals
            approvals.mark_executed(settings, HEALER, message["approvalId"], _utc(now), "acted")
    return _RESULTS[delivery]


def _utc(ts: float):
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _mark_delivered(store: Store, done: WaitRecord, etag: str | None) -> bool:
    """Save the delivery of the decided outcome. A conflict (a delivery merged evidence meanwhile) is resolved by
    re-reading, never by publishing or deciding again. False when someone else already finished it."""
    for _ in range(MAX_INTAKE_WRITES):
        try:
            _save(store, done, etag)
            return True
        except Conflict:
            current, found = _load(store, done.registry, done.repository, done.digest)
            if (current is None or found is None or current.generation != done.generation
                    or current.outcome_delivery not in ("publishing", "awaiting-approval")):
                return False
            done = current.model_copy(update={"outcome_delivery": done.outcome_delivery,
                                              "published_at": done.published_at})
            etag = found.etag
    raise RetryLater(0.5 + random.random(), "the wait kept changing while its outcome delivery was saved")


def _audit_outcome(settings: Settings, record: WaitRecord, delivery: str) -> None:
    """The record of an outcome that went out (or had nowhere to go); the gate audits every other delivery."""
    stored = record.outcome_event or {}
    event_type, why = str(stored.get("eventType", "")), record.outcome_reason or ""
    outcome, reason = {
        "published": ("acted", f"published {event_type}: {why}"),
        "recorded": ("recorded", f"{event_type} not published (HEALER_REPLICATION_TOPIC_ENDPOINT is not set); {why}"),
    }[delivery]
    _audit(settings, outcome, reason, registry=record.registry, repository=record.repository, digest=record.digest,
           subject=record.outcome_event_id, eventType=event_type, outcomeEventId=record.outcome_event_id,
           payload=stored.get("data"))


def note_dead_letter(settings: Settings, body: bytes, *, now: Clock = time.time) -> bool:
    """Mark the wait of a dead-lettered check so the status endpoint reports it stalled (and restarts it).
    True when a wait was marked; malformed or stale messages mark nothing."""
    try:
        message = json.loads(body)
        ref = parse_check_message(json.dumps({k: message.get(k) for k in
                                              ("registry", "repository", "digest", "generation")}))
    except (ValueError, TypeError, AttributeError):
        return False
    reason = str(message.get("deadLetterReason") or "failed repeatedly in the Functions host")[:300]
    store = _store(settings)
    for _ in range(MAX_INTAKE_WRITES):
        record, found = _load(store, ref.registry, ref.repository, ref.digest)
        if (record is None or found is None or record.generation != ref.generation
                or not (record.status == "pending" or record.outcome_delivery == "publishing")):
            return False
        try:
            _save(store, record.model_copy(update={"chain_note": f"dead-lettered at {_iso_now(now())}: {reason}"}),
                  found.etag)
            return True
        except Conflict:
            continue
    return False


def _iso_now(ts: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- status

class StatusError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def image_request(settings: Settings, registry: str | None, repository: str | None, digest: str | None,
                  tag: str | None) -> tuple[str, str, ReplicationConfig]:
    """Validate an image a caller names (status API, waits on demand): (registry, repository, config) of a watched
    registry, or StatusError 400/404 with the reason. At least one of digest or tag is required."""
    registry, repository = (registry or "").strip().lower(), (repository or "").strip()
    if not REGISTRY_NAME_RE.fullmatch(registry) or len(repository) > 256 or not REPOSITORY_RE.fullmatch(repository):
        raise StatusError(400, "registry and repository are required and must be valid names")
    if not digest and not tag:
        raise StatusError(400, "give a digest, a tag, or both")
    if digest and (len(digest) > 200 or not DIGEST_RE.fullmatch(digest)):
        raise StatusError(400, "digest must be sha256:<64 hex> or sha512:<128 hex>")
    if tag and not TAG_RE.fullmatch(tag):
        raise StatusError(400, "malformed tag")
    config = load_config(settings)
    if registry not in config.registries:
        raise StatusError(404, f"registry {registry!r} is not watched (HEALER_REPLICATION_REGISTRIES)")
    return registry, repository, config


def status(settings: Settings, *, registry: str | None, repository: str | None, digest: str | None = None,
           tag: str | None = None, now: Clock = time.time) -> dict[str, Any]:
    """The wait for (registry, repository, digest), or for the newest push of `tag`. Raises StatusError.

    A wait whose check chain died is reported `stalled` (why, last check) and its chain is restarted here (at most
    once per cooldown), so it still reaches its real outcome."""
    if bool(digest) == bool(tag):
        raise StatusError(400, "give exactly one of digest or tag")
    registry, repository, config = image_request(settings, registry, repository, digest, tag)
    store = _store(settings)
    if tag:
        index = store.get(registry, tag_key(repository, tag))
        if index is None:
            raise StatusError(404, f"no push of {repository}:{tag} seen")
        digest = str(index.data["digest"])
    record, found = _load(store, registry, repository, str(digest))
    if record is None or found is None:
        raise StatusError(404, f"no wait for {repository}@{digest}")
    t = now()
    policy = config.policy()
    stalled = stalled_reason(record, policy, t)
    restarted_now = False
    if stalled is not None and restart_due(record, policy, t) and record.registry in policy.required_regions:
        restarted_now = _restart(settings, store, record, found, t, stalled)
    view = status_view(record, stalled=stalled, restarted=restarted_now)
    view["outcomeEventId"] = record.outcome_event_id
    if tag:
        view["requestedTag"] = tag
    return view


def _restart(settings: Settings, store: Store, record: WaitRecord, found: Record, t: float, why: str) -> bool:
    """Send a fresh check for a stalled wait. The ETag-guarded save first makes one caller among concurrent status
    requests the restarter; a failed send is retried by a later request after the cooldown."""
    fresh = restarted(record, t)
    try:
        _save(store, fresh, found.etag)
    except Conflict:
        return False        # it changed under us: somebody is moving it (or restarted it) already
    try:
        _send_check(settings, fresh)
    except Exception as exc:
        log.warning("restarting the check chain of %s failed: %s", record.wait_id, type(exc).__name__)
        return False
    _audit(settings, "pending", f"the wait had stalled ({why}); a status request restarted its check chain", registry=record.registry, repository=record.repository,
           digest=record.digest, subject=record.outcome_event_id)
    return True


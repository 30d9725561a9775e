"""Queued re-checks that prove a rollback's recovery (the shell half of `recovery.py`).

After a verified swap, when the app has `recovery` options, the shell saves a `proof` record in the app's
operations record and enqueues a `recheck` message with a delay. Each re-check takes the app's lease, runs the
checks, and either records the recovery as proven, re-enqueues itself with backoff, or — at the deadline —
escalates with the evidence (the app stays latched and is marked escalated: no automatic swap until re-armed).
A re-check message whose number is not the proof's current one is stale (a duplicate) and is dropped.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from collections.abc import Callable

from healers.rollback import checks
from healers.rollback.evidence import bounded_evidence
from healers.rollback.recovery import RecoveryOptions, judge, next_delay
from healers.rollback.signal import Signal
from shared import audit
from shared.config import RollbackTarget, Settings
from shared.resource_ids import parse_site_id
from shared.state import Store, acquire_lease, release_lease, safe_key, save_under_lease
from shared.work import RetryLater, busy_delay, enqueue

log = logging.getLogger("healer.rollback")
HEALER, QUEUE = "rollback", "healer-rollback"


def options(target: RollbackTarget) -> RecoveryOptions | None:
    return RecoveryOptions.model_validate(target.recovery) if target.recovery is not None else None


def recheck_message(target: RollbackTarget, incident: str, check: int) -> dict[str, Any]:
    return {"v": 1, "kind": "recheck", "resourceId": target.resource_id, "incident": incident, "check": check}


def start(settings: Settings, target: RollbackTarget, opts: RecoveryOptions, *, op: dict[str, Any],
          signal: Signal, signal_resource: str | None, fired_at: dt.datetime, now: dt.datetime,
          evidence: dict[str, Any]) -> dict[str, Any]:
    """Queue the first re-check and return the proof record to save with the app (queued first: a crash before
    the save leaves a stale message, never a proof nobody checks)."""
    deadline = now + dt.timedelta(minutes=opts.minutes)
    enqueue(settings, QUEUE, recheck_message(target, op["incident"], 0),
            next_delay(0, opts.recheck_seconds, deadline_in=(deadline - now).total_seconds()))
    return {"incident": op["incident"], "good": op["good"], "bad": op["bad"], "rule": op.get("rule", ""),
            "swapAt": now.isoformat(), "firedAt": fired_at.isoformat(), "deadline": deadline.isoformat(),
            "check": 0, "signal": signal.model_dump(mode="json") if opts.signal else None,
            "signalResource": signal_resource, "evidence": evidence}


def recheck(settings: Settings, message: dict[str, Any], *, owner: str, now: Callable[[], dt.datetime]) -> str:
    """One re-check. Returns proven / waiting / escalated / stale."""
    target = settings.rollback_targets.get(str(message.get("resourceId", "")).lower())
    if target is None:
        return "stale"
    ops = Store(settings, "ops")
    t = now()
    lease = acquire_lease(ops, HEALER, safe_key(target.key), owner, settings.lease_seconds, t)
    if lease is None:
        raise RetryLater(busy_delay(int(message.get("attempt", 0))), "another worker holds the app's lease")
    try:
        proof = lease.record.data.get("proof")
        if not proof or proof.get("incident") != message.get("incident") or proof.get("check") != message.get("check"):
            return "stale"
        return _check(settings, target, ops, lease, proof, t)
    finally:
        release_lease(ops, lease)


def _check(settings: Settings, target: RollbackTarget, ops: Store, lease: Any, proof: dict[str, Any],
           t: dt.datetime) -> str:
    opts = options(target) or RecoveryOptions()
    site = parse_site_id(target.resource_id)
    signal = Signal.model_validate(proof["signal"]) if proof.get("signal") else None
    swap_at, deadline = dt.datetime.fromisoformat(proof["swapAt"]), dt.datetime.fromisoformat(proof["deadline"])
    results = checks.run_checks(settings, site, good=proof["good"], instance_check=opts.instance_check,
                                health_checks=opts.health_checks, signal=signal,
                                signal_resource=proof.get("signalResource"),
                                fired_at=dt.datetime.fromisoformat(proof["firedAt"]), swap_at=swap_at, now=t)
    window = dt.timedelta(minutes=signal.window_minutes if signal else 1)
    verdict = judge(results, swap_at=swap_at, now=t, deadline=deadline, window=window)
    details = {"check": proof["check"], "results": results.model_dump(mode="json"), "good": proof["good"],
               "bad": proof["bad"], "swapAt": proof["swapAt"], "deadline": proof["deadline"]}
    if verdict.status == "waiting":
        # Queue the next re-check BEFORE saving its number: a crash between the two leaves this message current
        # (it is redelivered and queues again; the spare copy is stale), never a proof no message will check.
        enqueue(settings, QUEUE, recheck_message(target, proof["incident"], proof["check"] + 1),
                next_delay(proof["check"] + 1, opts.recheck_seconds, deadline_in=(deadline - t).total_seconds()))
        proof["check"] += 1
        lease.record.data["proof"] = proof
        save_under_lease(ops, lease)
        return "waiting"
    # Audit before the proof is dropped: a crash between the two re-runs the check (a second record), never
    # leaves a proven or escalated recovery without its audit record.
    if verdict.status == "proven":
        _record(settings, target, "recorded", verdict.reason, proof, details, t)
        lease.record.data["proof"] = None
        save_under_lease(ops, lease)
        return "proven"
    details["evidence"] = bounded_evidence({**(proof.get("evidence") or {}), "signal": [
        {"name": r.name, "threshold": r.threshold, "operator": r.operator, "error": r.error,
         "before": [[p.at.isoformat(), p.value] for p in r.before][-60:],
         "after": [[p.at.isoformat(), p.value] for p in r.after][-60:]} for r in results.signal]})
    reason = f"rollback to {proof['good']} did not prove a recovery: {verdict.reason}; no further swaps until re-armed"
    # The "escalated" audit record notifies every destination (shared.notify).
    _record(settings, target, "escalated", reason, proof, details, t)
    lease.record.data["proof"] = None
    lease.record.data["escalated"] = verdict.reason[:500]
    save_under_lease(ops, lease)
    return "escalated"


def _record(settings: Settings, target: RollbackTarget, outcome: str, reason: str, proof: dict[str, Any],
            details: dict[str, Any], t: dt.datetime) -> None:
    audit.record(settings, healer=HEALER, outcome=outcome, reason=reason, resource=target.resource_id,
                 subject=proof["incident"], details={"rule": proof.get("rule", ""), "recovery": details}, now=t)

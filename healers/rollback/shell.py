"""The rollback healer's imperative shell: dedupe, lease, observe, decide, act, verify, record.

Crash safety: every step that changes the world is preceded by a durable record of intent (the app's ops record,
ETag-guarded under a lease) and followed by a record of its result, so a redelivered message resumes from the
last recorded step — it polls the persisted long-running operation instead of swapping again.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any, Callable

from healers.rollback import arm
from healers.rollback.core import AppState, Latch, decide, verify
from shared import approvals, audit
from shared.alerts import Alert
from shared.config import RollbackTarget, Settings
from shared.controls import read_mode
from shared.notify import notify
from shared.policy import evaluate, load_policy
from shared.resource_ids import SiteId, parse_site_id
from shared.state import Conflict, Lease, Record, Store, acquire_lease, release_lease, safe_key, save_under_lease
from shared.work import RetryLater

log = logging.getLogger("healer.rollback")
HEALER = "rollback"
QUEUE = "healer-rollback"
ACTION = "rollback.swap"
MAX_ATTEMPTS = 12
TARGET_PROPERTY = "healer.target"
SLOT_PROPERTY = "healer.slot"

Step = Callable[[str], None]


def _no_step(_: str) -> None:
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Refused(Exception):
    pass


# ---------------------------------------------------------------------------------------------- intake

def work_message(alert: Alert) -> dict[str, Any]:
    return {"v": 1, "kind": "alert", "alert": alert.model_dump(mode="json"), "attempt": 0}


def resolve_target(settings: Settings, alert: Alert) -> tuple[RollbackTarget, str]:
    """The app and slot to act on: from the rule's customProperties, else the configured rule map.

    Never from alertTargetIDs (for log alerts that is a workspace). Refused unless allowlisted.
    """
    props = alert.custom_properties
    resource, slot = props.get(TARGET_PROPERTY), props.get(SLOT_PROPERTY)
    if not resource:
        mapped = settings.rollback_rule_map.get(alert.rule.lower())
        if mapped is None:
            raise Refused(f"rule {alert.rule!r} has no {TARGET_PROPERTY} custom property and no entry in "
                          f"HEALER_ROLLBACK_RULE_MAP")
        resource, slot = mapped.resource_id, slot or mapped.slot
    try:
        site = parse_site_id(resource)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if site.slot:
        raise Refused(f"target must be the app, not a slot: {resource[:200]}")
    target = settings.rollback_targets.get(site.app_id.lower())
    if target is None:
        raise Refused(f"{site.app_id} is not in the rollback allowlist (HEALER_ROLLBACK_TARGETS)")
    slot = slot or target.slot
    if slot.lower() != target.slot.lower():
        raise Refused(f"slot {slot!r} is not the configured rollback slot {target.slot!r} for {site.name}")
    return target, target.slot


# ---------------------------------------------------------------------------------------------- records

def _audit(settings: Settings, outcome: str, reason: str, target: str, alert: Alert, now: dt.datetime,
           **details: Any) -> None:
    audit.record(settings, healer=HEALER, outcome=outcome, reason=reason, resource=target, subject=alert.alert_id,
                 details={"rule": alert.rule, "condition": alert.monitor_condition,
                          "firedAt": alert.fired_at.isoformat(), **details}, now=now)


def _claim(settings: Settings, alert: Alert, suffix: str, now: dt.datetime) -> Record | None:
    """Insert-if-absent the dedupe record. Returns the existing record when this alert was seen before."""
    store = Store(settings, "dedupe")
    rec = Record(HEALER, safe_key(alert.alert_id + suffix), {"status": "claimed", "at": now.isoformat(),
                                                             "rule": alert.rule})
    try:
        store.insert(rec)
        return None
    except Conflict:
        return store.get(rec.partition, rec.row)


def _decided(settings: Settings, alert: Alert) -> Record | None:
    rec = Store(settings, "dedupe").get(HEALER, safe_key(alert.alert_id))
    return rec if rec is not None and rec.data.get("status") == "decided" else None


def _mark_decided(settings: Settings, alert: Alert, outcome: str, reason: str, now: dt.datetime) -> None:
    """Record the alert's decision once; the first final decision stands (ETag-guarded)."""
    store = Store(settings, "dedupe")
    rec = store.get(HEALER, safe_key(alert.alert_id)) or Record(HEALER, safe_key(alert.alert_id), {})
    if rec.data.get("status") == "decided":
        return
    rec.data = {"status": "decided", "outcome": outcome, "reason": reason[:500], "at": now.isoformat(),
                "rule": alert.rule}
    try:
        store.replace(rec)
    except Conflict:
        pass  # another worker recorded its decision first; it stands


def _duplicate(settings: Settings, alert: Alert, target: RollbackTarget, seen: Record, t: dt.datetime) -> str:
    _audit(settings, "duplicate", f"duplicate delivery of alert already decided "
           f"({seen.data.get('outcome')}: {seen.data.get('reason', '')[:200]})", target.resource_id, alert, t)
    return "duplicate"


def _app_state(lease: Lease) -> AppState:
    return AppState.model_validate({k: v for k, v in lease.record.data.items() if k in AppState.model_fields})


def _store_app_state(lease: Lease, app: AppState) -> None:
    lease.record.data.update(app.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------------- handler

def handle(settings: Settings, message: dict[str, Any], *, owner: str, now: Callable[[], dt.datetime] = utcnow,
           step: Step = _no_step) -> str:
    """Process one work message. Returns the outcome; raises RetryLater to be re-run after a delay."""
    alert = Alert.model_validate(message["alert"])
    t = now()
    if not alert.fired:
        if _claim(settings, alert, ":resolved", t) is None:
            _audit(settings, "recorded", "Resolved: recorded, never acted on", _target_hint(alert), alert, t)
            return "recorded"
        return "duplicate"
    try:
        target, slot = resolve_target(settings, alert)
    except Refused as exc:
        if _claim(settings, alert, ":refused", t) is None:
            _audit(settings, "refused", str(exc), _target_hint(alert), alert, t)
        return "refused"
    approval_id = message.get("approvalId")
    if not approval_id:
        seen = _claim(settings, alert, "", t)
        if seen is not None and seen.data.get("status") == "decided":
            return _duplicate(settings, alert, target, seen, t)
    ops = Store(settings, "ops")
    lease = acquire_lease(ops, HEALER, safe_key(target.key), owner, settings.lease_seconds, t)
    if lease is None:
        raise RetryLater(2 + random.random() * 4, f"another worker holds the operation lease on {target.resource_id}")
    try:
        # Double-check under the lease: a concurrent delivery of this alert may have decided meanwhile.
        seen = None if approval_id else _decided(settings, alert)
        if seen is not None and not lease.record.data.get("op"):
            return _duplicate(settings, alert, target, seen, t)
        return _decide_and_act(settings, alert, target, slot, ops, lease, approval_id, now, step)
    finally:
        release_lease(ops, lease)


def _decide_and_act(settings: Settings, alert: Alert, target: RollbackTarget, slot: str, ops: Store, lease: Lease,
                    approval_id: str | None, now: Callable[[], dt.datetime], step: Step) -> str:
    site = parse_site_id(target.resource_id)
    op = lease.record.data.get("op")
    if op:
        resumed = _resume(settings, alert, target, site, slot, ops, lease, now, step)
        if op.get("incident") == alert.alert_id and resumed is not None:
            _mark_decided(settings, alert, resumed, "resumed an interrupted rollback", now())
            return resumed
    app = _app_state(lease)
    t = now()
    approved = False
    if approval_id:
        rec = approvals.get(settings, HEALER, approval_id)
        if rec is None or rec.data.get("subject") != alert.alert_id:
            _audit(settings, "refused", f"approval {approval_id} is not an approval of this alert",
                   target.resource_id, alert, t)
            return "refused"
        status = rec.data.get("status")
        if status == "executed":
            _audit(settings, "duplicate", f"approval {approval_id} was already executed ({rec.data.get('outcome')})",
                   target.resource_id, alert, t)
            return "duplicate"
        if status != "approved":
            _audit(settings, "refused", f"approval {approval_id} is {status}, not approved", target.resource_id,
                   alert, t)
            return "refused"
        approved = True
    obs = arm.observe(settings, site, slot, target.build_marker)
    mode = read_mode(settings, target.key, target.dry_run)
    policy_doc, why = load_policy(settings.policy_document)
    policy = evaluate(policy_doc, ACTION, target.resource_id, why)
    d = decide(fired_at=alert.fired_at, slot_name=slot, obs=obs, app=app, mode=mode, policy=policy,
               approved=approved, max_rollbacks=target.max_rollbacks,
               window=dt.timedelta(minutes=target.window_minutes),
               max_build_age=dt.timedelta(minutes=target.max_build_age_minutes), now=t)
    observed = obs.model_dump(mode="json")
    if d.clear_latch and app.latch:
        _audit(settings, "recorded", f"latch released: a new deployment was seen (production {obs.production.build})",
               target.resource_id, alert, t, previousLatch=app.latch.model_dump(mode="json"))
        app.latch = None
        _store_app_state(lease, app)
        save_under_lease(ops, lease)

    if d.action == "swap":
        outcome = _swap(settings, alert, target, site, slot, ops, lease, d.good, d.bad, approval_id, now, step,
                        observed)
    else:
        outcome = {"skip": "skipped", "refuse": "refused", "ask": "pending", "dry-run": "dry-run",
                   "killed": "skipped"}[d.action]
        details: dict[str, Any] = {"observed": observed, "policy": policy.model_dump(), "mode": mode.model_dump()}
        if d.action == "ask":
            pending, created = approvals.park(
                settings, healer=HEALER, subject=alert.alert_id, action=ACTION, resource=target.resource_id,
                reason=d.reason, message={"v": 1, "kind": "approved", "alert": alert.model_dump(mode="json"),
                                          "attempt": 0},
                queue_name=QUEUE, now=t)
            details["approvalId"] = pending["id"]
            if created:
                details["notification"] = notify(
                    settings, kind="approval-requested", title=f"Healer asks: roll back {site.name}?",
                    text=d.reason, facts={"approvalId": pending["id"], "resource": target.resource_id,
                                          "approve": f"POST /api/approvals/{HEALER}/{pending['id']}"})
        _audit(settings, outcome, d.reason, target.resource_id, alert, t, **details)
    if approval_id:
        approvals.mark_executed(settings, HEALER, approval_id, now(), outcome)
    _mark_decided(settings, alert, outcome, d.reason, now())
    return outcome


def _save_op(ops: Store, lease: Lease, op: dict[str, Any] | None) -> None:
    lease.record.data["op"] = op
    save_under_lease(ops, lease)


def _swap(settings: Settings, alert: Alert, target: RollbackTarget, site: SiteId, slot: str, ops: Store,
          lease: Lease, good: str, bad: str, approval_id: str | None, now: Callable[[], dt.datetime], step: Step,
          observed: dict[str, Any]) -> str:
    op = {"incident": alert.alert_id, "phase": "intent", "good": good, "bad": bad, "startedAt": now().isoformat(),
          "approvalId": approval_id, "token": None, "rule": alert.rule}
    _save_op(ops, lease, op)
    step("intent")
    return _send_and_finish(settings, alert, target, site, slot, ops, lease, op, now, step, observed)


def _send_and_finish(settings: Settings, alert: Alert, target: RollbackTarget, site: SiteId, slot: str, ops: Store,
                     lease: Lease, op: dict[str, Any], now: Callable[[], dt.datetime], step: Step,
                     observed: dict[str, Any] | None = None) -> str:
    try:
        poller, token = arm.start_swap(settings, site, slot)
    except arm.SwapConflict as exc:
        # Another swap is running (ours from before a crash, or a human's). Keep the intent; look again later.
        raise RetryLater(20 + random.random() * 20, f"ARM 409, another swap is in progress: {exc}") from None
    except arm.TransientArmError as exc:
        attempt = int(op.get("sendAttempts", 0)) + 1
        op["sendAttempts"] = attempt
        _save_op(ops, lease, op)
        raise RetryLater(min(300, 5 * 2 ** attempt) * (0.5 + random.random() / 2),
                         f"transient ARM error, swap not accepted: {exc}") from None
    op.update(phase="swapping", token=token)
    _save_op(ops, lease, op)
    step("swap-started")
    arm.wait(poller)
    op["phase"] = "verifying"
    _save_op(ops, lease, op)
    step("swap-finished")
    return _verify(settings, alert, target, site, slot, ops, lease, op, now, step, observed)


def _verify(settings: Settings, alert: Alert, target: RollbackTarget, site: SiteId, slot: str, ops: Store,
            lease: Lease, op: dict[str, Any], now: Callable[[], dt.datetime], step: Step,
            observed: dict[str, Any] | None = None) -> str:
    after = arm.observe(settings, site, slot, target.build_marker)
    health = arm.check_health(target.health_url)
    problem = verify(obs=after, good=op["good"], health=health)
    t = now()
    app = _app_state(lease)
    app.rollbacks = [r for r in app.rollbacks if t - r < dt.timedelta(days=7)] + [t]
    app.latch = Latch(good=op["good"], bad=op["bad"], at=t, incident=op["incident"])
    details = {"before": {"production": op["bad"], slot: op["good"]},
               "after": after.model_dump(mode="json"), "health": health, "startedAt": op["startedAt"],
               "observedBefore": observed, "approvalId": op.get("approvalId")}
    if problem:
        app.escalated = problem
        _store_app_state(lease, app)
        lease.record.data["op"] = None
        save_under_lease(ops, lease)
        details["notification"] = notify(
            settings, kind="escalation", title=f"Healer rollback of {site.name} did not verify",
            text=f"{problem}. Healer will not swap again; a human must look.",
            facts={"resource": target.resource_id, "incident": op["incident"]})
        _audit(settings, "escalated", f"swap done but verification failed: {problem}; no further swaps",
               target.resource_id, alert, t, **details)
        step("verified")
        return "escalated"
    _store_app_state(lease, app)
    lease.record.data["op"] = None
    save_under_lease(ops, lease)
    _audit(settings, "acted", f"rolled back: production now runs {op['good']} (was {op['bad']}); latched",
           target.resource_id, alert, t, **details)
    step("verified")
    return "acted"


def _resume(settings: Settings, alert: Alert, target: RollbackTarget, site: SiteId, slot: str, ops: Store,
            lease: Lease, now: Callable[[], dt.datetime], step: Step) -> str | None:
    """Finish an operation a previous (crashed or recycled) worker started. Never sends a second swap blindly.

    Returns the operation's outcome, or None when it was abandoned because the app changed meanwhile."""
    op = dict(lease.record.data["op"])
    phase = op.get("phase")
    log.info("resuming %s operation on %s for incident %s", phase, site.name, op.get("incident"))
    if phase == "swapping" and op.get("token"):
        arm.wait(arm.resume_swap(settings, site, slot, op["token"]))
        op["phase"] = "verifying"
        _save_op(ops, lease, op)
        step("swap-finished")
        phase = "verifying"
    if phase == "verifying":
        return _verify(settings, alert, target, site, slot, ops, lease, op, now, step)
    # phase "intent": the swap may never have been sent, may be running, or may have finished.
    obs = arm.observe(settings, site, slot, target.build_marker)
    if obs.production.build == op["good"]:
        op["phase"] = "verifying"
        _save_op(ops, lease, op)
        return _verify(settings, alert, target, site, slot, ops, lease, op, now, step)
    if obs.production.build == op["bad"] and obs.slot.build == op["good"]:
        return _send_and_finish(settings, alert, target, site, slot, ops, lease, op, now, step)
    else:
        _save_op(ops, lease, None)
        _audit(settings, "skipped", f"abandoned an interrupted swap: the app changed meanwhile (production "
               f"{obs.production.build}, {slot} {obs.slot.build}; intended {op['good']} for {op['bad']})",
               target.resource_id, alert, now(), observed=obs.model_dump(mode="json"))
        return None


def _target_hint(alert: Alert) -> str:
    return alert.custom_properties.get(TARGET_PROPERTY, "")[:600]


# ---------------------------------------------------------------------------------------------- operator

def rearm(settings: Settings, resource_id: str, *, by: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    """Clear an app's latch and escalation so automatic rollback may act again."""
    site = parse_site_id(resource_id)
    target = settings.rollback_targets.get(site.app_id.lower())
    if target is None:
        raise Refused(f"{site.app_id} is not in the rollback allowlist")
    ops = Store(settings, "ops")
    lease = acquire_lease(ops, HEALER, safe_key(target.key), f"rearm:{by}", settings.lease_seconds, now)
    if lease is None:
        raise RetryLater(10, "an operation is running on this app; try again shortly")
    try:
        if lease.record.data.get("op"):
            raise Refused("a swap is in flight on this app; re-arm after it finishes")
        before = {"latch": lease.record.data.get("latch"), "escalated": lease.record.data.get("escalated")}
        lease.record.data.update(latch=None, escalated=None)
        save_under_lease(ops, lease)
    finally:
        release_lease(ops, lease)
    audit.record(settings, healer=HEALER, outcome="recorded", reason=f"re-armed by {by}: {reason}"[:500],
                 resource=target.resource_id, subject="rearm", details={"before": before}, now=now)
    return {"resourceId": target.resource_id, "rearmed": True, "before": before}

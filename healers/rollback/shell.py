"""The rollback healer's imperative shell: dedupe, lease, observe, decide, act, verify, record.

Crash safety: every step that changes the world is preceded by a durable record of intent (the app's ops record,
ETag-guarded under a lease) and followed by a record of its result, so a redelivered message resumes from the
last recorded step — it polls the persisted long-running operation instead of swapping again.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from healers.rollback import arm, changes, evidence
from healers.rollback.attribution import MAX_CHANGES, ConfigChange, dependency_hint
from healers.rollback.core import AppState, decide, remember_rollback, uncounted_since, verify
from healers.rollback.operator import HEALER, Refused, app_state as _app_state, rearm, set_freeze  # noqa: F401
from healers.rollback.signal import Signal
from shared import approvals, audit, gate
from shared.alerts import Alert
from shared.config import RollbackTarget, Settings
from shared.controls import Mode
from shared.policy import PolicyDecision
from shared.resource_ids import SiteId, canonical, parse_site_id
from shared.state import (Conflict, Lease, Record, Store, acquire_lease, release_lease, renew_lease, safe_key,
                          save_under_lease)
from shared.work import RetryLater, busy_delay

log = logging.getLogger("healer.rollback")
QUEUE = "healer-rollback"
ACTION = "rollback.swap"
MAX_ATTEMPTS = 12
TARGET_PROPERTY = "healer.target"
SLOT_PROPERTY = "healer.slot"
FINGERPRINT_SOURCES = ("app-settings", "connection-strings")

Step = Callable[[str], None]
# The core's policy input is held open: kill, policy, dry-run and ask are shared.gate's, after the core. The core
# still sees the kill switch (a killed app neither freezes nor asks about suspects: the gate records it killed).
_UNGATED_POLICY = PolicyDecision(effect="allow", reason="gated by shared.gate")
GATED = ("swap", "killed", "ask")  # core actions that become a gate call: the swap, or a human's decision on it


def _no_step(_: str) -> None:
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------- intake

def work_message(alert: Alert, signal: Signal | None = None) -> dict[str, Any]:
    msg = {"v": 1, "kind": "alert", "alert": alert.model_dump(mode="json"), "attempt": 0}
    if signal is not None and signal.kind != "other":
        msg["signal"] = signal.model_dump(mode="json")
    return msg


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
        site = parse_site_id(canonical(resource))  # one canonical form before any key (slots/production = the app)
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
    seen = store.get(rec.partition, rec.row)  # a repeat delivery costs this one read
    if seen is not None:
        return seen
    try:
        store.insert(rec)
        return None
    except Conflict:
        return store.get(rec.partition, rec.row)


def intake_key(alert: Alert) -> str:
    """What makes two webhook deliveries the same work: the alert and its condition (Fired / Resolved)."""
    return f"{alert.alert_id}:{alert.monitor_condition.lower()}"


def is_decided(settings: Settings, alert: Alert) -> bool:
    """Whether the worker has finished with this delivery's alert (decided, or Resolved recorded)."""
    if not alert.fired:
        return Store(settings, "dedupe").get(HEALER, safe_key(alert.alert_id + ":resolved")) is not None
    return _decided(settings, alert) is not None


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
    """Audited as one aggregated record per alert per interval, with a count (an alert storm is not 5,000 rows)."""
    audit.record_repeat(settings, healer=HEALER, subject=alert.alert_id, resource=target.resource_id,
                        reason=f"duplicate delivery of alert already decided "
                               f"({seen.data.get('outcome')}: {seen.data.get('reason', '')[:200]})",
                        details={"rule": alert.rule, "condition": alert.monitor_condition}, now=t)
    return "duplicate"


# ---------------------------------------------------------------------------------------------- handler

def handle(settings: Settings, message: dict[str, Any], *, owner: str, now: Callable[[], dt.datetime] = utcnow,
           step: Step = _no_step) -> str:
    """Process one work message. Returns the outcome; raises RetryLater to be re-run after a delay."""
    if message.get("kind") == "recheck":
        from healers.rollback import prove
        return prove.recheck(settings, message, owner=owner, now=now)
    alert = Alert.model_validate(message["alert"])
    t = now()
    if not alert.fired:
        if _claim(settings, alert, ":resolved", t) is None:
            _audit(settings, "recorded", "Resolved: recorded, never acted on", target_hint(alert), alert, t)
            return "recorded"
        return "duplicate"
    if gate.config_refusal(settings, healer=HEALER, resource=target_hint(alert), subject=alert.alert_id,
                           what=f"decide on alert {alert.rule[:100]}", now=t) is not None:
        return "refused"  # an invalid configuration acts on nothing (and is not read further)
    try:
        target, slot = resolve_target(settings, alert)
    except Refused as exc:
        if _claim(settings, alert, ":refused", t) is None:
            _audit(settings, "refused", str(exc), target_hint(alert), alert, t)
        return "refused"
    approval_id = message.get("approvalId")
    if not approval_id:
        seen = _claim(settings, alert, "", t)
        if seen is not None and seen.data.get("status") == "decided":
            return _duplicate(settings, alert, target, seen, t)
        resolved = Store(settings, "dedupe").get(HEALER, safe_key(alert.alert_id + ":resolved"))
        if resolved is not None:  # reordered delivery: the incident is over; a late Fired must not act
            reason = f"the alert was already Resolved (recorded {resolved.data.get('at', '?')}) when this Fired " \
                     f"delivery was processed: a late Fired never acts"
            _audit(settings, "skipped", reason, target.resource_id, alert, t)
            _mark_decided(settings, alert, "skipped", reason, t)
            return "skipped"
    ops = Store(settings, "ops")
    lease = acquire_lease(ops, HEALER, safe_key(target.key), owner, settings.lease_seconds, t)
    if lease is None:
        raise RetryLater(busy_delay(int(message.get("attempt", 0))),
                         f"another worker holds the operation lease on {target.resource_id}")
    try:
        # Double-check under the lease: a concurrent delivery of this alert may have decided meanwhile.
        seen = None if approval_id else _decided(settings, alert)
        if seen is not None and not lease.record.data.get("op"):
            return _duplicate(settings, alert, target, seen, t)
        signal = Signal.model_validate(message["signal"]) if isinstance(message.get("signal"), dict) else Signal()
        outcome = Run(settings, alert, target, slot, ops, lease, now, step, signal).decide_and_act(approval_id)
    finally:
        release_lease(ops, lease)
    from shared.monitor_alerts import acknowledge_alert  # optional (HEALER_ALERT_ACK); never raises
    acknowledge_alert(settings, HEALER, alert, target.resource_id, outcome, now())
    return outcome


@dataclass
class Run:
    """One worker's handling of one alert for one leased app: the context every step shares."""
    settings: Settings
    alert: Alert
    target: RollbackTarget
    slot: str
    ops: Store
    lease: Lease
    now: Callable[[], dt.datetime]
    step: Step
    signal: Signal

    @property
    def site(self) -> SiteId:
        return parse_site_id(self.target.resource_id)

    def audit(self, outcome: str, reason: str, **details: Any) -> None:
        _audit(self.settings, outcome, reason, self.target.resource_id, self.alert, self.now(), **details)

    def observe(self):
        return arm.observe(self.settings, self.site, self.slot, self.target.build_marker)

    def save_op(self, op: dict[str, Any] | None) -> None:
        self.lease.record.data["op"] = op
        save_under_lease(self.ops, self.lease)

    def renew(self) -> None:
        renew_lease(self.ops, self.lease, self.settings.lease_seconds, self.now())

    def save_app(self, app: AppState, op: dict[str, Any] | None = None) -> None:
        self.lease.record.data.update(app.model_dump(mode="json"), op=op)
        save_under_lease(self.ops, self.lease)

    # ------------------------------------------------------------------------------------------ decide
    def decide_and_act(self, approval_id: str | None) -> str:
        op = self.lease.record.data.get("op")
        if op:
            resumed = self.resume()
            if op.get("approvalId") and resumed is not None:
                approvals.mark_executed(self.settings, HEALER, op["approvalId"], self.now(), resumed)
            if op.get("incident") == self.alert.alert_id and resumed is not None:
                _mark_decided(self.settings, self.alert, resumed, "resumed an interrupted rollback", self.now())
                return resumed
        refusal = self.check_approval(approval_id) if approval_id else None
        if refusal:
            return refusal
        app, t = _app_state(self.lease), self.now()
        obs = self.observe()
        mode = gate.read_mode(self.settings, HEALER, gate.resource_key(self.target.resource_id))
        if mode.unreadable:  # fail closed now, but do not record a decision: decide again when storage answers
            raise RetryLater(30 + random.random() * 30, mode.reason)
        core_mode = Mode(killed=mode.killed, dry_run=False, reason=mode.reason)  # dry-run is the gate's
        found = self.attribution(obs, t)
        d = decide(fired_at=self.alert.fired_at, slot_name=self.slot, obs=obs, app=app, mode=core_mode,
                   policy=_UNGATED_POLICY,
                   approved=approval_id is not None, max_rollbacks=self.target.max_rollbacks,
                   window=dt.timedelta(minutes=self.target.window_minutes),
                   max_build_age=dt.timedelta(minutes=self.target.max_build_age_minutes), now=t,
                   changes=found.changes, on_config_change=self.target.on_config_change,  # type: ignore[arg-type]
                   dependency=dependency_hint(self.alert.custom_properties, self.signal.dimensions),
                   freeze=self.target.freeze)
        observed = obs.model_dump(mode="json")
        observed["configChanges"] = [c.describe() for c in found.changes[:20]]
        observed["configSourcesUnavailable"] = found.unavailable
        since = min([t for t in (obs.last_swap.at if obs.last_swap else None, app.latch.at if app.latch else None)
                     if t] or [None])
        observed["deploymentsNotCounted"] = uncounted_since(obs, since)
        if d.clear_latch and app.latch:
            self.audit("recorded", f"latch released: a new deployment was seen (production {obs.production.build})",
                       previousLatch=app.latch.model_dump(mode="json"))
            app.latch = None
            self.save_app(app, self.lease.record.data.get("op"))

        def collect_evidence() -> dict[str, Any]:
            return evidence.collect(self.settings, self.site, obs, self.slot, config_changes=observed["configChanges"],
                                    unavailable=found.unavailable, signal=self.signal)
        if d.action in GATED:   # one gate for the swap (a suspect change makes it an ask)
            verdict = gate.check(self.settings, self.proposal(d, approval_id, observed, collect_evidence), t)
            outcome = self.swap(d.good, d.bad, approval_id, observed) if verdict.act else verdict.outcome
        else:
            outcome = {"skip": "skipped", "refuse": "refused", "dry-run": "dry-run", "freeze": "escalated"}[d.action]
            details: dict[str, Any] = {"observed": observed}
            if d.action == "refuse" or d.tell_human:
                details["evidence"] = collect_evidence()
            if d.action == "freeze":
                details["freeze"] = self.freeze(app, d.reason, t)
            if d.tell_human:  # the audit record carries the flag; shared.notify tells the destinations
                details["attention"] = f"Healer cannot roll back {self.site.name}"
            self.audit(outcome, d.reason, **details)
        if approval_id:
            approvals.mark_executed(self.settings, HEALER, approval_id, self.now(), outcome)
        _mark_decided(self.settings, self.alert, outcome, d.reason, self.now())
        return outcome

    def proposal(self, d: Any, approval_id: str | None, observed: dict[str, Any],
                 collect_evidence: Callable[[], dict[str, Any]]) -> gate.Proposal:
        a = self.alert
        plan = (f"swap {self.slot} ({d.good}, last known good) into production (now {d.bad})" if d.action == "ask"
                else d.reason[0].lower() + d.reason[1:] if d.action == "swap" else d.reason.split(", but ")[0][6:])
        return gate.Proposal(
            healer=HEALER, action=ACTION, resource=self.target.resource_id, subject=a.alert_id, plan=plan,
            params={"slot": self.slot}, target_dry_run=self.target.dry_run, approval_id=approval_id, queue=QUEUE,
            ask=d.reason if d.action == "ask" else None, on_parked=self.ask,
            enrich=lambda klass: {"evidence": collect_evidence()} if klass in ("refused", "pending") else {},
            on_approve={"v": 1, "kind": "approved", "alert": a.model_dump(mode="json"), "attempt": 0},
            details={"rule": a.rule, "condition": a.monitor_condition, "firedAt": a.fired_at.isoformat(),
                     "observed": observed})

    def attribution(self, obs, t: dt.datetime) -> changes.Found:
        """Configuration changes since the swap; stores the new fingerprint (hashes only) for next time."""
        marker = self.target.build_marker
        found = changes.collect(self.settings, self.target, self.site,
                                swap_at=obs.last_swap.at if obs.last_swap else None,
                                stored=self.lease.record.data.get("fingerprint"), now=t,
                                ignore={marker.split(":", 1)[1]} if marker.startswith("appSetting:") else set())
        # The fingerprint is re-taken at every observation, so a change it found would be invisible to the next
        # alert: remember those changes (names and times only) while they are after the current swap.
        swap_at = obs.last_swap.at if obs.last_swap else None
        seen = [ConfigChange.model_validate(c) for c in self.lease.record.data.get("fingerprintChanges") or []]
        new = [c for c in found.changes if c.source in FINGERPRINT_SOURCES]
        kept = [c for c in seen if swap_at is not None and c.before > swap_at and c not in new]
        found.changes += kept
        if found.prints or kept != seen or new:
            self.lease.record.data["fingerprint"] = found.prints or self.lease.record.data.get("fingerprint")
            self.lease.record.data["fingerprintChanges"] = [c.model_dump(mode="json")
                                                            for c in (kept + new)[-MAX_CHANGES:]]
            save_under_lease(self.ops, self.lease)
        return found

    def freeze(self, app: AppState, reason: str, t: dt.datetime) -> dict[str, Any]:
        """Freeze instead of rollback: remember it for the app (no swap into production until re-armed) and put a
        `freeze` condition in the app's controls record, where gates and pipelines can see it."""
        app.frozen = app.escalated = reason[:500]
        self.save_app(app, self.lease.record.data.get("op"))
        frozen = {"by": "healer", "incident": self.alert.alert_id, "at": t.isoformat(), "reason": reason[:500]}
        set_freeze(self.settings, self.target.key, frozen)
        return frozen

    def check_approval(self, approval_id: str) -> str | None:
        """None when the approval lets this alert's action run; else the outcome of refusing it (audited)."""
        rec = approvals.get(self.settings, HEALER, approval_id)
        if rec is None or rec.data.get("subject") != self.alert.alert_id:
            self.audit("refused", f"approval {approval_id} is not an approval of this alert")
            return "refused"
        if rec.data.get("action") != ACTION or str(rec.data.get("resource", "")).lower() != self.target.key:
            self.audit("refused", f"approval {approval_id} approved {str(rec.data.get('action'))[:60]} on "
                       f"{str(rec.data.get('resource'))[:300]}, not {ACTION} on {self.target.resource_id}")
            return "refused"
        status = rec.data.get("status")
        if status == "executed":
            self.audit("duplicate", f"approval {approval_id} was already executed ({rec.data.get('outcome')})")
            return "duplicate"
        if status != "approved":
            self.audit("refused", f"approval {approval_id} is {status}, not approved")
            return "refused"
        return None

    def ask(self, pending: dict[str, Any], created: bool) -> dict[str, Any]:
        """The gate parked the action; its "pending" audit record notifies (shared.notify)."""
        return {}

    # ------------------------------------------------------------------------------------------ act
    def swap(self, good: str, bad: str, approval_id: str | None, observed: dict[str, Any]) -> str:
        op = {"incident": self.alert.alert_id, "phase": "intent", "good": good, "bad": bad,
              "startedAt": self.now().isoformat(), "approvalId": approval_id, "token": None, "rule": self.alert.rule}
        self.save_op(op)
        self.step("intent")
        return self.send_and_finish(op, observed)

    def send_and_finish(self, op: dict[str, Any], observed: dict[str, Any] | None = None) -> str:
        try:
            poller, token = arm.start_swap(self.settings, self.site, self.slot)
        except arm.SwapConflict as exc:
            # Another swap is running (ours from before a crash, or a human's). Keep the intent; look again later.
            raise RetryLater(20 + random.random() * 20, f"ARM 409, another swap is in progress: {exc}") from None
        except arm.TransientArmError as exc:
            op["sendAttempts"] = attempt = int(op.get("sendAttempts", 0)) + 1
            self.save_op(op)
            raise RetryLater(min(300, 5 * 2 ** attempt) * (0.5 + random.random() / 2),
                             f"transient ARM error, swap not accepted: {exc}") from None
        op.update(phase="swapping", token=token)
        self.save_op(op)
        self.step("swap-started")
        return self.await_swap(poller, op, observed)

    def await_swap(self, poller: Any, op: dict[str, Any], observed: dict[str, Any] | None = None) -> str:
        """Wait for the swap's operation. A polling hiccup comes back later (the token is saved); a failed
        operation is escalated — never retried, never left wedging the app."""
        try:
            arm.wait(poller, heartbeat=self.renew)
        except arm.TransientArmError as exc:
            op["pollAttempts"] = attempt = int(op.get("pollAttempts", 0)) + 1
            self.save_op(op)
            raise RetryLater(busy_delay(attempt), str(exc)) from None
        except arm.SwapFailed as exc:
            return self.swap_failed(op, str(exc))
        return self.swap_finished(op, observed)

    def swap_failed(self, op: dict[str, Any], reason: str) -> str:
        after = self.observe()
        if after.production.build == op["good"]:  # ARM reported failure, yet the swap took effect: verify it
            return self.swap_finished(op)
        app = remember_rollback(_app_state(self.lease), good=op["good"], bad=op["bad"], at=self.now(),
                                incident=op["incident"], latch=False, reason=f"alert {self.alert.rule[:120]} "
                                f"({op['incident']}): Healer tried to roll {op['bad']} back; the swap failed")
        app.escalated = f"the swap operation failed: {reason}"
        self.save_app(app, op=None)
        details = {"before": {"production": op["bad"], self.slot: op["good"]}, "after": after.model_dump(mode="json"),
                   "startedAt": op["startedAt"], "approvalId": op.get("approvalId"),
                   "evidence": self.evidence(after)}
        self.audit("escalated", f"{app.escalated}; production still runs {after.production.build}; no further "
                   f"swaps until re-armed: a human must look", **details)
        self.step("verified")
        return "escalated"

    def swap_finished(self, op: dict[str, Any], observed: dict[str, Any] | None = None) -> str:
        op["phase"] = "verifying"
        self.save_op(op)
        self.step("swap-finished")
        return self.verify(op, observed)

    def verify(self, op: dict[str, Any], observed: dict[str, Any] | None = None) -> str:
        after = self.observe()
        try:  # the fingerprint after Healer's own swap: the next incident compares against this
            self.lease.record.data["fingerprint"] = changes.production_prints(self.settings, self.site, self.now())
        except Exception as exc:
            log.warning("could not fingerprint %s after the swap: %s", self.site.name, type(exc).__name__)
        health = arm.check_health(self.target.health_url)
        problem = verify(obs=after, good=op["good"], health=health)
        t = self.now()
        app = remember_rollback(_app_state(self.lease), good=op["good"], bad=op["bad"], at=t,
                                incident=op["incident"], reason=f"alert {self.alert.rule[:120]} "
                                f"({op['incident']}): {op['bad']} rolled back to {op['good']}")
        app.escalated = problem
        proving = None if problem else self.start_proof(op, after, observed)
        self.save_app(app, op=None)
        details = {"before": {"production": op["bad"], self.slot: op["good"]},
                   "after": after.model_dump(mode="json"), "health": health, "startedAt": op["startedAt"],
                   "observedBefore": observed, "approvalId": op.get("approvalId")}
        if problem:
            details["evidence"] = self.evidence(after, observed)
            self.audit("escalated", f"swap done but verification failed: {problem}; no further swaps: a human must "
                       f"look", **details)
            outcome = "escalated"
        else:
            if proving:
                details["recovery"] = proving
            self.audit("acted", f"rolled back: production now runs {op['good']} (was {op['bad']}); latched"
                       + ("; proving the recovery with queued re-checks" if proving else ""), **details)
            outcome = "acted"
        self.step("verified")
        return outcome

    def evidence(self, obs, observed: dict[str, Any] | None = None) -> dict[str, Any]:
        return evidence.collect(self.settings, self.site, obs, self.slot,
                                config_changes=(observed or {}).get("configChanges") or [],
                                unavailable=(observed or {}).get("configSourcesUnavailable") or [],
                                signal=self.signal)

    def start_proof(self, op: dict[str, Any], after, observed: dict[str, Any] | None) -> str | None:
        """Queue the recovery re-checks when the app has `recovery` options; the proof is saved with the app."""
        from healers.rollback import prove
        opts = prove.options(self.target)
        if opts is None:
            return None
        target_ids = [t for t in self.alert.target_ids if t]
        proof = prove.start(self.settings, self.target, opts, op=op, signal=self.signal,
                            signal_resource=target_ids[0] if target_ids else None, fired_at=self.alert.fired_at,
                            now=self.now(), evidence=self.evidence(after, observed))
        self.lease.record.data["proof"] = proof
        return f"re-checks queued until {proof['deadline']}"

    def resume(self) -> str | None:
        """Finish an operation a previous (crashed or recycled) worker started. Never sends a second swap blindly.

        Returns the operation's outcome, or None when it was abandoned because the app changed meanwhile."""
        op = dict(self.lease.record.data["op"])
        phase = op.get("phase")
        log.info("resuming %s operation on %s for incident %s", phase, self.site.name, op.get("incident"))
        if phase == "swapping" and op.get("token"):
            return self.await_swap(arm.resume_swap(self.settings, self.site, self.slot, op["token"]), op)
        if phase == "verifying":
            return self.verify(op)
        # phase "intent": the swap may never have been sent, may be running, or may have finished.
        obs = self.observe()
        if obs.production.build == op["good"]:
            return self.swap_finished(op)
        if obs.production.build == op["bad"] and obs.slot.build == op["good"]:
            return self.send_and_finish(op)
        self.save_op(None)
        self.audit("skipped", f"abandoned an interrupted swap: the app changed meanwhile (production "
                   f"{obs.production.build}, {self.slot} {obs.slot.build}; intended {op['good']} for {op['bad']})",
                   observed=obs.model_dump(mode="json"))
        return None


def target_hint(alert: Alert) -> str:
    return alert.custom_properties.get(TARGET_PROPERTY, "")[:600]

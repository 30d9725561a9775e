"""The gate: one order, one place, for every side effect of every healer.

    configuration valid? → kill switch → policy deny → dry-run → ask → act

A healer's pure core decides that an action is warranted; the shell then hands the gate a `Proposal` (healer,
action name, resource, subject, the plan in words, proposed parameters, the work message to re-run on approval)
and acts only when the verdict's class is "act". Every other verdict is audited here — one record, written through
`shared.audit.record` — so every healer's gate outcome reads the same:

| class      | audit outcome | when                                                                            |
|------------|---------------|---------------------------------------------------------------------------------|
| `refused`  | `refused`     | the configuration is invalid (nothing acts), or the policy (or its hook) denies |
| `killed`   | `skipped`     | a kill switch (setting, global / healer / resource control) is engaged          |
| `dry-run`  | `dry-run`     | dry-run is on: "would …", or "would ask for approval to …" (never parks)        |
| `pending`  | `pending`     | the policy says ask and no approval covers it: an approval is parked            |
| `act`      | (the healer's own `acted` / `failed` record after acting)                       |

Dry-run wins over ask: a shadow deployment never pages a human. An approval (checked to cover this action on this
resource) turns `ask` into `act` but never beats a kill switch, a deny or dry-run. A pending record's details carry
`approval` = {id, healer, action, resource, subject, expiresAt} (notifications are driven by audit records).
Unreadable controls raise `RetryLater` without recording a decision (fail closed now, decide again later).
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from shared import approvals, audit, config_check, policy_source
from shared.config import Settings
from shared.controls import GLOBAL, PARTITION, Mode, effective_mode
from shared.policy import PolicyDecision, evaluate, stricter
from shared.resource_ids import app_scope
from shared.state import Store, safe_key
from shared.work import RetryLater

log = logging.getLogger("healer.gate")

ACTIONS: dict[str, str] = {
    "rollback.swap": "swap the last-known-good staging slot back into production",
    "downshift.switch": "write a lower model (one rung down the ladder) for an app or tenant",
    "downshift.restore": "write the model back up the ladder (or remove Healer's own value)",
    "downshift.block": "set the last rung's block flag for an over-budget tenant",
    "downshift.unblock": "clear Healer's block flag (period reset or an operator's lift)",
    "errors.draft": "push a triage branch and open a draft pull request for an error group",
    "errors.update": "commit a new triage to an open draft pull request and comment on it",
    "replication.publish": "publish a replication outcome event to Healer's Event Grid topic",
}
CLASSES = ("refused", "killed", "dry-run", "pending", "act")
GATED_OUTCOMES = frozenset({"refused", "skipped", "dry-run", "pending"})  # audit outcomes the gate itself wrote
_OUTCOME = {"refused": "refused", "killed": "skipped", "dry-run": "dry-run", "pending": "pending", "act": "acted"}


@dataclass
class Proposal:
    healer: str
    action: str
    resource: str                       # as the healer names it (audited); canonicalised for policy and controls
    subject: str                        # what the audit record is about (alert id, tenant, fingerprint, wait)
    plan: str                           # "swap staging (v41) into production (v42)": read after "would"
    params: dict[str, Any] = field(default_factory=dict)      # proposed parameters (policy bounds, hooks)
    details: dict[str, Any] = field(default_factory=dict)     # the healer's own audit details
    scope: str | None = None            # control scope when it is not the resource (e.g. registry:<name>)
    target_dry_run: bool = False        # the healer's per-target dryRun option
    approval_id: str | None = None      # an approval the work message carries
    approval_subject: str | None = None  # the approval's identity when it differs from `subject`
    on_approve: dict[str, Any] | None = None  # the work message re-run when a human approves
    queue: str | None = None            # where that message goes
    not_done: str = ""                  # "<event> not published": the words for an action not carried out
    ask: str | None = None              # the healer's own reason to ask a human, whatever the policy allows
    approved: bool = False              # an operator's own request (e.g. a lift): answers an ask like an approval
    on_parked: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None  # the shell's courtesy on a new ask
    enrich: Callable[[str], dict[str, Any]] | None = None  # extra audit details for a verdict class (evidence)


@dataclass
class Verdict:
    klass: str
    reason: str
    details: dict[str, Any]
    approval: dict[str, Any] | None = None
    record: dict[str, Any] | None = None

    @property
    def act(self) -> bool:
        return self.klass == "act"

    @property
    def outcome(self) -> str:
        return _OUTCOME[self.klass]


def resource_key(resource: str) -> str:
    """The canonical key of a resource: an ARM id's app scope, else the trimmed, lower-cased name."""
    try:
        return app_scope(resource)
    except ValueError:
        return resource.strip().lower()


def read_mode(settings: Settings, healer: str, scope: str | None, target_dry_run: bool = False) -> Mode:
    """Kill switch / dry-run from the settings and the controls: global, the healer's, and the resource's."""
    keys = [GLOBAL, safe_key(healer)] + ([safe_key(scope)] if scope else [])
    try:
        found = Store(settings, "controls").get_many(PARTITION, keys)   # one round trip
        rows = [found.get(k) for k in keys] + [None] * (3 - len(keys))
    except Exception as exc:  # any storage failure → fail closed
        log.warning("controls unreadable: %s", type(exc).__name__)
        return effective_mode(False, False, None, None, read_error=type(exc).__name__)
    g, h, a = (r.data if r else {} for r in rows)
    local = {"kill": bool(h.get("kill") or a.get("kill")), "dryRun": bool(h.get("dryRun") or a.get("dryRun"))}
    return effective_mode(settings.kill_switch, settings.dry_run, g or None, local, target_dry_run)


def config_refusal(settings: Settings, *, healer: str, resource: str = "", subject: str = "",
                   what: str = "act", now: dt.datetime | None = None) -> Verdict | None:
    """The gate's first step on its own, for entry points that must not even read a broken configuration:
    None when the configuration is valid; else the refusal (audited, and the configuration error reported)."""
    found = config_check.problems(settings)
    if not found:
        return None
    now = now or dt.datetime.now(dt.UTC)
    try:
        config_check.report(settings, found, now)
    except Exception as exc:
        log.warning("could not record the configuration error: %s", type(exc).__name__)
    reason = f"configuration invalid, Healer acts on nothing: {config_check.summary(found)}; would {what}"
    details = {"configProblems": [p.as_dict() for p in found]}
    entry = audit.record(settings, healer=healer, outcome="refused", reason=reason, resource=resource,
                         subject=subject, details=details, now=now)
    return Verdict("refused", reason, details, record=entry)


def check(settings: Settings, p: Proposal, now: dt.datetime | None = None) -> Verdict:
    """Pass one proposed side effect through the gate. Audits every verdict but `act`."""
    now = now or dt.datetime.now(dt.UTC)
    if p.action not in ACTIONS:
        raise ValueError(f"unknown action {p.action!r}: add it to shared.gate.ACTIONS")
    refusal = config_refusal(settings, healer=p.healer, resource=p.resource, subject=p.subject, what=p.plan,
                             now=now)
    if refusal is not None:
        _executed(settings, p, now, "refused")
        return refusal
    key = resource_key(p.resource)
    mode = read_mode(settings, p.healer, resource_key(p.scope) if p.scope else key, p.target_dry_run)
    if mode.unreadable:
        raise RetryLater(30 + random.random() * 30, mode.reason)
    decision, source = _policy(settings, p, key, now)
    why_ask = decision.reason
    if p.ask and decision.effect == "allow":   # the healer asks a human itself (e.g. a suspect change): an ask
        decision = decision.model_copy(update={"effect": "ask", "reason": f"{decision.reason}; {p.ask}"})
        why_ask = p.ask
    details = {**p.details, "action": p.action, "params": p.params, "mode": mode.model_dump(),
               "policy": decision.model_dump(mode="json"), "policySource": source}
    if source.get("source") == "last-known-good":
        details["policyNote"] = (f"decided with the last-known-good policy confirmed {source['lkgConfirmedAt']} "
                                 f"({source['why']})")
    not_done = p.not_done or f"{p.action} not carried out"
    approved = p.approved
    if p.approval_id:
        why_not = approvals.covers(settings, p.healer, p.approval_id, p.action, p.resource, now)
        if why_not:
            return _record(settings, p, now, "refused", f"{why_not}; would {p.plan}", details)
        approved = True
        details["approvalId"] = p.approval_id
    if mode.killed:
        return _record(settings, p, now, "killed", f"{mode.reason}: {not_done}; would {p.plan}", details)
    if decision.effect == "deny":
        return _record(settings, p, now, "refused", f"policy denies {p.action}: {decision.reason}; would {p.plan}",
                       details)
    if mode.dry_run:
        if decision.effect == "ask" and not approved:
            return _record(settings, p, now, "dry-run", f"{mode.reason}: would ask for approval to {p.plan} "
                           f"({why_ask})", details)
        return _record(settings, p, now, "dry-run", f"{mode.reason}: would {p.plan}", details)
    if decision.effect == "ask" and not approved:
        return _ask(settings, p, now, decision, details,
                    f"{p.ask}; approval needed to {p.plan}" if why_ask is p.ask else
                    f"approval needed to {p.plan} ({decision.reason})")
    return Verdict("act", p.plan, details)


def _policy(settings: Settings, p: Proposal, key: str, now: dt.datetime) -> tuple[PolicyDecision, dict[str, Any]]:
    policy, why, source = policy_source.current(settings, now)
    decision = evaluate(policy, p.action, key, why, now=now, params=p.params)
    if decision.hook is not None and decision.effect != "deny":
        effect, reason = policy_source.call_hook(decision.hook, {
            "action": p.action, "resource": key, "parameters": p.params, "healer": p.healer,
            "subject": p.subject[:300], "effect": decision.effect})
        decision = decision.model_copy(update={"effect": stricter(decision.effect, effect),
                                               "reason": f"{decision.reason}; {reason}"})
    return decision, source


def _ask(settings: Settings, p: Proposal, now: dt.datetime, decision: PolicyDecision,
         details: dict[str, Any], reason: str) -> Verdict:
    if p.on_approve is None or p.queue is None:
        raise ValueError(f"{p.action} can be asked for but the healer gave no message to re-run on approval")
    pending, created = approvals.park(
        settings, healer=p.healer, subject=p.approval_subject or p.subject, action=p.action, resource=p.resource,
        reason=reason, message=p.on_approve, queue_name=p.queue, now=now,
        ttl=dt.timedelta(minutes=decision.approval_ttl_minutes),
        approvers=decision.approvers.model_dump() if decision.approvers else None)
    if pending.get("status") == "rejected":
        return _record(settings, p, now, "refused", f"a human rejected this ({pending.get('decidedBy', '?')}): "
                       f"{p.plan}", {**details, "approvalId": pending["id"]})
    details = {**details, "approvalId": pending["id"], "approval": approvals.summary(pending)}
    if p.on_parked is not None:
        try:
            details.update(p.on_parked(pending, created))
        except Exception as exc:  # a courtesy must never lose the pending record
            log.warning("after-park hook failed: %s", type(exc).__name__)
    return _record(settings, p, now, "pending", reason, details, pending)


def _record(settings: Settings, p: Proposal, now: dt.datetime, klass: str, reason: str, details: dict[str, Any],
            approval: dict[str, Any] | None = None) -> Verdict:
    if p.enrich is not None:
        details = {**details, **p.enrich(klass)}
    entry = audit.record(settings, healer=p.healer, outcome=_OUTCOME[klass], reason=reason, resource=p.resource,
                         subject=p.subject, details=details, now=now)
    _executed(settings, p, now, _OUTCOME[klass])
    return Verdict(klass, reason, details, approval=approval, record=entry)


def _executed(settings: Settings, p: Proposal, now: dt.datetime, outcome: str) -> None:
    if p.approval_id:
        approvals.mark_executed(settings, p.healer, p.approval_id, now, outcome)

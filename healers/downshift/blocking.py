"""The shell of the last rung (`healers.downshift.block` decides): read the block flag, gate, write, read back, record.

Runs inside an `shell.Evaluation` of one (app, tenant), under its lease, after the model step: the state saved by
that step is the one the block decision starts from, and the block fields are saved only after the flag was
written. Gated on the healer's one gating path (`Evaluation.gate`) as `downshift.block` / `downshift.unblock`; a
block that no policy rule names explicitly asks a human (`block.effect`). An operator's lift is itself a human
decision: it is not asked again, but the kill switch, a deny and dry-run still apply.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from healers.downshift import block as block_mod
from healers.downshift.actuators import BlockFlag, WriteConflict, WritePinned, _truthy
from healers.downshift.core import HEALER, DownshiftState, SpendObservation
from healers.downshift.periods import period_at
from shared import approvals, policy_source
from shared.policy import evaluate

if TYPE_CHECKING:
    from healers.downshift.shell import Evaluation
    from shared.state import Record

BLOCK_ACTIONS = frozenset(block_mod.ACTIONS.values())


PENDING = "blockPending"
BLOCK_FIELDS = ("blocked", "blocked_period", "blocked_budget", "blocked_since", "block_waived")


def settle(ev: Evaluation, record: Record, state: DownshiftState) -> DownshiftState:
    """Resolve a block-flag write a stopped evaluation left behind: adopt its block fields when the flag shows it
    landed (set by Healer / gone), drop it otherwise. Audited either way."""
    from healers.downshift.shell import _audit
    pending = record.data.get(PENDING) or {}
    to = pending.get("to")
    try:
        intended = DownshiftState.from_dict(pending["state"])
    except (KeyError, TypeError, ValueError):
        intended, to = None, None
    current = BlockFlag(ev.ctx.actuator(ev.app)).read(ev.tenant)
    landed = intended is not None and (
        (to == "block" and _truthy(current.value) and current.written_by == HEALER)
        or (to == "unblock" and current.value is None))
    new = dataclasses.replace(state, **{f: getattr(intended, f) for f in BLOCK_FIELDS}) if landed else state
    ev._save(record, new, **{PENDING: None})
    _audit(ev.ctx, ev.app, ev.tenant, "recorded", f"recovered an interrupted {to or 'unreadable'} of the block flag: "
           f"{'it had landed; recorded now' if landed else 'it never landed'}",
           current={"value": current.value, "writtenBy": current.written_by}, recovery="block flag")
    return new


def applies(ev: Evaluation, state: DownshiftState, lift: bool) -> bool:
    return bool(lift or state.blocked or ev.app.policy(ev.tenant).block)


def step(ev: Evaluation, record: Record, spend: SpendObservation | None, *, lift: bool = False,
         approval_id: str | None = None, approved_action: str | None = None, by: str = "") -> str | None:
    """Block, lift or leave the tenant's block flag; returns the outcome, or None when there was nothing to do."""
    from healers.downshift.shell import HEALER, _audit
    ctx, app, tenant = ev.ctx, ev.app, ev.tenant
    state = (DownshiftState.from_dict(record.data["state"]) if record.data.get("state")
             else DownshiftState(app=app.resource_id, tenant=tenant))
    if record.data.get(PENDING):
        state = settle(ev, record, state)
    if not applies(ev, state, lift):
        return None
    policy = app.policy(tenant)
    if spend is not None and spend.budget is None:
        spend = dataclasses.replace(spend, budget=app.budget(tenant))
    t = ctx.now()
    decision, after = block_mod.decide_block(spend, state, policy, t, lift=lift)
    if not decision.writes:
        if after != state:
            ev._save(record, after)
        if lift:
            _audit(ctx, app, tenant, "recorded", decision.reason, block=decision.to_dict(), by=by)
        return None
    action = decision.policy_action
    assert action is not None
    flag = BlockFlag(ctx.actuator(app))
    current = flag.read(tenant)
    # A block no rule names itself asks a human: the gate is told so (it evaluates the same policy itself).
    doc, why, _ = policy_source.current(ctx.settings, ctx.now())
    verdict = evaluate(doc, action, app.resource_id, why, now=ctx.now())
    own_ask = None
    if action == block_mod.ACTIONS["block"] and block_mod.effect(
            verdict.effect, block_mod.names_block(doc.rules if doc else (), app.resource_id)) != verdict.effect:
        own_ask = "no rule names downshift.block itself, so it asks a human (default ask)"
    details: dict[str, Any] = {"block": decision.to_dict(), "action": action,
                               "current": {"value": current.value, "writtenBy": current.written_by,
                                           "pinned": current.pinned}}
    if by:
        details["by"] = by
    approved_id = None
    if approval_id and approved_action == action:
        rec = approvals.get(ctx.settings, HEALER, approval_id)
        if rec is None or rec.data.get("status") != "approved":
            _audit(ctx, app, tenant, "skipped", f"approval {approval_id} is not approved: {decision.reason}",
                   approvalId=approval_id, **details)
            return "skipped"
        approved_id = details["approvalId"] = approval_id
    period = period_at(t, policy.timezone, policy.period).key

    def parked(pending: dict[str, Any], created: bool) -> dict[str, Any]:
        """The gate parked the action; its "pending" audit record notifies (shared.notify)."""
        return {}

    stopped = ev.gate(action, decision.reason, details, lambda: None, approval_id=approved_id,
                      approval_subject=f"{app.key}|{tenant}|{decision.action}|{period}",
                      on_approve={"v": 1, "kind": "approved", "app": app.key, "tenant": tenant, "action": action,
                                  "to": decision.action, "attempt": 0},
                      on_parked=parked, ask=own_ask, approved=lift)
    if stopped:
        return stopped
    # Intent first: a crash between the flag write and the state save must not leave a flag Healer does not know
    # it set (it would never be lifted at the period reset). The next evaluation settles it (`settle`).
    ev._save(record, state, **{PENDING: {"to": decision.action, "state": after.to_dict()}})
    try:
        result = flag.write(tenant, decision.action == "block", current, decision.reason, ctx.now())
    except (WriteConflict, WritePinned) as exc:
        ev._save(record, state, **{PENDING: None})
        _audit(ctx, app, tenant, "skipped", f"block flag not written ({exc}): would {decision.reason}", **details)
        if approved_id:
            approvals.mark_executed(ctx.settings, HEALER, approved_id, ctx.now(), "skipped")
        return "skipped"
    except Exception as exc:
        _audit(ctx, app, tenant, "failed", f"block flag write failed ({type(exc).__name__}): would "
               f"{decision.reason}; the next evaluation reads it again", **details)
        raise
    ev._save(record, after, **{PENDING: None})
    details.update(write=result.details, readBack={"value": result.value, "confirmed": result.confirmed})
    if approved_id and not lift:
        approvals.mark_executed(ctx.settings, HEALER, approved_id, ctx.now(), "acted")
    note = "" if result.confirmed else f"; read back {result.value!r}: checked again on the next evaluation"
    _audit(ctx, app, tenant, "acted", f"{decision.reason}{note}", **details)
    return "acted"

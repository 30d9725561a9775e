"""Human approval for actions the policy marks "ask".

A pending approval holds the work message to run once approved. Approving re-enqueues that message with the
approval id; the healer then re-checks live state before acting (an approval is permission, not a command).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

from shared.config import Settings
from shared.state import Conflict, Record, Store

Status = Literal["pending", "approved", "rejected", "expired", "executed"]
PENDING_TTL = dt.timedelta(hours=4)


class ApprovalError(ValueError):
    pass


def approval_id(healer: str, subject: str, action: str) -> str:
    return hashlib.sha256(f"{healer}|{subject}|{action}".encode()).hexdigest()[:24]


def park(settings: Settings, *, healer: str, subject: str, action: str, resource: str, reason: str,
         message: dict[str, Any], queue_name: str, now: dt.datetime) -> tuple[dict[str, Any], bool]:
    """Create the pending approval (idempotent). Returns (approval, created_now)."""
    store = Store(settings, "approvals")
    aid = approval_id(healer, subject, action)
    data = {"id": aid, "healer": healer, "subject": subject, "action": action, "resource": resource,
            "reason": reason[:1000], "status": "pending", "requestedAt": now.isoformat(),
            "expiresAt": (now + PENDING_TTL).isoformat(), "message": message, "queue": queue_name}
    try:
        store.insert(Record(healer, aid, data, columns={"status": "pending"}))
        return data, True
    except Conflict:
        existing = store.get(healer, aid)
        return (existing.data if existing else data), False


def summary(approval: dict[str, Any]) -> dict[str, Any]:
    """The part of an approval an audit record carries (`details.approval`), e.g. for the notification's links."""
    return {k: approval.get(k) for k in ("id", "healer", "action", "resource", "subject", "expiresAt")}


def get(settings: Settings, healer: str, aid: str) -> Record | None:
    return Store(settings, "approvals").get(healer, aid)


def list_pending(settings: Settings, healer: str, now: dt.datetime | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Pending approvals that have not expired (an expired one can no longer be approved)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return [r.data for r in Store(settings, "approvals").query(healer, limit=limit, filters={"status": "pending"})
            if dt.datetime.fromisoformat(r.data["expiresAt"]) >= now]


def decide(settings: Settings, *, healer: str, aid: str, approve: bool, by: str, note: str,
           now: dt.datetime) -> dict[str, Any]:
    """Approve or reject a pending approval (ETag-guarded: one human wins). Returns the updated approval."""
    store = Store(settings, "approvals")
    rec = store.get(healer, aid)
    if rec is None:
        raise ApprovalError(f"no approval {aid} for {healer}")
    if rec.data["status"] != "pending":
        raise ApprovalError(f"approval {aid} is already {rec.data['status']}")
    if dt.datetime.fromisoformat(rec.data["expiresAt"]) < now:
        rec.data["status"] = "expired"
        rec.columns["status"] = "expired"
        store.replace(rec)
        raise ApprovalError(f"approval {aid} expired at {rec.data['expiresAt']}")
    status: Status = "approved" if approve else "rejected"
    rec.data.update({"status": status, "decidedBy": by[:200], "decidedAt": now.isoformat(), "note": note[:1000]})
    rec.columns["status"] = status
    try:
        store.replace(rec)
    except Conflict as exc:
        raise ApprovalError(f"approval {aid} changed while deciding; read it again") from exc
    return rec.data


def reopen(settings: Settings, healer: str, aid: str) -> bool:
    """Undo an approval whose work could not be queued, so a human can approve it again. False if it moved on."""
    store = Store(settings, "approvals")
    rec = store.get(healer, aid)
    if rec is None or rec.data["status"] != "approved":
        return False
    for k in ("decidedBy", "decidedAt", "note"):
        rec.data.pop(k, None)
    rec.data["status"] = rec.columns["status"] = "pending"
    try:
        store.replace(rec)
    except Conflict:
        return False
    return True


def mark_executed(settings: Settings, healer: str, aid: str, now: dt.datetime, outcome: str) -> None:
    store = Store(settings, "approvals")
    rec = store.get(healer, aid)
    if rec is None or rec.data["status"] != "approved":
        return
    rec.data.update({"status": "executed", "executedAt": now.isoformat(), "outcome": outcome[:300]})
    rec.columns["status"] = "executed"
    try:
        store.replace(rec)
    except Conflict:
        pass

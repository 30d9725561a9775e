"""Human approval for actions the policy marks "ask".

A pending approval holds the work message to run once approved. Approving re-enqueues that message with the
approval id; the healer then re-checks live state before acting (an approval is permission, not a command).

Expiry is per policy rule (`approvalTtlMinutes`, default 4 h). An approval found expired — when listed, when a
human decides it, or by the housekeeping sweep — is marked `expired` once (ETag-guarded) and audited with outcome
`expired`. In Entra mode the approver is the token's identity and the rule's `approvers` (app roles or group
object ids) are enforced; in function-key mode whoever holds the operator key can approve.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any, Literal
from collections.abc import Iterable

from shared.config import Settings
from shared.state import Conflict, Record, Store

log = logging.getLogger("healer.approvals")
Status = Literal["pending", "approved", "rejected", "expired", "executed"]
PENDING_TTL = dt.timedelta(hours=4)
HEALERS = ("rollback", "downshift", "replication", "errors")


class ApprovalError(ValueError):
    def __init__(self, reason: str, status: int = 409):
        super().__init__(reason)
        self.status = status


def approval_id(healer: str, subject: str, action: str) -> str:
    return hashlib.sha256(f"{healer}|{subject}|{action}".encode()).hexdigest()[:24]


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The approval as audit records and notifications carry it (the contract with the notifier)."""
    return {k: data.get(k) for k in ("id", "healer", "action", "resource", "subject", "expiresAt")}


def park(settings: Settings, *, healer: str, subject: str, action: str, resource: str, reason: str,
         message: dict[str, Any], queue_name: str, now: dt.datetime, ttl: dt.timedelta = PENDING_TTL,
         approvers: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """Create the pending approval (idempotent). Returns (approval, created_now). An expired one is replaced."""
    store = Store(settings, "approvals")
    aid = approval_id(healer, subject, action)
    data = {"id": aid, "healer": healer, "subject": subject, "action": action, "resource": resource,
            "reason": reason[:1000], "status": "pending", "requestedAt": now.isoformat(),
            "expiresAt": (now + ttl).isoformat(), "message": message, "queue": queue_name,
            "approvers": approvers or {}}
    try:
        store.insert(Record(healer, aid, data, columns={"status": "pending"}))
        return data, True
    except Conflict:
        existing = store.get(healer, aid)
    if existing is None:
        return data, False
    if existing.data.get("status") == "pending" and _expired(existing.data, now):
        expire(settings, existing, now)
        existing = store.get(healer, aid)
    if existing is not None and existing.data.get("status") == "expired":
        existing.data, existing.columns["status"] = data, "pending"
        try:
            store.replace(existing)
            return data, True
        except Conflict:
            again = store.get(healer, aid)
            return (again.data if again else data), False
    return existing.data, False


def _expired(data: dict[str, Any], now: dt.datetime) -> bool:
    try:
        return dt.datetime.fromisoformat(str(data["expiresAt"])) < now
    except (KeyError, ValueError):
        return True


def expire(settings: Settings, rec: Record, now: dt.datetime) -> bool:
    """Mark a pending approval past its expiry `expired` and audit it, once. True when this call did it."""
    from shared import audit
    if rec.data.get("status") != "pending" or not _expired(rec.data, now):
        return False
    rec.data.update(status="expired", expiredAt=now.isoformat())
    rec.columns["status"] = "expired"
    try:
        Store(settings, "approvals").replace(rec)
    except Conflict:
        return False
    audit.record(settings, healer=rec.data.get("healer", rec.partition), outcome="expired",
                 reason=f"approval to {rec.data.get('action')} expired at {rec.data.get('expiresAt')} undecided; "
                        f"nothing was done", resource=str(rec.data.get("resource", "")),
                 subject=str(rec.data.get("subject", "")), details={"approval": summary(rec.data)}, now=now)
    return True


def get(settings: Settings, healer: str, aid: str) -> Record | None:
    return Store(settings, "approvals").get(healer, aid)


def _pending(settings: Settings, healers: Iterable[str], now: dt.datetime, limit: int) -> list[dict[str, Any]]:
    store, out = Store(settings, "approvals"), []
    for healer in healers:
        for r in store.query(healer, limit=limit, filters={"status": "pending"}):
            if _expired(r.data, now):
                try:
                    expire(settings, r, now)
                except Exception:  # listing must not fail because an audit write did
                    log.warning("could not expire approval %s", r.row, exc_info=True)
            else:
                out.append(r.data)
    return out[:limit]


def list_pending(settings: Settings, healer: str | None, now: dt.datetime | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Pending approvals that have not expired, of one healer or (None) of all. Expired ones found are expired."""
    now = now or dt.datetime.now(dt.UTC)
    return _pending(settings, HEALERS if healer is None else (healer,), now, limit)


def sweep(settings: Settings, now: dt.datetime) -> int:
    """Housekeeping: expire every pending approval past its expiry. Returns how many were expired."""
    store, n = Store(settings, "approvals"), 0
    for healer in HEALERS:
        for r in store.query(healer, limit=5000, filters={"status": "pending"}):
            n += bool(expire(settings, r, now))
    return n


def may_decide(data: dict[str, Any], roles: Iterable[str], groups: Iterable[str]) -> str | None:
    """None when an Entra principal with these roles and groups may decide the approval, else why not."""
    wanted = data.get("approvers") or {}
    need_roles, need_groups = set(wanted.get("roles") or []), {g.lower() for g in wanted.get("groups") or []}
    if not need_roles and not need_groups:
        return None
    if need_roles & set(roles) or need_groups & {g.lower() for g in groups}:
        return None
    return ("this approval needs one of the app roles " + ", ".join(sorted(need_roles)) if need_roles else
            "this approval needs membership of one of the configured approver groups") \
        + (" or groups " + ", ".join(sorted(need_groups)) if need_roles and need_groups else "")


def decide(settings: Settings, *, healer: str, aid: str, approve: bool, by: str, note: str,
           now: dt.datetime, roles: Iterable[str] | None = None, groups: Iterable[str] | None = None) -> dict[str, Any]:
    """Approve or reject a pending approval (ETag-guarded: one human wins). Returns the updated approval.

    `roles`/`groups`: the Entra principal's (None in function-key mode: not checked)."""
    store = Store(settings, "approvals")
    rec = store.get(healer, aid)
    if rec is None:
        raise ApprovalError(f"no approval {aid} for {healer}", 404)
    if rec.data["status"] == "pending" and _expired(rec.data, now):
        expire(settings, rec, now)
        raise ApprovalError(f"approval {aid} expired at {rec.data['expiresAt']}", 410)
    if rec.data["status"] != "pending":
        raise ApprovalError(f"approval {aid} is already {rec.data['status']}",
                            410 if rec.data["status"] == "expired" else 409)
    if roles is not None:
        refusal = may_decide(rec.data, roles, groups or ())
        if refusal:
            raise ApprovalError(refusal, 403)
    status: Status = "approved" if approve else "rejected"
    rec.data.update({"status": status, "decidedBy": by[:200], "decidedAt": now.isoformat(), "note": note[:1000]})
    rec.columns["status"] = status
    try:
        store.replace(rec)
    except Conflict as exc:
        raise ApprovalError(f"approval {aid} changed while deciding; read it again") from exc
    return rec.data


def covers(settings: Settings, healer: str, aid: str, action: str, resource: str, now: dt.datetime) -> str | None:
    """None when approval `aid` is approved for exactly this action on this resource, else why not."""
    from shared.resource_ids import canonical
    rec = get(settings, healer, aid)
    if rec is None:
        return f"approval {aid} does not exist"
    d = rec.data
    if d.get("status") != "approved":
        return f"approval {aid} is {d.get('status')}, not approved"

    def key(r: str) -> str:
        try:
            return canonical(r)
        except ValueError:
            return r.strip().lower()
    if d.get("action") != action or key(str(d.get("resource", ""))) != key(resource):
        return (f"approval {aid} approved {str(d.get('action'))[:60]} on {str(d.get('resource'))[:300]}, "
                f"not {action} on {resource[:300]}")
    return None


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

"""A write intent: saved in the (app, tenant) record, under its lease, before Healer writes a model value.

A crash between the write and the state save leaves the intent behind. The next evaluation of that (app, tenant)
reads the value and resolves the intent before deciding (`outcome`, pure):

* `landed`: the value is the intent's target (Healer's own, tagged, value; or, for a removal, the inherited one):
  the transition is completed as if the write had been confirmed (the intent's `after` state is recorded);
* `not_landed`: the value is still the one the write started from: the intent is dropped and the event re-decided;
* `unknown`: a third value: the (app, tenant) is HELD (`unrecorded_write`), as before intents existed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from healers.downshift.core import HEALER, MAX_ID, MAX_REASON, DownshiftState

Outcome = Literal["landed", "not_landed", "unknown"]
KINDS = ("downshift", "restore", "hold", "unhold")   # hold/unhold: a restore guard's own value (shell.guard)


@dataclass(frozen=True)
class PendingWrite:
    action: str                 # one of KINDS
    from_model: str | None      # the value read before the write
    from_own: bool              # ... and whether it was the tenant's own (False: inherited from "*")
    to_model: str | None        # the value the write sets (for a removal: the inherited value it falls back to)
    to_own: bool                # False for a removal of the tenant's own value
    at: dt.datetime
    after: dict[str, Any]       # DownshiftState.to_dict() to record once the write is known to have landed
    created: bool               # the record's `created` flag (Healer created the tenant's own value) after it
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "from": self.from_model, "fromOwn": self.from_own, "to": self.to_model,
                "toOwn": self.to_own, "at": self.at.astimezone(dt.UTC).isoformat(), "after": self.after,
                "created": self.created, "reason": self.reason[:MAX_REASON]}

    @classmethod
    def from_dict(cls, data: Any) -> PendingWrite:
        if not isinstance(data, dict) or data.get("action") not in KINDS:
            raise ValueError("not a pending write")

        def model(name: str) -> str | None:
            v = data.get(name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"pending.{name} must be a string")
            return None if v is None else v[:MAX_ID]
        at = data.get("at")
        if not isinstance(at, str) or len(at) > 64:
            raise ValueError("pending.at must be an ISO 8601 time")
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        DownshiftState.from_dict(data.get("after"))  # validated now, so completing it cannot fail later
        return cls(data["action"], model("from"), bool(data.get("fromOwn")), model("to"), bool(data.get("toOwn")),
                   when if when.tzinfo else when.replace(tzinfo=dt.UTC), dict(data["after"]),
                   bool(data.get("created")), str(data.get("reason") or "")[:MAX_REASON])

    @property
    def state(self) -> DownshiftState:
        return DownshiftState.from_dict(self.after)


def load(raw: Any) -> PendingWrite | None:
    """The record's pending write, if any (ValueError when it is unreadable: the shell then holds)."""
    if raw is None:
        return None
    return PendingWrite.from_dict(raw)


def outcome(p: PendingWrite, value: str | None, written_by: str | None, own: bool) -> Outcome:
    """Did the intended write land, given the value read now (`own`: the tenant's own value, not inherited)?"""
    if value == p.to_model and own == p.to_own and (not p.to_own or written_by == HEALER):
        return "landed"
    if value == p.from_model and own == p.from_own:
        return "not_landed"
    return "unknown"


def held(state: DownshiftState, value: str | None, now: dt.datetime, text: str) -> DownshiftState:
    """A write whose outcome cannot be told from the value: HELD until an operator releases it."""
    return dataclasses.replace(state, status="HELD", since=now, held_reason="unrecorded_write", held_value=value,
                               last_reason=text[:MAX_REASON])

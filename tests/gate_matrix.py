"""The gate matrix every healer is driven through (tests/<healer>/test_gate_matrix.py): kill switch × policy
deny/ask/allow × dry-run × approved, and the one outcome class shared.gate promises for each combination."""
from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass

EFFECTS = ("deny", "ask", "allow")


@dataclass(frozen=True)
class Combo:
    kill: bool
    effect: str
    dry_run: bool
    approved: bool

    @property
    def name(self) -> str:
        return (f"{'kill' if self.kill else 'live'}-{self.effect}-{'dry' if self.dry_run else 'wet'}-"
                f"{'approved' if self.approved else 'fresh'}")


COMBOS = [Combo(k, e, d, a) for k, e, d, a in itertools.product((False, True), EFFECTS, (False, True), (False, True))]


def expected(c: Combo) -> str:
    """kill → deny → dry-run → ask → act; an approval only answers an ask; dry-run never parks an approval."""
    if c.kill:
        return "killed"
    if c.effect == "deny":
        return "refused"
    if c.dry_run:
        return "dry-run"
    if c.effect == "ask" and not c.approved:
        return "pending"
    return "act"


EXPECTED = {c.name: expected(c) for c in COMBOS}


def policy(effect: str) -> str:
    return json.dumps({"version": 1, "default": "deny", "rules": [{"action": "*", "resource": "*", "effect": effect}]})


def combo_env(c: Combo) -> dict[str, str]:
    return {"HEALER_KILL_SWITCH": str(c.kill).lower(), "HEALER_DRY_RUN": str(c.dry_run).lower(),
            "HEALER_POLICY": policy(c.effect)}


ASK_LIVE = {"HEALER_KILL_SWITCH": "false", "HEALER_DRY_RUN": "false", "HEALER_POLICY": policy("ask")}


def fresh_state(monkeypatch) -> None:
    """A new table prefix: no latch, lease, dedupe or approval left by the previous combination."""
    monkeypatch.setenv("HEALER_TABLE_PREFIX", "m" + uuid.uuid4().hex[:12])


def set_env(monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def approve_only_pending(settings, healer: str, now=None) -> dict:
    """The one pending approval of `healer`, approved. Returns the work message that re-runs it."""
    import datetime as dt
    from shared import approvals
    now = now or dt.datetime.now(dt.timezone.utc)
    [pending] = approvals.list_pending(settings, healer, now=now)
    decided = approvals.decide(settings, healer=healer, aid=pending["id"], approve=True, by="matrix", note="",
                               now=now)
    return {**decided["message"], "approvalId": pending["id"]}

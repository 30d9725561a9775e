"""Evidence for the human who gets an escalation or a refusal: bounded and redacted, for the audit record.

What the app was doing: the suspect deployment's log, both slots' state, the configuration changes found, and the
signal's values before and after. Deployment logs are free text (they may echo secrets): redacted with the errors
healer's redaction and cut to a few KiB. The whole object is bounded so an audit record stays small.
"""
from __future__ import annotations

import json
from typing import Any

from healers.rollback import arm
from healers.rollback.core import Observed
from healers.rollback.signal import Signal
from shared.config import Settings
from shared.resource_ids import SiteId

MAX_LOG_CHARS = 4000
MAX_EVIDENCE_CHARS = 24000


def redacted(text: str, limit: int = MAX_LOG_CHARS) -> str:
    from healers.errors.redact import redact
    return redact(text or "")[-limit:]


def slot_state(obs: Observed, slot: str) -> dict[str, Any]:
    def view(v) -> dict[str, Any]:
        return {"exists": v.exists, "state": v.state, "build": v.build,
                "lastDeployedAt": v.last_deployed_at.isoformat() if v.last_deployed_at else None,
                "lastDeployment": v.last_deployment_id, "targetSwapSlot": v.target_swap_slot,
                "notCounted": [f"{n.id} {n.label}" for n in v.not_counted]}
    swap = obs.last_swap
    return {"production": view(obs.production), slot: view(obs.slot),
            "lastSwap": f"{swap.source}->{swap.destination} at {swap.at.isoformat()}" if swap else None}


def signal_before(signal: Signal) -> list[dict[str, Any]]:
    """The values the alert fired with (the 'before' side, as Azure Monitor reported it)."""
    return [{"name": c.metric or c.measure or "rows", "operator": c.operator, "threshold": c.threshold,
             "firedWith": c.value, "dimensions": [f"{n}={v}" for n, v in c.dimensions][:5]} for c in signal.criteria]


def suspect_log(settings: Settings, site: SiteId, obs: Observed, slot: str) -> dict[str, Any] | None:
    """The log of the deployment that brought production's build (it arrived by swap: look in both slots)."""
    for where, view in ((None, obs.production), (slot, obs.slot)):
        if view.last_deployment_id and view.build == obs.production.build:
            return {"deployment": view.last_deployment_id, "slot": where or "production",
                    "log": redacted(arm.deployment_log(settings, site, where, view.last_deployment_id))}
    dep = obs.production.last_deployment_id
    if dep:
        return {"deployment": dep, "slot": "production",
                "log": redacted(arm.deployment_log(settings, site, None, dep))}
    return None


def collect(settings: Settings, site: SiteId, obs: Observed, slot: str, *, config_changes: list[str],
            unavailable: list[str], signal: Signal) -> dict[str, Any]:
    try:
        log = suspect_log(settings, site, obs, slot)
    except Exception as exc:
        log = {"error": type(exc).__name__}
    return bounded_evidence({"deploymentLog": log, "slots": slot_state(obs, slot), "configChanges": config_changes,
                             "configSourcesUnavailable": unavailable, "signalBefore": signal_before(signal)})


def bounded_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """Cut the evidence until its JSON fits MAX_EVIDENCE_CHARS (logs first, then long lists)."""
    text = json.dumps(evidence, default=str)
    if len(text) <= MAX_EVIDENCE_CHARS:
        return evidence
    out = json.loads(text)
    if isinstance(out.get("deploymentLog"), dict):
        out["deploymentLog"]["log"] = str(out["deploymentLog"].get("log", ""))[-1000:]
    for key in ("configChanges", "signal"):
        if isinstance(out.get(key), list):
            out[key] = out[key][:10]
    text = json.dumps(out, default=str)
    return out if len(text) <= MAX_EVIDENCE_CHARS else {"truncated": text[:MAX_EVIDENCE_CHARS - 100]}

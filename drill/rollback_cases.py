"""Drill cases for the rollback healer beyond the storm: blame the right change, count only successful deployments,
prove the recovery. Each case has its own app in the same Healer host; each check names what it expects.

* chat-web  — a prompt change (app setting edited on production by a person after the swap): no swap; Healer asks,
  with the change (what, when, who) and the evidence;
* api-web   — a failed deployment to staging and to production after the swap: the rollback still happens, and the
  failed deployments are audited as not counted;
* pay-web   — the swap "succeeds" but the 5xx metric stays high: escalated at the deadline, with the metric values.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

from drill.timeline import Timeline
from standins.arm_web import ArmWebControl
from standins.stack import build_of, seed_bad_release, site_id
from tests.alert_samples import alert_body

RG = "shop-prod"
CASES = {"chat-web": {}, "api-web": {},
         "pay-web": {"recovery": {"minutes": 0.3, "recheckSeconds": 2, "signal": True}}}


def targets() -> list[dict[str, Any]]:
    return [{"resourceId": site_id(RG, app), "slot": "staging", **extra} for app, extra in CASES.items()]


def _alert(app: str) -> dict:
    target = site_id(RG, app)
    body = alert_body("metric_fired.json", rule=f"{app}-http5xx", fired=dt.datetime.now(dt.timezone.utc)
                      + dt.timedelta(seconds=1), custom_properties={"healer.target": target, "healer.slot": "staging"})
    body["data"]["essentials"]["alertTargetIDs"] = [target.lower()]
    return body


def _records(client, app: str, want: set[str], deadline_s: float) -> list[dict]:
    """Poll the audit for the app until an outcome in `want` shows up, or the deadline."""
    deadline = time.monotonic() + deadline_s
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = client.get("/audit", params={"healer": "rollback", "resource": site_id(RG, app),
                                               "limit": 200}).json()["records"]
        if any(r["outcome"] in want for r in records):
            return records
        time.sleep(0.3)
    return records


def _one(records: list[dict], outcome: str) -> dict | None:
    found = [r for r in records if r["outcome"] == outcome]
    return found[0] if len(found) == 1 else None


def prompt_change(tl: Timeline, ctl: ArmWebControl, arm_url: str, client) -> None:
    app = "chat-web"
    seed_bad_release(ctl, arm_url, RG, app, good="v41", bad="v42")
    ctl.patch_slot(RG, app, "production", app_settings={"SYSTEM_PROMPT_VERSION": "2025-12-02b"},
                   caller="maria@contoso.com")
    tl.add("pipeline", f"{app}: v42 swapped into production; then maria@contoso.com edits SYSTEM_PROMPT_VERSION "
                       f"on production in the portal")
    tl.add("monitor", f"{app}: 5xx alert → HTTP {client.post('/alerts/rollback', json=_alert(app)).status_code}")
    records = _records(client, app, {"pending", "acted"}, 60)
    pending = _one(records, "pending")
    if pending:
        tl.add("healer", f"{app}: pending   {pending['reason'][:200]}")
    ev = (pending or {}).get("details", {}).get("evidence") or {}
    tl.check(pending is not None and "suspect configuration change" in pending["reason"]
             and "maria@contoso.com" in pending["reason"], f"{app}: asks with the suspect change (what, when, who)")
    tl.check(bool(ev.get("deploymentLog")) and ev.get("slots", {}).get("production", {}).get("build") == "v42"
             and any("maria" in c for c in ev.get("configChanges", [])),
             f"{app}: the ask carries evidence (deployment log, both slots, the change)")
    tl.check(build_of(ctl, RG, app) == "v42" and not _one(records, "acted"), f"{app}: no swap")


def failed_deploy(tl: Timeline, ctl: ArmWebControl, arm_url: str, client) -> None:
    app = "api-web"
    seed_bad_release(ctl, arm_url, RG, app, good="v41", bad="v42")
    ctl.deploy(RG, app, "staging", build_id="v43", status=3, id="dep-v43-failed",
               log=["Building v43", "error: tests failed", "Deployment failed."])
    ctl.deploy(RG, app, "production", build_id="v44", status=3, id="dep-v44-failed")
    tl.add("pipeline", f"{app}: v42 swapped into production; then deployments of v43 (staging) and v44 "
                       f"(production) fail")
    tl.add("monitor", f"{app}: 5xx alert → HTTP {client.post('/alerts/rollback', json=_alert(app)).status_code}")
    records = _records(client, app, {"acted", "skipped", "escalated"}, 60)
    acted = _one(records, "acted")
    if acted:
        tl.add("healer", f"{app}: acted     {acted['reason'][:160]}")
    notes = ((acted or {}).get("details", {}).get("observedBefore") or {}).get("deploymentsNotCounted") or []
    tl.check(acted is not None and build_of(ctl, RG, app) == "v41",
             f"{app}: the rollback still happens (production back on v41)")
    tl.check(any("dep-v43-failed" in n and "failed" in n for n in notes)
             and any("dep-v44-failed" in n for n in notes), f"{app}: the failed deployments are audited, not counted")


def metric_stays_high(tl: Timeline, ctl: ArmWebControl, arm_url: str, client) -> None:
    app = "pay-web"
    seed_bad_release(ctl, arm_url, RG, app, good="v41", bad="v42")
    now = dt.datetime.now(dt.timezone.utc)
    ctl.set_metric(site_id(RG, app).lower(), "Http5xx", [(now + dt.timedelta(minutes=m), 40.0) for m in range(-8, 6)])
    tl.add("pipeline", f"{app}: v42 swapped into production; 5xx at 40/min and the cause is not the build")
    tl.add("monitor", f"{app}: 5xx alert → HTTP {client.post('/alerts/rollback', json=_alert(app)).status_code}")
    records = _records(client, app, {"escalated"}, 90)
    for r in sorted(records, key=lambda r: r["at"]):
        tl.add("healer", f"{app}: {r['outcome']:<9} {r['reason'][:170]}", dt.datetime.fromisoformat(r["at"]))
    esc = _one(records, "escalated")
    signal = (((esc or {}).get("details", {}).get("recovery") or {}).get("evidence") or {}).get("signal") or [{}]
    after = [v for _, v in signal[0].get("after", []) if v is not None]
    tl.check(_one(records, "acted") is not None and build_of(ctl, RG, app) == "v41", f"{app}: the swap succeeded")
    tl.check(esc is not None and "Http5xx still total" in esc["reason"],
             f"{app}: not recovered by the deadline → escalated")
    tl.check(bool(after) and all(v == 40.0 for v in after) and bool(signal[0].get("before")),
             f"{app}: the escalation carries the metric values before and after ({len(after)} points at 40/min)")


def run_cases(tl: Timeline, ctl: ArmWebControl, arm_url: str, client) -> None:
    for case in (prompt_change, failed_deploy, metric_stays_high):
        case(tl, ctl, arm_url, client)

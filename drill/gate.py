"""Drill: the safety contract at 3 AM — a typo'd setting, a trailing-slash kill switch, dry-run over ask.

Healer runs in the local Functions host stand-in against the ARM stand-in, with a bad release in production and
an allow policy. Expected: with `HEALER_DRYRUN=true` (a typo) nothing acts, `GET /api/health` answers 503 naming
the setting and one `config-invalid` record is audited; fixed, a kill switch set on the app's id with a trailing
slash holds its rollback; with dry-run and an ask policy Healer records "would ask for approval" and parks nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

from drill.host import start_healer
from drill.timeline import Timeline
from standins.stack import LocalAzure, build_of, seed_bad_release, site_id
from tests.alert_samples import alert_body

RG, APP = "shop-prod", "shop-web"


def _alert(target: str) -> dict:
    return alert_body("metric_fired.json", alert_id=str(uuid.uuid4()), rule="shop-web-http5xx", condition="Fired",
                      fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1),
                      custom_properties={"healer.target": target, "healer.slot": "staging"})


def _decided(client, alert_id: str, deadline_s: float = 60) -> dict | None:
    """The audit record of this alert's decision (polled with a deadline)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        records = client.get("/audit", params={"healer": "rollback", "limit": 200}).json()["records"]
        mine = [r for r in records if r["subject"] == alert_id and r["outcome"] != "duplicate"]
        if mine:
            return mine[0]
        time.sleep(0.2)
    return None


def _scene(stack: LocalAzure, settings: dict[str, str], act) -> None:
    """Start Healer with these settings, run `act(client, healer)`, stop it."""
    healer = start_healer(stack, settings, name="healer-gate")
    try:
        with healer.client() as client:
            act(client, healer)
    finally:
        healer.stop()


def run(stack: LocalAzure) -> Timeline:
    tl = Timeline("gate: typo'd setting, trailing-slash kill switch, dry-run over ask")
    target = site_id(RG, APP)
    ctl = stack.arm_control()
    ctl.reset()
    allow = json.dumps({"version": 1, "default": "deny", "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "allow"}]})
    base = {"HEALER_TABLE_PREFIX": "drillg" + uuid.uuid4().hex[:6], "HEALER_POLICY": allow,
            "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": target, "slot": "staging"}])}
    try:
        seed_bad_release(ctl, stack.arm_url, RG, APP, good="v41", bad="v42")
        tl.add("pipeline", "deployed v42 to staging and swapped it into production (production was v41)")

        def typo(client, healer) -> None:
            health = client.get("/health")
            problems = health.json().get("problems", [])
            tl.add("operator", f"GET /api/health → HTTP {health.status_code}: {problems[0]['why'] if problems else ''}")
            tl.check(health.status_code == 503 and problems and problems[0]["setting"] == "HEALER_DRYRUN",
                     "health answers 503 and names HEALER_DRYRUN (did you mean HEALER_DRY_RUN?)")
            body = _alert(target)
            tl.add("monitor", f"Http5xx fired → HTTP {client.post('/alerts/rollback', json=body).status_code}")
            rec = _decided(client, body["data"]["essentials"]["alertId"].rsplit("/", 1)[-1])
            tl.add("healer", f"{rec['outcome'] if rec else '?'}: {(rec or {}).get('reason', '')[:140]}")
            tl.check(bool(rec) and rec["outcome"] == "refused", "the would-be swap is refused with the configuration error")
            invalid = client.get("/audit", params={"outcome": "config-invalid"}).json()["records"]
            tl.check(len(invalid) == 1, "one config-invalid record (one notification)")
            tl.check(build_of(ctl, RG, APP) == "v42", "nothing acted: production still runs v42")
        _scene(stack, {**base, "HEALER_DRYRUN": "true"}, typo)

        def kill(client, healer) -> None:
            resp = client.post("/controls", json={"scope": target + "/", "kill": True, "by": "oncall",
                                                  "reason": "drill: trailing slash"})
            tl.add("operator", f"POST /api/controls kill on '{target[-24:]}/' (trailing slash) → HTTP {resp.status_code}")
            body = _alert(target)
            client.post("/alerts/rollback", json=body)
            rec = _decided(client, body["data"]["essentials"]["alertId"].rsplit("/", 1)[-1])
            tl.add("healer", f"{rec['outcome'] if rec else '?'}: {(rec or {}).get('reason', '')[:140]}")
            tl.check(bool(rec) and rec["outcome"] == "skipped" and "kill switch" in rec["reason"],
                     "the kill switch set with a trailing slash holds the app's rollback")
            tl.check(build_of(ctl, RG, APP) == "v42", "no swap under the kill switch")
            client.post("/controls", json={"scope": target.upper().replace("SUBSCRIPTIONS", "subscriptions"),
                                           "kill": False, "by": "oncall", "reason": "drill over"})
        _scene(stack, base, kill)

        ask = json.dumps({"version": 1, "default": "deny", "rules": [
            {"action": "rollback.swap", "resource": "*", "effect": "ask"}]})

        def shadow(client, healer) -> None:
            body = _alert(target)
            client.post("/alerts/rollback", json=body)
            rec = _decided(client, body["data"]["essentials"]["alertId"].rsplit("/", 1)[-1])
            tl.add("healer", f"{rec['outcome'] if rec else '?'}: {(rec or {}).get('reason', '')[:140]}")
            tl.check(bool(rec) and rec["outcome"] == "dry-run" and "would ask for approval" in rec["reason"],
                     "dry-run wins over ask: 'would ask for approval to swap …'")
            pending = client.get("/approvals").json()["pending"]
            tl.check(pending == [], "no approval parked, nobody paged")
        _scene(stack, {**base, "HEALER_POLICY": ask, "HEALER_DRY_RUN": "true"}, shadow)
    finally:
        ctl.close()
    return tl

"""Drill: 3 AM. A bad release, an alert, and a policy that says "ask": the on-call engineer gets a Teams card with
signed Approve / Reject links, opens Approve in a browser (GET: a confirmation page, nothing decided), confirms
(POST), and Healer swaps back to the last known good build; a follow-up card in the same incident says so.
A second use of the link answers 410, and so does the Reject link of a decided approval.

Healer runs in the local Functions host stand-in (HTTP → queue → worker → audit → healer-notify → Teams); the
Teams Workflows stand-in checks every card against the Adaptive Card 1.5 shapes it uses and answers 202.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import re
import secrets
import time
import uuid
from typing import Any, Callable
from urllib.parse import urljoin

import httpx

from drill.host import start_healer
from drill.timeline import Timeline
from standins.chat_hooks import accepted
from standins.harness import free_port, start_python_server
from standins.stack import LocalAzure, build_of, seed_bad_release, site_id
from tests.alert_samples import alert_body

RG, APP = "pay-prod", "checkout-web"


def _poll(what: Callable[[], Any], ok: Callable[[Any], bool], deadline_s: float) -> Any:
    deadline = time.monotonic() + deadline_s
    value = what()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = what()
    return value


def _card(entry: dict[str, Any]) -> dict[str, Any]:
    return entry["body"]["attachments"][0]["content"]


def _facts(card: dict[str, Any]) -> dict[str, str]:
    facts = next((b["facts"] for b in card["body"] if b["type"] == "FactSet"), [])
    return {f["title"]: f["value"] for f in facts}


def _texts(card: dict[str, Any]) -> list[str]:
    return [b["text"] for b in card["body"] if b["type"] == "TextBlock"]


def run(stack: LocalAzure) -> Timeline:
    tl = Timeline("3 AM: ask → Teams card → approve through the signed link → swap → follow-up card")
    target = site_id(RG, APP)
    ctl = stack.arm_control()
    ctl.reset()
    tport = free_port()
    teams = start_python_server("teams", "standins.teams", ["--port", str(tport)], tport, stack.workdir)
    teams_url = f"http://127.0.0.1:{tport}"
    hport = free_port()
    settings = {
        "HEALER_TABLE_PREFIX": "drill" + uuid.uuid4().hex[:6],
        "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
            {"action": "rollback.swap", "resource": "*/resourceGroups/pay-prod/*", "effect": "ask"}]}),
        "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": target, "slot": "staging"}]),
        "HEALER_NOTIFY_DESTINATIONS": json.dumps([{"name": "oncall-teams", "format": "teams",
                                                   "url": f"{teams_url}/workflows/oncall/triggers/manual/paths/invoke"
                                                          f"?sig={secrets.token_hex(8)}"}]),
        "HEALER_APPROVAL_LINK_SECRET": secrets.token_hex(32),
        "HEALER_PUBLIC_BASE_URL": f"http://127.0.0.1:{hport}",
    }
    healer = None
    try:
        healer = start_healer(stack, settings, port=hport)
        cards = lambda: accepted(httpx.get(f"{teams_url}/_standin/received").json()["received"])  # noqa: E731
        seed_bad_release(ctl, stack.arm_url, RG, APP, good="v7", bad="v8")
        tl.add("pipeline", "deployed v8 to staging and swapped it into production (production was v7)")
        fired = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
        alert = alert_body("metric_fired.json", alert_id=str(uuid.uuid4()), rule="checkout-http5xx",
                           condition="Fired", fired=fired,
                           custom_properties={"healer.target": target, "healer.slot": "staging"})
        with healer.client() as client:
            status = client.post("/alerts/rollback", json=alert).status_code
            tl.add("monitor", f"03:00 checkout-http5xx fired → HTTP {status}")
            got = _poll(cards, lambda c: len(c) >= 1, 60)
            tl.check(len(got) == 1, "one Teams card asks for approval")
            if not got:
                return tl
            card = _card(got[0])
            links = {a["title"]: a["url"] for a in card.get("actions", [])}
            tl.add("teams", f"card v{card['version']}: {' / '.join(_texts(card)[:2])}; actions {sorted(links)}")
            tl.check(card["version"] == "1.5" and set(links) == {"Approve", "Reject"}
                     and all(u.startswith(settings["HEALER_PUBLIC_BASE_URL"] + "/api/approval-link?t=")
                             for u in links.values()), "the card is an Adaptive Card 1.5 with absolute signed links")
            with httpx.Client(timeout=30) as browser:  # no function key: the signature is the credential
                page = browser.get(links["Approve"])
                tl.add("on-call", f"opened Approve in a browser → HTTP {page.status_code} "
                                  f"{page.headers.get('content-type', '')}")
                audit_after_get = client.get("/audit", params={"outcome": "approved"}).json()["count"]
                tl.check(page.status_code == 200 and page.headers.get("content-type", "").startswith("text/html")
                         and audit_after_get == 0, "GET shows an HTML confirmation page and decides nothing")
                form = re.search(r'<form method="post" action="([^"]+)">.*?name="t" value="([^"]+)"', page.text,
                                 re.S)
                tl.check(form is not None, "the page has a form that POSTs back")
                if form is None:
                    return tl
                action, token = urljoin(links["Approve"], html.unescape(form.group(1))), html.unescape(form.group(2))
                done = browser.post(action, data={"t": token, "by": "Sam (on call)"})
                tl.add("on-call", f"pressed Approve → HTTP {done.status_code}")
                tl.check(done.status_code == 200, "the POST approves")
                records = _poll(lambda: client.get("/audit", params={"healer": "rollback", "limit": 50})
                                .json()["records"], lambda r: any(x["outcome"] == "acted" for x in r), 60)
                for rec in reversed(records):
                    tl.add("healer", f"{rec['outcome']:<9} {rec['reason'][:140]}", dt.datetime.fromisoformat(rec["at"]))
                again = browser.post(action, data={"t": token, "by": "Sam (on call)"})
                reject = browser.get(links["Reject"])
                tl.add("on-call", f"the same link again → HTTP {again.status_code}; Reject → HTTP {reject.status_code}")
                tl.check(again.status_code == 410 and reject.status_code == 410, "a used link and the decided "
                                                                                  "approval's other link answer 410")
            got = _poll(cards, lambda c: len(c) >= 3, 60)
            for entry in got[1:]:
                c = _card(entry)
                tl.add("teams", f"follow-up card: {' / '.join(_texts(c)[:2])} (incident {_facts(c).get('Incident')})")
            incidents = {_facts(_card(e)).get("Incident") for e in got}
            titles = {_texts(_card(e))[0] for e in got}
            outcomes = [_facts(_card(e)).get("Outcome") for e in got]
            tl.check(outcomes == ["pending", "approved", "acted"], f"Teams got exactly: ask, approved, acted "
                                                                   f"({outcomes})")
            tl.check(len(incidents) == 1 and len(titles) == 1, "every card names the same incident and title line")
            rejected = [r for r in httpx.get(f"{teams_url}/_standin/received").json()["received"]
                        if r["status"] >= 300]
            tl.check(not rejected, "the Teams stand-in accepted every card (Adaptive Card 1.5 shapes)")
            healer_swaps = ctl.counters()["swaps_accepted"] - 1
            prod = build_of(ctl, RG, APP)
            tl.add("arm", f"swaps by Healer: {healer_swaps}; production now runs {prod}")
            tl.check(healer_swaps == 1 and prod == "v7", "exactly one swap, back to v7")
    finally:
        if healer is not None:
            healer.stop()
        teams.stop()
        ctl.close()
    return tl

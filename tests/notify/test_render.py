"""Pure: routing events, payload shapes (checked by the same validators the stand-ins use), escaping, incidents."""
from __future__ import annotations

import json

import pytest

from shared.config import ConfigError, Settings
from shared.notify_config import destinations, event_of, route
from shared.notify_render import build_notice, generic, md_escape, slack, teams
from standins import slack as slack_standin
from standins import teams as teams_standin

APP = "/subscriptions/1/resourceGroups/prod/providers/Microsoft.Web/sites/shop-web"
APPROVAL = {"id": "abc", "healer": "rollback", "action": "rollback.swap", "resource": APP, "subject": "alert-1",
            "expiresAt": "2026-12-02T07:00:00+00:00"}
LINKS = {"Approve": "https://h.example/api/approval-link?t=a.b", "Reject": "https://h.example/api/approval-link?t=c.d"}


def entry(outcome: str, **details) -> dict:
    return {"id": "20261202/0001", "at": "2026-12-02T03:00:00+00:00", "healer": "rollback", "outcome": outcome,
            "reason": "production runs v42 [click](https://evil.example) <@here> *now*", "resource": APP,
            "subject": "alert-1", "details": details}


@pytest.mark.parametrize("outcome", ["pending", "acted", "escalated", "dead-letter", "expired", "config-invalid"])
def test_every_format_passes_the_stand_in_validators(outcome):
    n = build_notice(entry(outcome, approvalId="abc"), APPROVAL, LINKS if outcome == "pending" else {}, "https://h")
    assert teams_standin.validate(teams(n)) is None
    assert slack_standin.validate(slack(n)) is None
    assert json.loads(json.dumps(generic(n)))["outcome"] == outcome


def test_huge_text_stays_within_slack_and_teams_limits():
    big = entry("escalated")
    big["reason"], big["subject"] = "x" * 50_000, "y" * 5000
    n = build_notice(big)
    assert slack_standin.validate(slack(n)) is None and teams_standin.validate(teams(n)) is None


def test_untrusted_text_cannot_make_links_or_mentions():
    n = build_notice(entry("acted"))
    card = json.dumps(teams(n))
    assert "[click](" not in card and "\\\\[click\\\\]" in card
    s = slack(n)
    texts = [b.get("text") for b in s["blocks"] if b.get("text")] + \
        [f for b in s["blocks"] for f in b.get("fields", [])]
    assert all(t["type"] == "plain_text" for t in texts)  # never parsed as mrkdwn (<@here>, <url|x>)
    assert "<@here>" not in s["text"] and "&lt;@here&gt;" in s["text"]
    assert md_escape("- a\n# b") == "\\- a\n\\# b"


def test_follow_ups_share_incident_and_title():
    asked = build_notice(entry("pending", approvalId="abc"), APPROVAL)
    decided = build_notice(entry("approved", approvalId="abc", approval=APPROVAL))
    acted = build_notice(entry("acted", approvalId="abc"))
    assert asked.incident == decided.incident == acted.incident == "abc"
    assert asked.title == decided.title == acted.title == "Healer · rollback · shop-web"
    plain = build_notice(entry("acted"))
    assert plain.incident == build_notice(entry("escalated")).incident != "abc"


def test_events_and_default_routing():
    assert event_of({"healer": "controls", "outcome": "recorded"}) == "controls"
    assert event_of(entry("skipped", attention="look")) == "attention"
    assert event_of(entry("acted", attention="look")) == "acted"
    dests = destinations(Settings({"HEALER_NOTIFY_WEBHOOK_URL": "https://hook.example/x"}))
    assert [d.name for d in route(dests, entry("acted"))] == ["webhook"]
    assert route(dests, entry("duplicate")) == [] and route(dests, {**entry("dead-letter"), "healer": "notify"}) == []


@pytest.mark.parametrize("raw, why", [
    ("not json", "not valid JSON"),
    ('{"name": "x"}', "JSON list"),
    ('[{"name": "x", "format": "msteams", "url": "https://secret.example/SECRETPATH"}]', "format"),
    ('[{"name": "x", "format": "teams", "url": "https://a.example/SECRETPATH", "rules": [{"events": ["actd"]}]}]',
     "unknown events"),
    ('[{"name": "x", "format": "teams", "url": "https://a.example/SECRETPATH", "color": "red"}]', "color"),
])
def test_invalid_destinations_name_the_problem_never_the_url(raw, why):
    with pytest.raises(ConfigError) as err:
        destinations(Settings({"HEALER_NOTIFY_DESTINATIONS": raw}))
    assert why in str(err.value) and "SECRETPATH" not in str(err.value)


def test_duplicate_names_are_refused():
    raw = json.dumps([{"name": "webhook", "format": "generic", "url": "https://a.example/1"}])
    with pytest.raises(ConfigError, match="unique"):
        destinations(Settings({"HEALER_NOTIFY_DESTINATIONS": raw, "HEALER_NOTIFY_WEBHOOK_URL": "https://b.example"}))

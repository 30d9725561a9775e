"""Policy rule conditions (time windows in UTC or a named zone, bounds on proposed parameters), pre-action hooks
against a stand-in started here, and the last-known-good policy when HEALER_POLICY is briefly unreadable."""
from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from shared import gate
from shared.config import Settings
from shared.policy import evaluate, load_policy
from standins.harness import free_port, start_python_server

APP = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/shop-prod/providers/Microsoft.Web/sites/shop-web"
UTC = dt.timezone.utc


def policy(*rules, **top):
    p, why = load_policy({"version": 1, "default": "deny", "rules": list(rules), **top})
    assert p is not None, why
    return p


def test_business_hours_in_a_named_zone_and_a_change_freeze():
    p = policy({"action": "downshift.*", "resource": "*", "effect": "allow"},
               {"action": "downshift.*", "resource": "*", "effect": "ask", "note": "business hours",
                "when": {"timezone": "Europe/Paris", "days": ["mon", "tue", "wed", "thu", "fri"],
                         "start": "09:00", "end": "18:00"}},
               {"action": "*", "resource": "*", "effect": "deny", "note": "freeze",
                "when": {"from": "2026-12-20T00:00:00Z", "to": "2027-01-04T00:00:00Z"}})
    monday_10_paris = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)        # 10:00 in Paris (UTC+1)
    monday_19_paris = dt.datetime(2026, 3, 2, 18, 30, tzinfo=UTC)      # 19:30 in Paris
    saturday = dt.datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert evaluate(p, "downshift.switch", APP, now=monday_10_paris).effect == "ask"
    assert evaluate(p, "downshift.switch", APP, now=monday_19_paris).effect == "allow"
    assert evaluate(p, "downshift.switch", APP, now=saturday).effect == "allow"
    frozen = evaluate(p, "downshift.switch", APP, now=dt.datetime(2026, 12, 24, 3, 0, tzinfo=UTC))
    assert frozen.effect == "deny" and "freeze" in frozen.reason
    assert evaluate(p, "downshift.switch", APP, now=dt.datetime(2027, 1, 4, 0, 0, tzinfo=UTC)).effect == "allow"


def test_a_window_past_midnight_and_bad_windows_are_refused():
    p = policy({"action": "*", "resource": "*", "effect": "allow", "when": {"start": "22:00", "end": "06:00"}})
    assert evaluate(p, "rollback.swap", APP, now=dt.datetime(2026, 3, 2, 23, 0, tzinfo=UTC)).effect == "allow"
    assert evaluate(p, "rollback.swap", APP, now=dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)).effect == "deny"
    for when in ({"timezone": "Mars/Olympus"}, {"start": "25:00", "end": "26:00"}, {"start": "09:00"},
                 {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, {"days": ["funday"]}):
        bad, why = load_policy({"version": 1, "rules": [{"action": "*", "resource": "*", "effect": "allow",
                                                        "when": when}]})
        assert bad is None and "when" in why, when


def test_value_bounds_on_proposed_parameters_fail_closed_when_missing():
    p = policy({"action": "downshift.*", "resource": "*", "effect": "allow"},
               {"action": "downshift.switch", "resource": "*", "effect": "deny", "note": "never below rung 1",
                "where": {"rung": {"gt": 1}}},
               {"action": "downshift.restore", "resource": "*", "effect": "allow", "where": {"rung": {"gte": 0}}})
    assert evaluate(p, "downshift.switch", APP, params={"rung": 1}).effect == "allow"
    assert evaluate(p, "downshift.switch", APP, params={"rung": 2}).effect == "deny"
    assert evaluate(p, "downshift.switch", APP, params={}).effect == "deny"     # unknown rung: the deny applies
    strict = policy({"action": "*", "resource": "*", "effect": "allow", "where": {"rung": {"lte": 3}}})
    assert evaluate(strict, "downshift.switch", APP, params={}).effect == "deny"  # an allow never applies blind


@pytest.fixture(scope="module")
def hook_url(workdir):
    port = free_port()
    server = start_python_server("policy-hook", "standins.policy_hook", ["--port", str(port)], port, workdir)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def proposal(**kw) -> gate.Proposal:
    return gate.Proposal(healer="rollback", action="rollback.swap", resource=APP + "/", subject="alert-1",
                         plan="swap staging (v41) into production (v42)", params={"slot": "staging"},
                         on_approve={"kind": "approved"}, queue="healer-rollback", **kw)


@pytest.mark.parametrize("mode,timeout,klass,fragment", [
    ("allow", 3, "act", "stand-in says allow"),
    ("ask", 3, "pending", "stand-in says ask"),
    ("deny", 3, "refused", "stand-in says deny"),
    ("slow", 0.5, "refused", "did not answer within 0.5 s"),
    ("garbage", 3, "refused", "unreadable answer"),
    ("error", 3, "refused", "HTTP 500"),
])
def test_pre_action_hook_decides_within_its_timeout_or_denies(storage_env, monkeypatch, hook_url, mode, timeout,
                                                              klass, fragment):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.*", "resource": "*", "effect": "allow",
         "hook": {"url": f"{hook_url}/hook/{mode}", "timeoutSeconds": timeout}}]}))
    httpx.post(f"{hook_url}/_standin/reset")
    verdict = gate.check(Settings(), proposal())
    assert verdict.klass == klass and fragment in verdict.details["policy"]["reason"]
    [sent] = httpx.get(f"{hook_url}/_standin/received").json()["received"]
    assert sent["body"] == {"action": "rollback.swap", "resource": APP.lower(), "parameters": {"slot": "staging"},
                            "healer": "rollback", "subject": "alert-1", "effect": "allow"}


def test_a_hook_can_only_tighten_and_is_not_called_on_deny(storage_env, monkeypatch, hook_url):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.*", "resource": "*", "effect": "ask", "hook": {"url": f"{hook_url}/hook/allow"}}]}))
    assert gate.check(Settings(), proposal()).klass == "pending"     # the hook's allow does not loosen an ask


def test_last_known_good_policy_while_the_source_is_unreadable(storage_env, monkeypatch):
    allow = json.dumps({"version": 1, "rules": [{"action": "*", "resource": "*", "effect": "allow"}]})
    monkeypatch.setenv("HEALER_POLICY", allow)
    t0 = dt.datetime.now(UTC)
    assert gate.check(Settings(), proposal(), t0).klass == "act"                # remembered as last-known-good
    monkeypatch.setenv("HEALER_POLICY", "@Microsoft.KeyVault(VaultName=kv;SecretName=healer-policy)")
    used = gate.check(Settings(), proposal(), t0 + dt.timedelta(minutes=10))
    assert used.klass == "act" and used.details["policySource"]["source"] == "last-known-good"
    assert "last-known-good" in used.details["policyNote"]
    monkeypatch.setenv("HEALER_POLICY_LKG_MAX_AGE_SECONDS", "300")               # too old now: fail closed
    stale = gate.check(Settings(), proposal(), t0 + dt.timedelta(minutes=10))
    assert stale.klass == "refused" and "last-known-good copy is 600 s old" in stale.reason
    assert stale.record["outcome"] == "refused"

"""Policy evaluation (deny wins, fail closed) and the kill switch / dry-run combination."""
from __future__ import annotations

from hypothesis import given, strategies as st

from shared.controls import effective_mode
from shared.policy import evaluate, load_policy

APP = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/shop-prod/providers/Microsoft.Web/sites/shop-web"


def policy(*rules, default="deny"):
    p, why = load_policy({"version": 1, "default": default, "rules": list(rules)})
    assert p is not None, why
    return p


def test_deny_wins_over_allow_and_ask():
    p = policy({"action": "rollback.*", "resource": "*", "effect": "allow"},
               {"action": "*", "resource": "*/sites/shop-*", "effect": "deny", "note": "shop is frozen"},
               {"action": "rollback.swap", "resource": "*", "effect": "ask"})
    d = evaluate(p, "rollback.swap", APP)
    assert d.effect == "deny" and "shop is frozen" in d.reason


def test_ask_beats_allow_and_matching_is_case_insensitive():
    p = policy({"action": "rollback.*", "resource": "*", "effect": "allow"},
               {"action": "ROLLBACK.SWAP", "resource": "*/RESOURCEGROUPS/SHOP-PROD/*", "effect": "ask"})
    assert evaluate(p, "rollback.swap", APP).effect == "ask"


def test_no_match_takes_default_which_can_never_be_allow():
    assert evaluate(policy(), "rollback.swap", APP).effect == "deny"
    assert evaluate(policy(default="ask"), "rollback.swap", APP).effect == "ask"
    p, why = load_policy({"version": 1, "default": "allow", "rules": []})
    assert p is None and "default" in why


def test_fail_closed_when_policy_missing_or_invalid():
    for doc in (None, {"rules": [{"action": "*"}]}, {"version": 2}, "allow everything", {"rules": "x"}):
        p, why = load_policy(doc)
        d = evaluate(p, "rollback.swap", APP, why)
        assert d.effect == "deny" and "fail closed" in d.reason


@given(st.lists(st.tuples(st.sampled_from(["rollback.*", "*", "rollback.swap", "other"]),
                          st.sampled_from(["*", "*/sites/shop-web", "*/sites/other"]),
                          st.sampled_from(["allow", "ask", "deny"])), max_size=8))
def test_any_matching_deny_denies(rules):
    p = policy(*[{"action": a, "resource": r, "effect": e} for a, r, e in rules])
    d = evaluate(p, "rollback.swap", APP)
    matching = [e for a, r, e in rules if a in ("rollback.*", "*", "rollback.swap") and r != "*/sites/other"]
    if "deny" in matching or not matching:
        assert d.effect == "deny"
    elif "ask" in matching:
        assert d.effect == "ask"
    else:
        assert d.effect == "allow"


def test_controls_combine_and_fail_closed():
    assert effective_mode(False, False, None, None).reason == "live"
    assert effective_mode(True, False, None, None).killed
    assert effective_mode(False, False, {"kill": True}, None).killed
    assert effective_mode(False, False, None, {"kill": True}).killed
    m = effective_mode(False, False, {"dryRun": True}, None)
    assert m.dry_run and not m.killed and "global control" in m.reason
    assert effective_mode(False, False, None, None, target_dry_run=True).dry_run
    broken = effective_mode(False, False, None, None, read_error="ServiceRequestError")
    assert broken.killed and "fail closed" in broken.reason


def test_unreadable_controls_are_marked_so_callers_can_retry():
    assert effective_mode(False, False, None, None, read_error="ServiceRequestError").unreadable
    assert not effective_mode(True, True, {"kill": True}, None).unreadable

"""Microsoft's published sample payloads (tests/fixtures/payloads, sources in sources.json) through the webhooks:
every common-schema signal type is accepted, test-action-group samples too, the legacy metric alert's Activated and
Resolved share one incident id, and a budget alert's id includes its period."""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from healers.downshift.budget import parse_budget_alert
from shared.alerts import PayloadError, parse_alert
from tests.functions import call, http

pytestmark = pytest.mark.integration
PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
SOURCES = json.loads((PAYLOADS / "sources.json").read_text())


def load(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text())


def composed(fragment: str) -> dict:
    """A documented alertContext in the documented envelope, essentials named as the section heading names them."""
    body = load("envelope_metric_resolved.json")
    source = SOURCES[f"fragments/{fragment}"]
    body["data"]["alertContext"] = load(f"fragments/{fragment}")["alertContext"]
    body["data"]["essentials"].update(signalType=source["signalType"], monitoringService=source["monitoringService"])
    return body


def advisor() -> dict:
    body = load("full/advisor_recommendation.json")
    ess = body["data"]["essentials"]
    ess["alertId"] = ess["alertId"].replace("<alerted>", "0f8e3a52-9d1c-4b7e-8a46-2c5d9e1f7b30")
    return body


FRAGMENTS = sorted(p.name for p in (PAYLOADS / "fragments").glob("*.json"))
COMMON_FULL = sorted(p.name for p in (PAYLOADS / "full").glob("test_action_*.json") if "budget" not in p.name)
BUDGETS = ["test_action_budget_legacy.json", "test_action_budget_actual.json", "test_action_budget_forecasted.json"]


def test_every_fixture_names_its_source():
    files = {str(p.relative_to(PAYLOADS)) for p in PAYLOADS.rglob("*.json") if p.name != "sources.json"}
    assert files == set(SOURCES) - {"_about"}
    assert all(v["url"].startswith("https://learn.microsoft.com/") for k, v in SOURCES.items() if k != "_about")


@pytest.mark.parametrize("name,route", [("rollback_alert", "alerts/rollback"), ("downshift_alert", "alerts/downshift")])
def test_every_common_schema_sample_is_accepted(functions, storage_env, name, route):
    bodies = ([composed(f) for f in FRAGMENTS] + [load(f"full/{f}") for f in COMMON_FULL] + [advisor()]
              + [load("envelope_metric_resolved.json")])
    for body in bodies:
        resp = call(functions, name, http("POST", route, body))
        assert resp.status_code == 202, (body["data"]["essentials"]["monitoringService"], resp.get_body())


def test_test_action_group_activity_log_and_service_health_samples_are_accepted():
    for f in ("test_action_activity_administrative.json", "test_action_service_health.json",
              "test_action_service_health_definitions.json", "test_action_resource_health.json"):
        alert = parse_alert(load(f"full/{f}"))
        assert alert.fired and alert.signal_type == "Activity Log"
    sh = parse_alert(load("full/test_action_service_health.json"))
    assert sh.alert_id == "1234abcd5678efgh1234abcd5678efgh1234abcd5678efgh1234abcd5678efgh"
    naive = parse_alert(load("full/test_action_service_health_definitions.json"))
    assert naive.fired_at.tzinfo is not None and naive.alert_id == sh.alert_id


@pytest.mark.parametrize("sample", ["full/legacy_metric_static.json", "full/legacy_metric_dynamic.json"])
def test_legacy_metric_resolved_shares_the_activated_incident_id(sample):
    activated = load(sample)
    resolved = copy.deepcopy(activated)
    resolved["data"]["status"] = "Resolved"
    resolved["data"]["context"]["timestamp"] = "2021-11-15T10:05:12.1234567Z"
    resolved["data"]["context"]["condition"]["allOf"][0]["metricValue"] = 0
    a, r = parse_alert(activated), parse_alert(resolved)
    assert a.fired and not r.fired
    assert a.alert_id == r.alert_id
    other = copy.deepcopy(activated)          # another condition of the same rule is another incident
    other["data"]["context"]["condition"]["allOf"][0]["metricName"] = "Egress"
    assert parse_alert(other).alert_id != a.alert_id
    elsewhere = copy.deepcopy(activated)      # the same rule on another resource too
    elsewhere["data"]["context"]["resourceId"] += "2"
    assert parse_alert(elsewhere).alert_id != a.alert_id


def test_legacy_metric_samples_are_accepted_by_the_webhooks(functions, storage_env):
    for f in ("full/legacy_metric_static.json", "full/legacy_metric_dynamic.json"):
        for name, route in (("rollback_alert", "alerts/rollback"), ("downshift_alert", "alerts/downshift")):
            assert call(functions, name, http("POST", route, load(f))).status_code == 202


def test_budget_samples_are_accepted_on_the_budget_webhook_and_redirected_elsewhere(functions, storage_env):
    for f in BUDGETS:
        assert call(functions, "downshift_budget", http("POST", "alerts/budget", load(f"full/{f}"))).status_code == 202
        for name, route in (("rollback_alert", "alerts/rollback"), ("downshift_alert", "alerts/downshift")):
            resp = call(functions, name, http("POST", route, load(f"full/{f}")))
            assert resp.status_code == 400 and "/api/alerts/budget" in json.loads(resp.get_body())["error"]


def test_next_months_budget_alert_is_a_new_incident_and_a_redelivery_is_not():
    jan, jan_later, feb = (dt.datetime(2026, 1, 3, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 29, tzinfo=dt.timezone.utc),
                           dt.datetime(2026, 2, 3, tzinfo=dt.timezone.utc))
    legacy = load("full/test_action_budget_legacy.json")
    assert parse_budget_alert(legacy, jan).alert_id == parse_budget_alert(legacy, jan_later).alert_id
    assert parse_budget_alert(legacy, jan).alert_id != parse_budget_alert(legacy, feb).alert_id
    for f in BUDGETS[1:]:
        body = load(f"full/{f}")
        again = parse_budget_alert(copy.deepcopy(body), feb)   # a redelivery: same firedDateTime, received later
        assert parse_budget_alert(body, jan).alert_id == again.alert_id
        next_month = copy.deepcopy(body)
        next_month["data"]["essentials"]["firedDateTime"] = "2023-01-07T21:13:20.645Z"
        assert parse_budget_alert(next_month, feb).alert_id != again.alert_id


@pytest.mark.parametrize("body,fragment", [
    ({"data": {"essentials": {}}}, "missing schemaId"),
    (load("full/test_action_budget_actual.json"), "/api/alerts/budget"),
    (load("full/test_action_budget_legacy.json"), "/api/alerts/budget"),
])
def test_what_is_wrong_is_named(body, fragment):
    with pytest.raises(PayloadError, match=fragment):
        parse_alert(body)

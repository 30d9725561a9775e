"""Cost Management budget alerts in both shapes (samples as published in the Azure Monitor docs)."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from healers.downshift.budget import (BudgetPayloadError, is_budget_alert, parse_amount, parse_budget_alert)

LEGACY = {
    "schemaId": "AIP Budget Notification",
    "data": {
        "SubscriptionName": "test-subscription", "SubscriptionId": "11111111-1111-1111-1111-111111111111",
        "EnrollmentNumber": "", "DepartmentName": "test-budgetDepartmentName", "AccountName": "test-budgetAccountName",
        "BillingAccountId": "", "BillingProfileId": "", "InvoiceSectionId": "", "ResourceGroup": "test-RG",
        "SpendingAmount": "1111.32", "BudgetStartDate": "11/17/2021 5:40:29 PM -08:00", "Budget": "10000",
        "Unit": "USD", "BudgetCreator": "email@domain.com", "BudgetName": "test-budgetName", "BudgetType": "Cost",
        "NotificationThresholdAmount": "8000.0",
    },
}

COMMON_ACTUAL = {
    "schemaId": "azureMonitorCommonAlertSchema",
    "data": {
        "essentials": {
            "monitoringService": "CostAlerts", "firedDateTime": "2022-12-07T21:13:20.645Z",
            "description": "Your spend for budget Test_actual_cost_budget is now $11,111.00 exceeding your specified "
                           "threshold $25.00.",
            "essentialsVersion": "1.0", "alertContextVersion": "1.0",
            "alertId": "/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.CostManagement/"
                       "alerts/Test_Alert",
            "alertRule": None, "severity": None, "signalType": None, "monitorCondition": None,
            "alertTargetIDs": None, "configurationItems": ["budgets"], "originAlertId": None,
        },
        "alertContext": {
            "AlertCategory": "budgets",
            "AlertData": {
                "Scope": "/subscriptions/11111111-1111-1111-1111-111111111111/", "ThresholdType": "Actual",
                "BudgetType": "Cost", "BudgetThreshold": "$50.00", "NotificationThresholdAmount": "$25.00",
                "BudgetName": "Test_actual_cost_budget",
                "BudgetId": "/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.Consumption/"
                            "budgets/Test_actual_cost_budget",
                "BudgetStartDate": "2022-11-01", "BudgetCreator": "test@sample.test", "Unit": "USD",
                "SpentAmount": "$11,111.00",
            },
        },
    },
}

COMMON_FORECAST = copy.deepcopy(COMMON_ACTUAL)
COMMON_FORECAST["data"]["essentials"].update(
    firedDateTime="2022-12-07T21:13:29.576Z",
    description="The total spend for your budget, Test_forcasted_budget, is forecasted to reach $1111.11 before the "
                "end of the period. This amount exceeds your specified budget threshold of $50.00.")
COMMON_FORECAST["data"]["alertContext"]["AlertData"].update(
    ThresholdType="Forecasted", NotificationThresholdAmount="$50.00", BudgetName="Test_forcasted_budget",
    BudgetId="/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.Consumption/budgets/"
             "Test_forcasted_budget",
    SpentAmount="$999.99", ForecastedTotalForPeriod="$1111.11")


def test_legacy_shape():
    a = parse_budget_alert(LEGACY)
    assert (a.schema, a.condition, a.threshold_type) == ("legacy", "Fired", "Actual")
    assert (a.budget, a.spent, a.threshold_amount, a.forecast) == (10000.0, 1111.32, 8000.0, None)
    assert a.spent_ratio == pytest.approx(0.111132) and a.forecast_ratio is None
    assert a.scope == "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/test-RG"
    assert a.fired_at is None and a.unit == "USD" and a.budget_name == "test-budgetName"
    # Same notification delivered twice → same id; another threshold → another id.
    assert parse_budget_alert(copy.deepcopy(LEGACY)).alert_id == a.alert_id
    other = copy.deepcopy(LEGACY)
    other["data"]["NotificationThresholdAmount"] = "10000.0"
    assert parse_budget_alert(other).alert_id != a.alert_id


def test_common_schema_actual_with_display_amounts_and_null_condition():
    a = parse_budget_alert(COMMON_ACTUAL)
    assert (a.schema, a.condition, a.threshold_type) == ("common", "Fired", "Actual")
    assert (a.budget, a.spent, a.threshold_amount) == (50.0, 11111.0, 25.0)
    assert a.spent_ratio == pytest.approx(222.22)
    assert a.fired_at == dt.datetime(2022, 12, 7, 21, 13, 20, 645000, tzinfo=dt.timezone.utc)
    assert a.scope == "/subscriptions/11111111-1111-1111-1111-111111111111/"
    assert a.dedup_key.endswith("|Fired")


def test_common_schema_forecasted():
    a = parse_budget_alert(COMMON_FORECAST)
    assert a.threshold_type == "Forecasted"
    assert (a.spent, a.forecast, a.budget) == (999.99, 1111.11, 50.0)
    assert a.forecast_ratio == pytest.approx(22.2222)
    # Both sample alerts share essentials.alertId ("Test_Alert"): they must still be told apart.
    assert a.alert_id != parse_budget_alert(COMMON_ACTUAL).alert_id


def test_routing_helper():
    assert is_budget_alert(LEGACY) and is_budget_alert(COMMON_ACTUAL) and is_budget_alert(COMMON_FORECAST)
    metric = copy.deepcopy(COMMON_ACTUAL)
    metric["data"]["essentials"]["monitoringService"] = "Platform"
    assert not is_budget_alert(metric) and not is_budget_alert([]) and not is_budget_alert({"schemaId": 3})


@pytest.mark.parametrize("text, value", [
    ("$11,111.00", 11111.0), ("$25.00", 25.0), ("1111.32", 1111.32), ("10000", 10000.0), ("8000.0", 8000.0),
    ("$1111.11", 1111.11), ("€1.234,56", 1234.56), ("1 234,56 €", 1234.56), ("12,5", 12.5), ("1,234", 1234.0),
    ("1.234.567", 1234567.0), ("USD 42", 42.0), (50, 50.0), (0.8, 0.8),
    ("", None), ("n/a", None), ("-$5.00", None), ("1.2.3", None), (None, None), (True, None), (float("nan"), None),
    ("9" * 100, None), ({"a": 1}, None),
])
def test_amounts(text, value):
    got = parse_amount(text)
    assert got == (pytest.approx(value) if value is not None else None)


def test_unreadable_amounts_are_unknown_not_zero():
    p = copy.deepcopy(COMMON_ACTUAL)
    p["data"]["alertContext"]["AlertData"]["SpentAmount"] = "lots"
    a = parse_budget_alert(p)
    assert a.spent is None and a.spent_ratio is None


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(schemaId="Microsoft.Insights/activityLogs"), "not a budget alert"),
    (lambda p: p["data"]["essentials"].update(monitoringService="Platform"), "monitoringService"),
    (lambda p: p["data"].pop("alertContext"), "AlertData"),
    (lambda p: p["data"]["alertContext"]["AlertData"].pop("BudgetName"), "BudgetName"),
    (lambda p: p["data"]["alertContext"]["AlertData"].update(BudgetName=["x"]), "BudgetName"),
    (lambda p: p["data"]["alertContext"]["AlertData"].update(ThresholdType="Sideways"), "ThresholdType"),
    (lambda p: p["data"]["essentials"].update(firedDateTime="yesterday"), "firedDateTime"),
    (lambda p: p.update(data=[]), "data"),
])
def test_malformed_payloads_are_refused(mutate, message):
    p = copy.deepcopy(COMMON_ACTUAL)
    mutate(p)
    with pytest.raises(BudgetPayloadError, match=message):
        parse_budget_alert(p)


def test_malformed_legacy_and_non_objects():
    with pytest.raises(BudgetPayloadError):
        parse_budget_alert("{}")
    with pytest.raises(BudgetPayloadError, match="BudgetName"):
        parse_budget_alert({"schemaId": "AIP Budget Notification", "data": {"Budget": "1"}})


def test_long_text_is_bounded():
    p = copy.deepcopy(COMMON_ACTUAL)
    p["data"]["alertContext"]["AlertData"]["BudgetName"] = "x" * 100_000
    p["data"]["essentials"]["description"] = "y" * 100_000
    a = parse_budget_alert(p)
    assert len(a.budget_name) <= 512 and len(a.description) <= 512

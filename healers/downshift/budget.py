"""Cost Management budget alerts, as delivered by an action group, in both shapes:

* legacy: `{"schemaId": "AIP Budget Notification", "data": {"SpendingAmount": "1111.32", "Budget": "10000", ...}}`
* common alert schema: `essentials.monitoringService == "CostAlerts"`, `monitorCondition` null, and amounts in
  `alertContext.AlertData` as display strings such as "$11,111.00" (`ThresholdType` Actual or Forecasted, the
  latter with `ForecastedTotalForPeriod`).

Budget alerts only ever fire (there is no Resolved), so the parsed alert's condition is always "Fired". Amounts
that cannot be read are None (unknown), never zero. The payload is untrusted: sizes are bounded and every field is
type-checked.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from shared.alerts import parse_azure_time

LEGACY_SCHEMA = "AIP Budget Notification"
COMMON_SCHEMA = "azureMonitorCommonAlertSchema"
COST_SERVICE = "CostAlerts"
MAX_TEXT = 512
MAX_AMOUNT_CHARS = 48


class BudgetPayloadError(ValueError):
    """Not a budget alert Healer can read; the message says what was wrong."""


@dataclass(frozen=True)
class BudgetAlert:
    schema: Literal["legacy", "common"]
    alert_id: str                      # stable across re-deliveries of the same notification
    condition: Literal["Fired"]
    budget_name: str
    scope: str                         # "/subscriptions/<id>/" or ".../resourceGroups/<rg>", "" when absent
    threshold_type: Literal["Actual", "Forecasted"]
    budget: float | None               # the budget amount for the period
    spent: float | None
    forecast: float | None             # forecasted total for the period (Forecasted alerts)
    threshold_amount: float | None     # as sent; the legacy shape has carried both amounts and fractions
    unit: str
    fired_at: dt.datetime | None       # None in the legacy shape: use the time it was received
    budget_start: str                  # as sent, e.g. "2022-11-01" or "11/17/2021 5:40:29 PM -08:00"
    description: str

    @property
    def spent_ratio(self) -> float | None:
        return _ratio(self.spent, self.budget)

    @property
    def forecast_ratio(self) -> float | None:
        return _ratio(self.forecast, self.budget)

    @property
    def dedup_key(self) -> str:
        return f"{self.alert_id}|{self.condition}"


def _ratio(amount: float | None, budget: float | None) -> float | None:
    if amount is None or budget is None or budget <= 0:
        return None
    return amount / budget


_AMOUNT_CHARS = re.compile(r"[^0-9.,\-]")


def parse_amount(value: Any) -> float | None:
    """ "$11,111.00" → 11111.0, "1111.32" → 1111.32, "1.234,56 €" → 1234.56; unreadable → None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) and number >= 0 else None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_AMOUNT_CHARS:
        return None
    text = _AMOUNT_CHARS.sub("", value)
    if not text or text.count("-") > 0 or not re.search(r"\d", text):
        return None
    if "," in text and "." in text:
        decimal = "." if text.rfind(".") > text.rfind(",") else ","
        thousands = "," if decimal == "." else "."
        text = text.replace(thousands, "").replace(decimal, ".")
    elif "," in text:
        text = text.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", text) else text.replace(",", ".")
    elif text.count(".") > 1:
        if not re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
            return None
        text = text.replace(".", "")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: Any, field: str, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise BudgetPayloadError(f"missing {field}")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BudgetPayloadError(f"{field} must be a string")
    if required and not value.strip():
        raise BudgetPayloadError(f"missing {field}")
    return value.strip()[:MAX_TEXT]


def _datetime(value: Any, field: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_azure_time(value)
    except ValueError:
        raise BudgetPayloadError(f"{field} is not an ISO 8601 time") from None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_budget_alert(payload: Any) -> bool:
    """Cheap routing test: is this an action-group call from a Cost Management budget?"""
    if not isinstance(payload, dict):
        return False
    if payload.get("schemaId") == LEGACY_SCHEMA:
        return True
    data = payload.get("data")
    essentials = data.get("essentials") if isinstance(data, dict) else None
    return (payload.get("schemaId") == COMMON_SCHEMA and isinstance(essentials, dict)
            and essentials.get("monitoringService") == COST_SERVICE)


def budget_period(at: dt.datetime) -> str:
    """The budget period an alert belongs to, for its identity: the calendar month (UTC) it fired in. Cost Management
    notifies once per threshold per period, so next month's alert at the same threshold is a new incident; a
    quarterly or annual budget at worst gets a repeat notification treated as new (re-evaluated, never doubled)."""
    return at.astimezone(dt.UTC).strftime("%Y-%m")


def parse_budget_alert(payload: Any, received_at: dt.datetime | None = None) -> BudgetAlert:
    """`received_at` (default: now) dates the legacy shape, which carries no time of its own."""
    if not isinstance(payload, dict):
        raise BudgetPayloadError("payload must be a JSON object")
    schema = payload.get("schemaId")
    received = received_at or dt.datetime.now(dt.UTC)
    if schema == LEGACY_SCHEMA:
        return _parse_legacy(payload, received)
    if schema == COMMON_SCHEMA:
        return _parse_common(payload, received)
    raise BudgetPayloadError(f"not a budget alert (schemaId {str(schema)[:64]!r})")


def _parse_legacy(payload: dict, received: dt.datetime) -> BudgetAlert:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BudgetPayloadError("missing data")
    name = _text(data.get("BudgetName"), "data.BudgetName", required=True)
    subscription = _text(data.get("SubscriptionId"), "data.SubscriptionId")
    group = _text(data.get("ResourceGroup"), "data.ResourceGroup")
    scope = f"/subscriptions/{subscription}/" if subscription else ""
    if scope and group:
        scope = f"{scope}resourceGroups/{group}"
    start = _text(data.get("BudgetStartDate"), "data.BudgetStartDate")
    threshold = _text(data.get("NotificationThresholdAmount"), "data.NotificationThresholdAmount")
    budget = parse_amount(data.get("Budget"))
    spent = parse_amount(data.get("SpendingAmount"))
    # The legacy shape has no alert id: the same budget, period and threshold is the same notification.
    alert_id = "legacy:" + _digest(scope, name, start, threshold, budget_period(received))
    return BudgetAlert(
        schema="legacy", alert_id=alert_id, condition="Fired", budget_name=name, scope=scope,
        threshold_type="Actual", budget=budget, spent=spent, forecast=None,
        threshold_amount=parse_amount(threshold), unit=_text(data.get("Unit"), "data.Unit")[:16],
        fired_at=None, budget_start=start, description="")


def _parse_common(payload: dict, received: dt.datetime) -> BudgetAlert:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BudgetPayloadError("missing data")
    essentials = data.get("essentials")
    if not isinstance(essentials, dict):
        raise BudgetPayloadError("missing data.essentials")
    if essentials.get("monitoringService") != COST_SERVICE:
        raise BudgetPayloadError("not a budget alert (monitoringService is not CostAlerts)")
    context = data.get("alertContext")
    alert_data = context.get("AlertData") if isinstance(context, dict) else None
    if not isinstance(alert_data, dict):
        raise BudgetPayloadError("missing data.alertContext.AlertData")
    name = _text(alert_data.get("BudgetName"), "AlertData.BudgetName", required=True)
    kind = _text(alert_data.get("ThresholdType"), "AlertData.ThresholdType") or "Actual"
    if kind.lower() not in ("actual", "forecasted"):
        raise BudgetPayloadError(f"unknown ThresholdType {kind[:32]!r}")
    threshold_type: Literal["Actual", "Forecasted"] = "Forecasted" if kind.lower() == "forecasted" else "Actual"
    fired_at = _datetime(essentials.get("firedDateTime"), "essentials.firedDateTime")
    start = _text(alert_data.get("BudgetStartDate"), "AlertData.BudgetStartDate")
    threshold_raw = _text(alert_data.get("NotificationThresholdAmount"), "AlertData.NotificationThresholdAmount")
    scope = _text(alert_data.get("Scope"), "AlertData.Scope")
    budget_id = _text(alert_data.get("BudgetId"), "AlertData.BudgetId")
    # essentials.alertId is shared by every alert of the scope (".../alerts/Test_Alert" in the samples), so the
    # notification is identified by the budget, its period, the threshold and the kind.
    base = _text(essentials.get("alertId"), "essentials.alertId")
    alert_id = "cost:" + _digest(base, budget_id or name, start, threshold_raw, threshold_type,
                                 budget_period(fired_at or received))
    return BudgetAlert(
        schema="common", alert_id=alert_id, condition="Fired", budget_name=name, scope=scope,
        threshold_type=threshold_type, budget=parse_amount(alert_data.get("BudgetThreshold")),
        spent=parse_amount(alert_data.get("SpentAmount")),
        forecast=parse_amount(alert_data.get("ForecastedTotalForPeriod")),
        threshold_amount=parse_amount(threshold_raw), unit=_text(alert_data.get("Unit"), "AlertData.Unit")[:16],
        fired_at=fired_at, budget_start=start, description=_text(essentials.get("description"), "description"))


def canonical(payload: Any) -> str:
    """A bounded canonical JSON text of a payload, for audit."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)[:8192]

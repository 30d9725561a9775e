"""Azure Monitor alert payloads → one normalised, bounded `Alert`.

Accepted: the common alert schema (`schemaId: azureMonitorCommonAlertSchema`) for every signal type, and the
legacy metric-alert webhook schema (`schemaId: AzureMonitorMetricAlert`). Anything else is a `PayloadError`
whose message says what was wrong; the HTTP layer turns it into a 400.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

COMMON_SCHEMA = "azureMonitorCommonAlertSchema"
LEGACY_METRIC_SCHEMA = "AzureMonitorMetricAlert"

MAX_PROPERTIES = 50
MAX_KEY = 128
MAX_VALUE = 2048
MAX_TEXT = 1024
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Azure Monitor's "test action group" sends some signal types (Service Health) with a 64-character alert id.
_TEST_ALERT_ID = re.compile(r"^[0-9A-Za-z]{32,128}$")
BUDGET_SCHEMA = "AIP Budget Notification"
COST_SERVICE = "CostAlerts"


class PayloadError(ValueError):
    """The request body is not an alert Healer can act on; the message names what was wrong."""


class Alert(BaseModel):
    schema_id: Literal["common", "legacy-metric"]
    alert_id: str
    rule: str
    monitor_condition: Literal["Fired", "Resolved"]
    fired_at: dt.datetime
    resolved_at: dt.datetime | None = None
    signal_type: str = ""
    monitoring_service: str = ""
    severity: str = ""
    target_ids: list[str] = Field(default_factory=list)
    custom_properties: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    @property
    def fired(self) -> bool:
        return self.monitor_condition == "Fired"


def _text(value: Any, field: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    if value is None:
        if required:
            raise PayloadError(f"missing {field}")
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a string")
    if required and not value.strip():
        raise PayloadError(f"missing {field}")
    return value[:limit]


def parse_azure_time(value: Any) -> dt.datetime:
    """An Azure ISO 8601 timestamp ('Z', up to 7 fractional digits) as an aware datetime (UTC if no offset).

    Raises ValueError for anything else."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not an ISO 8601 timestamp")
    text = value.strip().replace("Z", "+00:00")
    # Azure sends 7 fractional digits; Python 3.11 parses at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _time(value: Any, field: str, *, required: bool = True) -> dt.datetime | None:
    if value in (None, ""):
        if required:
            raise PayloadError(f"missing {field}")
        return None
    try:
        return parse_azure_time(value)
    except ValueError:
        raise PayloadError(f"{field} must be an ISO 8601 timestamp") from None


def _properties(value: Any, field: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{field} must be an object")
    if len(value) > MAX_PROPERTIES:
        raise PayloadError(f"{field} has more than {MAX_PROPERTIES} entries")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or len(k) > MAX_KEY:
            raise PayloadError(f"{field} keys must be strings of at most {MAX_KEY} characters")
        if v is None:
            continue
        if not isinstance(v, (str, int, float, bool)):
            raise PayloadError(f"{field}.{k} must be a string")
        sv = str(v)
        if len(sv) > MAX_VALUE:
            raise PayloadError(f"{field}.{k} is longer than {MAX_VALUE} characters")
        out[k] = sv
    return out


def _targets(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise PayloadError("essentials.alertTargetIDs must be a list of strings")
    return [x[:512] for x in value[:20]]


def parse_alert(payload: Any) -> Alert:
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object")
    schema = payload.get("schemaId")
    data = payload.get("data")
    if schema is None:
        raise PayloadError(
            f"missing schemaId: expected {COMMON_SCHEMA!r} (enable the common alert schema on the action group) or "
            f"{LEGACY_METRIC_SCHEMA!r}")
    if _is_budget(schema, data):
        raise PayloadError("this is a Cost Management budget alert: send it to /api/alerts/budget")
    if schema == COMMON_SCHEMA:
        if not isinstance(data, dict):
            raise PayloadError("data must be an object")
        return _parse_common(data)
    if schema == LEGACY_METRIC_SCHEMA:
        if not isinstance(data, dict):
            raise PayloadError("data must be an object")
        return _parse_legacy_metric(data)
    shown = schema if isinstance(schema, str) else type(schema).__name__
    raise PayloadError(
        f"unsupported schemaId {str(shown)[:80]!r}: expected {COMMON_SCHEMA!r} (enable the common alert schema on "
        f"the action group) or {LEGACY_METRIC_SCHEMA!r}")


def _is_budget(schema: Any, data: Any) -> bool:
    if schema == BUDGET_SCHEMA:
        return True
    ess = data.get("essentials") if isinstance(data, dict) else None
    return schema == COMMON_SCHEMA and isinstance(ess, dict) and ess.get("monitoringService") == COST_SERVICE


def _parse_common(data: dict[str, Any]) -> Alert:
    ess = data.get("essentials")
    if not isinstance(ess, dict):
        raise PayloadError("data.essentials must be an object")
    alert_path = _text(ess.get("alertId"), "essentials.alertId", required=True, limit=512)
    alert_id = alert_path.rstrip("/").rsplit("/", 1)[-1]
    if not (_GUID.match(alert_id) or _TEST_ALERT_ID.match(alert_id)):
        raise PayloadError("essentials.alertId must end with the alert's GUID (or the 32-128 letters and digits "
                           "that test action group notifications carry)")
    condition = ess.get("monitorCondition")
    if condition not in ("Fired", "Resolved"):
        raise PayloadError("essentials.monitorCondition must be 'Fired' or 'Resolved'")
    return Alert(
        schema_id="common",
        alert_id=alert_id.lower(),
        rule=_text(ess.get("alertRule"), "essentials.alertRule", required=True, limit=260),
        monitor_condition=condition,
        fired_at=_time(ess.get("firedDateTime"), "essentials.firedDateTime"),
        resolved_at=_time(ess.get("resolvedDateTime"), "essentials.resolvedDateTime", required=False),
        signal_type=_text(ess.get("signalType"), "essentials.signalType", limit=40),
        monitoring_service=_text(ess.get("monitoringService"), "essentials.monitoringService", limit=80),
        severity=_text(ess.get("severity"), "essentials.severity", limit=10),
        target_ids=_targets(ess.get("alertTargetIDs")),
        custom_properties=_properties(data.get("customProperties"), "data.customProperties"),
        description=_text(ess.get("description"), "essentials.description"),
    )


def _condition_key(condition: Any) -> str:
    """What names the legacy rule's condition: its metrics, namespaces, operators and dimensions (not the values
    observed, which differ between Activated and Resolved), in a stable order."""
    if not isinstance(condition, dict) or not isinstance(condition.get("allOf"), list):
        return ""
    parts = []
    for crit in condition["allOf"][:10]:
        if not isinstance(crit, dict):
            continue
        dims = crit.get("dimensions") if isinstance(crit.get("dimensions"), list) else []
        dim_text = ",".join(sorted(f"{d.get('name')}={d.get('value')}" for d in dims[:20] if isinstance(d, dict)))
        parts.append("|".join(str(crit.get(k, ""))[:256] for k in ("metricName", "metricNamespace", "operator",
                                                                   "timeAggregation")) + "|" + dim_text[:1024])
    return ";".join(sorted(parts)).lower()


def legacy_alert_id(rule_id: str, resource_id: str, condition: str) -> str:
    """A GUID-shaped id for a legacy metric alert, the same for its Activated and its Resolved (the schema carries no
    alert id): derived from the rule, the resource and the condition, never the timestamp or the status."""
    text = f"{rule_id.lower()}|{resource_id.lower()}|{condition}"
    h = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _parse_legacy_metric(data: dict[str, Any]) -> Alert:
    ctx = data.get("context")
    if not isinstance(ctx, dict):
        raise PayloadError("data.context must be an object")
    status = data.get("status")
    if status not in ("Activated", "Resolved"):
        raise PayloadError("data.status must be 'Activated' or 'Resolved'")
    rule_id = _text(ctx.get("id"), "data.context.id", required=True, limit=512)
    resource_id = _text(ctx.get("resourceId"), "data.context.resourceId", limit=512)
    timestamp = _time(ctx.get("timestamp"), "data.context.timestamp")
    alert_id = legacy_alert_id(rule_id, resource_id, _condition_key(ctx.get("condition")))
    fired = status == "Activated"
    return Alert(
        schema_id="legacy-metric",
        alert_id=alert_id,
        rule=_text(ctx.get("name"), "data.context.name", required=True, limit=260),
        monitor_condition="Fired" if fired else "Resolved",
        fired_at=timestamp,
        resolved_at=None if fired else timestamp,
        signal_type="Metric",
        monitoring_service="Platform",
        severity=_text(ctx.get("severity"), "data.context.severity", limit=10),
        target_ids=[resource_id] if resource_id else [],
        custom_properties=_properties(data.get("properties"), "data.properties"),
        description=_text(ctx.get("description"), "data.context.description"),
    )

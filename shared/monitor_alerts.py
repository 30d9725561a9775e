"""Azure Monitor alerts, for every healer (AlertsManagement through `azure-mgmt-alertsmanagement`, lazy-imported):

* `alert_condition`: a fired alert's current `monitorCondition` (the downshift healer asks when a Resolved may have
  been lost); anything Healer cannot read for sure is unknown (None), never "Resolved";
* `acknowledge`: after a healer acted on (or refused) an alert, change its state to Acknowledged with a comment naming
  the audit record, so the on-call engineer sees in the portal that Healer handled it. Optional per healer
  (`HEALER_ALERT_ACK`, off by default); best effort: a failure is reported in the return value, never raised, and an
  alert already Acknowledged or Closed by a human is left as it is.

The alert's subscription comes from the alert's own id (`/subscriptions/<sub>/providers/Microsoft.AlertsManagement/
alerts/<guid>`) or the resource it concerns. The endpoint is `HEALER_ALERTS_ENDPOINT` (default: ARM).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from shared.config import Settings

log = logging.getLogger("healer.monitor_alerts")
API_VERSION = "2019-05-05-preview"
MAX_COMMENT = 1000
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SUB = re.compile(r"^/subscriptions/([0-9a-fA-F-]{36})(/|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    condition: Literal["Fired", "Resolved"]
    state: str                                  # New | Acknowledged | Closed
    resolved_at: dt.datetime | None = None


def subscription_of(*resource_ids: str) -> str | None:
    """The subscription id of the first resource id that names one."""
    for rid in resource_ids:
        m = _SUB.match(rid or "")
        if m:
            return m.group(1).lower()
    return None


def enabled(settings: Settings, healer: str) -> bool:
    names = {n.strip().lower() for n in (settings.get("HEALER_ALERT_ACK") or "").split(",") if n.strip()}
    return healer.lower() in names


@lru_cache(maxsize=32)
def _client(endpoint: str, audience: str, subscription: str, client_id: str | None) -> Any:
    from azure.mgmt.alertsmanagement import AlertsManagementClient

    from shared.identity import credential
    return AlertsManagementClient(credential(client_id), subscription, base_url=endpoint,
                                  credential_scopes=[audience.rstrip("/") + "/.default"])


def client(settings: Settings, subscription: str) -> Any:
    endpoint = settings.get("HEALER_ALERTS_ENDPOINT") or settings.require("HEALER_ARM_ENDPOINT")
    return _client(endpoint.rstrip("/"), settings.require("HEALER_ARM_AUDIENCE"), subscription,
                   settings.get("AZURE_CLIENT_ID"))


def clear_caches() -> None:
    _client.cache_clear()


def alert_condition(settings: Settings, subscription: str | None, alert_id: str) -> Condition | None:
    """The alert's current condition in Azure Monitor, or None when it cannot be known (not found, no access, an
    error, an unreadable answer)."""
    if not subscription or not _GUID.match(alert_id or ""):
        return None
    from azure.core.exceptions import AzureError
    try:
        alert = client(settings, subscription).alerts.get_by_id(alert_id, api_version=API_VERSION)
    except AzureError as exc:
        log.warning("alert %s: condition unknown (%s)", alert_id, type(exc).__name__)
        return None
    essentials = getattr(getattr(alert, "properties", None), "essentials", None)
    condition = getattr(essentials, "monitor_condition", None)
    if condition not in ("Fired", "Resolved"):
        return None
    return Condition(condition, str(getattr(essentials, "alert_state", "") or ""),
                     getattr(essentials, "monitor_condition_resolved_date_time", None))


ACK_OUTCOMES = frozenset({"acted", "refused", "escalated", "ignored"})   # acted on, or refused to act


def comment_for(healer: str, outcome: str, day: dt.date, resource: str, subject: str, reason: str = "") -> str:
    """The acknowledgement comment: which healer did what, and the audit query that lists its record."""
    from urllib.parse import urlencode
    link = "GET /api/audit?" + urlencode({"day": day.isoformat(), "healer": healer, "outcome": outcome,
                                          "resource": resource[:400]})
    text = f"Healer {healer}: {outcome} (audit record subject {subject[:80]}; {link})"
    return (text + (f" — {reason[:400]}" if reason else ""))[:MAX_COMMENT]


def acknowledge_alert(settings: Settings, healer: str, alert: Any, resource: str, outcome: str,
                      now: dt.datetime, reason: str = "", subject: str = "") -> str:
    """After a healer decided on a fired alert (`shared.alerts.Alert`): acknowledge it when the healer acted on or
    refused it and acknowledgement is on for that healer. Never raises."""
    if outcome not in ACK_OUTCOMES or not getattr(alert, "fired", False) or not enabled(settings, healer):
        return "off"
    sub = subscription_of(*(getattr(alert, "target_ids", None) or []), resource)
    comment = comment_for(healer, outcome, now.date(), resource, subject or alert.alert_id, reason)
    result = acknowledge(settings, healer, sub, alert.alert_id, comment)
    log.info("alert %s (%s %s): %s", alert.alert_id, healer, outcome, result)
    return result


def acknowledge(settings: Settings, healer: str, subscription: str | None, alert_id: str, comment: str) -> str:
    """Acknowledge a fired alert with `comment`. Returns 'acknowledged', 'off', 'left (<state>)' or 'failed: <why>';
    never raises."""
    if not enabled(settings, healer):
        return "off"
    if not subscription or not _GUID.match(alert_id or ""):
        return "failed: the alert's subscription or id is unknown"
    try:
        from azure.core.exceptions import AzureError
        from azure.mgmt.alertsmanagement.models import Comments
        alerts = client(settings, subscription).alerts
        current = alerts.get_by_id(alert_id, api_version=API_VERSION)
        state = getattr(getattr(getattr(current, "properties", None), "essentials", None), "alert_state", None)
        if state in ("Acknowledged", "Closed"):
            return f"left ({state})"       # a human (or an earlier delivery) already handled it
        alerts.change_state(alert_id, "Acknowledged", Comments(comments=comment[:MAX_COMMENT]),
                            api_version=API_VERSION)
        return "acknowledged"
    except AzureError as exc:
        return f"failed: {type(exc).__name__} HTTP {getattr(exc, 'status_code', None) or '?'}"
    except Exception as exc:
        log.warning("acknowledging alert %s failed", alert_id, exc_info=True)
        return f"failed: {type(exc).__name__}"

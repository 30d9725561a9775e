"""Collect the configuration changes since the swap (the I/O half of `attribution.py`).

* production's app settings and connection strings, read now and fingerprinted (hashes only) against the
  fingerprint Healer stored at its previous observation;
* the Activity Log's `Microsoft.Web/sites/config/write` operations on production since the swap
  (`azure-mgmt-monitor`, imported lazily);
* when the app uses App Configuration, the key-values last modified since the swap (revisions API).

A source that cannot be read is reported (`unavailable`), never guessed: the audit says what was not checked.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from healers.rollback.attribution import MAX_CHANGES, ConfigChange, fingerprint, fingerprint_changes
from shared.config import RollbackTarget, Settings
from shared.resource_ids import SiteId
from shared.webapps import web_client

log = logging.getLogger("healer.rollback")
CONFIG_WRITE = "microsoft.web/sites/config/write"


@dataclass
class Found:
    changes: list[ConfigChange] = field(default_factory=list)
    prints: dict[str, Any] = field(default_factory=dict)       # the fingerprint to store (hashes only)
    unavailable: list[str] = field(default_factory=list)       # sources that could not be read, and why


@lru_cache(maxsize=16)
def _monitor(subscription: str, endpoint: str, audience: str, client_id: str | None):
    from azure.mgmt.monitor import MonitorManagementClient
    from shared.identity import credential
    return MonitorManagementClient(credential(client_id), subscription, base_url=endpoint,
                                   credential_scopes=[audience.rstrip("/") + "/.default"])


def monitor_client(settings: Settings, subscription: str):
    return _monitor(subscription, settings.require("HEALER_ARM_ENDPOINT"), settings.require("HEALER_ARM_AUDIENCE"),
                    settings.get("AZURE_CLIENT_ID"))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def production_prints(settings: Settings, site: SiteId, now: dt.datetime) -> dict[str, Any]:
    """Hashes of production's app settings and connection strings (values never leave this function)."""
    ops = web_client(settings, site.subscription).web_apps
    app_settings = ops.list_application_settings(site.resource_group, site.name).properties or {}
    conns = ops.list_connection_strings(site.resource_group, site.name).properties or {}
    salt = site.app_id.lower()
    return {"at": now.isoformat(), "app-settings": fingerprint({k: v or "" for k, v in app_settings.items()}, salt),
            "connection-strings": fingerprint({k: f"{v.type}:{v.value}" for k, v in conns.items()}, salt)}


def activity_log_changes(settings: Settings, site: SiteId, since: dt.datetime, now: dt.datetime
                         ) -> list[ConfigChange]:
    """Succeeded config writes on the production site (not its slots) between `since` and `now`."""
    client = monitor_client(settings, site.subscription)
    flt = (f"eventTimestamp ge '{_iso(since)}' and eventTimestamp le '{_iso(now)}' and "
           f"resourceGroupName eq '{site.resource_group}'")
    prefix = site.app_id.lower() + "/config"
    out = []
    for n, event in enumerate(client.activity_logs.list(
            filter=flt, select="eventTimestamp,operationName,caller,status,resourceId")):
        if n >= 1000:
            break
        op = (event.operation_name.value if event.operation_name else "") or ""
        rid = (event.resource_id or "").lower()
        status = (event.status.value if event.status else "") or ""
        if op.lower() != CONFIG_WRITE or not rid.startswith(prefix) or status.lower() != "succeeded":
            continue
        at = event.event_timestamp
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        out.append(ConfigChange(source="activity-log", what=f"config write {rid.rsplit('/', 1)[-1][:60]} on "
                                f"production", before=at, after=at, by=(event.caller or "?")[:200]))
    return out[:MAX_CHANGES]


def app_configuration_changes(settings: Settings, target: RollbackTarget, since: dt.datetime) -> list[ConfigChange]:
    """Key-values of the app's App Configuration store modified after `since` (newest revisions first)."""
    from azure.appconfiguration import AzureAppConfigurationClient
    from shared.identity import credential
    client = AzureAppConfigurationClient(target.app_config_endpoint, credential(settings.get("AZURE_CLIENT_ID")))
    out = []
    try:
        for n, rev in enumerate(client.list_revisions(key_filter=target.app_config_keys,
                                                      label_filter=target.app_config_label)):
            if n >= 500:
                break
            at = rev.last_modified
            if at is None:
                continue
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
            if at <= since:
                break  # revisions come newest first
            label = f" (label {rev.label})" if rev.label else ""
            by = "Healer" if (rev.tags or {}).get("managed-by") == "healer" else None
            out.append(ConfigChange(source="app-configuration", what=f"App Configuration key {rev.key[:120]}{label}",
                                    before=at, after=at, by=by))
    finally:
        client.close()
    return out[:MAX_CHANGES]


def collect(settings: Settings, target: RollbackTarget, site: SiteId, *, swap_at: dt.datetime | None,
            stored: dict | None, now: dt.datetime, ignore: set[str]) -> Found:
    """Every configuration change Healer can see since the swap. Each source fails on its own."""
    found = Found()
    try:
        found.prints = production_prints(settings, site, now)
        found.changes += fingerprint_changes(stored, found.prints, now=now, swap_at=swap_at, ignore=ignore)
    except Exception as exc:
        found.unavailable.append(f"app settings fingerprint: {type(exc).__name__}")
    if swap_at is None:
        return found
    if target.activity_log:
        try:
            found.changes += activity_log_changes(settings, site, swap_at, now)
        except Exception as exc:
            found.unavailable.append(f"Activity Log: {type(exc).__name__}: {str(exc)[:120]}")
    if target.app_config_endpoint:
        try:
            found.changes += app_configuration_changes(settings, target, swap_at)
        except Exception as exc:
            found.unavailable.append(f"App Configuration: {type(exc).__name__}: {str(exc)[:120]}")
    return found

"""Where an app reads its model, and how Healer changes it: Azure App Configuration (preferred) or an App Service
app setting (app-wide fallback). Both read the current value just before a write, write conditionally, and read
the value back.

App Configuration: tenant `*` is the key with the null label; a tenant is the same key with the tenant's label
(`tenantKeys: label`) or the key `<key>:<tenant>` (`tenantKeys: key`). A tenant without its own key-value inherits
the app-wide value. Writes carry the ETag read (`If-Match`, or `If-None-Match: *` when creating), tag the value
`managed-by=healer`, then bump the sentinel key that apps' provider refresh watches. A locked key-value or a
`pinned=true` tag is a human pin; a pin on the app-wide value also pins every tenant that inherits it (Healer then
holds those tenants instead of shadowing the pinned value with tenant values).

App setting: the whole dictionary is read, changed in one name and written back (the update replaces it), so other
settings and Key Vault references survive; the setting and its marker `HEALER_MANAGED_<name>` (the value Healer
wrote: the "tag") are made slot-sticky so a rollback swap does not carry the override away. `HEALER_PIN_<name>=true`
pins. Changing app settings restarts the app: the audit says so.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from healers.downshift.core import HEALER, ObservedModel
from shared.config import DownshiftApp, Settings
from shared.resource_ids import parse_site_id

MANAGED_TAG = "managed-by"
PIN_TAG = "pinned"
REASON_TAG = "healer-reason"
APP_SETTING_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class WriteConflict(Exception):
    """The value changed between Healer's read and its write (ETag / compare mismatch)."""


class WritePinned(Exception):
    """The value is locked (read-only): a human pinned it."""


@dataclass(frozen=True)
class Current:
    value: str | None
    written_by: str | None = None
    pinned: bool = False
    etag: str | None = None
    own: bool = True               # False: the tenant has no own value and inherits the app-wide one

    @property
    def observed(self) -> ObservedModel:
        return ObservedModel(self.value, self.written_by, self.pinned)


@dataclass
class WriteResult:
    value: str | None              # what reading back gave
    confirmed: bool
    details: dict[str, Any] = field(default_factory=dict)


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------- App Configuration

@lru_cache(maxsize=16)
def _appconfig_client(endpoint: str, client_id: str | None) -> Any:
    from azure.appconfiguration import AzureAppConfigurationClient
    from shared.identity import credential
    from shared.transport import sdk_options
    return AzureAppConfigurationClient(endpoint, credential(client_id), **sdk_options())


class AppConfigActuator:
    kind = "appConfiguration"

    def __init__(self, app: DownshiftApp, client: Any):
        self.app, self.client = app, client

    def ident(self, tenant: str) -> tuple[str, str | None]:
        if tenant == "*":
            return self.app.key, None
        if self.app.tenant_keys == "label":
            return self.app.key, tenant
        return f"{self.app.key}:{tenant}", None

    @staticmethod
    def _current(kv: Any) -> Current:
        tags = kv.tags or {}
        return Current(kv.value, HEALER if tags.get(MANAGED_TAG) == HEALER else None,
                       bool(kv.read_only) or _truthy(tags.get(PIN_TAG)), kv.etag, True)

    def _get(self, key: str, label: str | None) -> Any:
        from azure.core.exceptions import ResourceNotFoundError
        try:
            return self.client.get_configuration_setting(key, label=label)
        except ResourceNotFoundError:
            return None

    def read(self, tenant: str) -> Current:
        kv = self._get(*self.ident(tenant))
        if kv is not None:
            return self._current(kv)
        if tenant != "*":
            base = self._get(*self.ident("*"))
            return self._inherit(self._current(base) if base is not None else None)
        return Current(None, None, False, None, False)

    @staticmethod
    def _inherit(base: Current | None) -> Current:
        """What a tenant without its own value reads: the app-wide value, and its pin (a human pin on the app-wide
        value covers every tenant that inherits it, so Healer never shadows it with a tenant value). Not Healer's
        own value (no tag), whoever wrote the app-wide one."""
        return Current(base.value if base else None, None, bool(base and base.pinned), None, False)

    def read_all(self) -> dict[str, Current]:
        """Every tenant's own value in one paged listing, plus "*"; tenants missing here inherit "*"."""
        key = self.app.key
        out: dict[str, Current] = {}
        if self.app.tenant_keys == "label":
            items = self.client.list_configuration_settings(key_filter=_escape(key), label_filter="*")
            for kv in items:
                if kv.key == key:
                    out["*" if kv.label is None else kv.label] = self._current(kv)
        else:
            items = self.client.list_configuration_settings(key_filter=_escape(key) + "*", label_filter="\0")
            for kv in items:
                if kv.key == key:
                    out["*"] = self._current(kv)
                elif kv.key.startswith(key + ":"):
                    out[kv.key[len(key) + 1:]] = self._current(kv)
        return out

    def inherited(self, tenant: str, known: dict[str, Current]) -> Current:
        if tenant in known:
            return known[tenant]
        return self._inherit(known.get("*"))

    def write(self, tenant: str, value: str, current: Current, reason: str, now: dt.datetime,
              remove: bool = False) -> WriteResult:
        """Set (or, `remove`, delete Healer's own tenant key-value) guarded by the ETag read; bump the sentinel;
        read back."""
        from azure.appconfiguration import ConfigurationSetting, ResourceReadOnlyError
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        key, label = self.ident(tenant)
        try:
            if remove:
                self.client.delete_configuration_setting(key, label=label, etag=current.etag,
                                                         match_condition=MatchConditions.IfNotModified)
            else:
                setting = ConfigurationSetting(key=key, label=label, value=value,
                                               tags={MANAGED_TAG: HEALER, REASON_TAG: reason[:200]})
                if current.own and current.etag:
                    self.client.set_configuration_setting(setting, match_condition=MatchConditions.IfNotModified,
                                                          etag=current.etag)
                else:
                    self.client.set_configuration_setting(setting, match_condition=MatchConditions.IfMissing)
        except ResourceReadOnlyError as exc:
            raise WritePinned(f"{key} [{label or 'null label'}] is locked") from exc
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            raise WriteConflict(f"{key} [{label or 'null label'}] changed since it was read "
                                f"(HTTP {getattr(exc, 'status_code', '?')})") from exc
        # The write landed: from here on a failure is reported, never raised, so the shell records the switch.
        details: dict[str, Any] = {
            "actuator": self.kind, "endpoint": self.app.app_config_endpoint, "key": key, "label": label,
            "operation": "delete (inherit app-wide)" if remove else "set", "sentinel": self.app.sentinel_key,
            "restart": False}
        details.update(self.bump_sentinel(now))
        try:
            back: Current | None = self.read(tenant)
        except Exception as exc:
            back, details["readBackError"] = None, _failure(exc)
        value_back = back.value if back is not None else None
        confirmed = (back is not None and "sentinelError" not in details and value_back == value
                     and (remove or back.written_by == HEALER))
        details["readBack"] = value_back
        return WriteResult(value_back, confirmed, details)

    def bump_sentinel(self, now: dt.datetime) -> dict[str, Any]:
        """Bump the key apps' provider refresh watches; reports a failure instead of raising."""
        from azure.appconfiguration import ConfigurationSetting
        sentinel = now.astimezone(dt.UTC).isoformat()
        try:
            self.client.set_configuration_setting(ConfigurationSetting(
                key=self.app.sentinel_key, value=sentinel, tags={MANAGED_TAG: HEALER}))
            return {"sentinelValue": sentinel}
        except Exception as exc:
            return {"sentinelError": _failure(exc)}


class BlockFlag:
    """The block flag of the last rung (`healers.downshift.block`): the key `blockKey` (default `ai:blocked`) with
    the tenant's label (or `<blockKey>:<tenant>`; tenant `*` = the null label, which every tenant without its own
    flag inherits), value `true`, tagged `managed-by=healer`. Lifting it deletes Healer's own key-value; a flag a
    human set (no Healer tag) is never removed, and a locked one is never written."""

    def __init__(self, actuator: AppConfigActuator):
        self.actuator, self.app, self.client = actuator, actuator.app, actuator.client

    def ident(self, tenant: str) -> tuple[str, str | None]:
        if tenant == "*":
            return self.app.block_key, None
        if self.app.tenant_keys == "label":
            return self.app.block_key, tenant
        return f"{self.app.block_key}:{tenant}", None

    def read(self, tenant: str) -> Current:
        kv = self.actuator._get(*self.ident(tenant))
        return AppConfigActuator._current(kv) if kv is not None else Current(None, None, False, None, False)

    def write(self, tenant: str, on: bool, current: Current, reason: str, now: dt.datetime) -> WriteResult:
        """Set (`on`) or lift the flag, guarded by the ETag read; bump the sentinel; read back."""
        from azure.appconfiguration import ConfigurationSetting, ResourceReadOnlyError
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        key, label = self.ident(tenant)
        details: dict[str, Any] = {"actuator": "appConfiguration", "endpoint": self.app.app_config_endpoint,
                                   "key": key, "label": label, "restart": False}
        if current.pinned:
            raise WritePinned(f"{key} [{label or 'null label'}] is locked")
        human = current.value is not None and current.written_by != HEALER
        if human or (on and _truthy(current.value)) or (not on and current.value is None):
            details["operation"] = "none" + (" (a human's flag is left as it is)" if human else "")
            return WriteResult(current.value, (on == _truthy(current.value)) or human, details)
        try:
            if on:
                setting = ConfigurationSetting(key=key, label=label, value="true",
                                               tags={MANAGED_TAG: HEALER, REASON_TAG: reason[:200]})
                if current.etag:
                    self.client.set_configuration_setting(setting, match_condition=MatchConditions.IfNotModified,
                                                          etag=current.etag)
                else:
                    self.client.set_configuration_setting(setting, match_condition=MatchConditions.IfMissing)
            else:
                self.client.delete_configuration_setting(key, label=label, etag=current.etag,
                                                         match_condition=MatchConditions.IfNotModified)
        except ResourceReadOnlyError as exc:
            raise WritePinned(f"{key} [{label or 'null label'}] is locked") from exc
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            raise WriteConflict(f"{key} [{label or 'null label'}] changed since it was read "
                                f"(HTTP {getattr(exc, 'status_code', '?')})") from exc
        details["operation"] = "set true" if on else "delete"
        details.update(self.actuator.bump_sentinel(now))
        try:
            back: Current | None = self.read(tenant)
        except Exception as exc:
            back, details["readBackError"] = None, _failure(exc)
        value = back.value if back is not None else None
        details["readBack"] = value
        confirmed = back is not None and "sentinelError" not in details and (
            (_truthy(value) and back.written_by == HEALER) if on else value is None)
        return WriteResult(value, confirmed, details)


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: HTTP {getattr(exc, 'status_code', None) or '?'}"


def _escape(text: str) -> str:
    return re.sub(r"([\\*,])", r"\\\1", text)


# ---------------------------------------------------------------------------------------------- App Service setting

class AppSettingActuator:
    kind = "appSetting"

    def __init__(self, app: DownshiftApp, client: Any):
        if not APP_SETTING_NAME.match(app.key):
            raise ValueError(f"{app.key!r} is not a valid app setting name for the appSetting actuator")
        self.app, self.client = app, client
        self.site = parse_site_id(app.resource_id)
        self.managed = f"HEALER_MANAGED_{app.key}"
        self.pin = f"HEALER_PIN_{app.key}"

    def _settings(self) -> dict[str, str]:
        result = self.client.web_apps.list_application_settings(self.site.resource_group, self.site.name)
        return dict(result.properties or {})

    def _current(self, props: dict[str, str]) -> Current:
        value = props.get(self.app.key)
        by = HEALER if value is not None and props.get(self.managed) == value else None
        return Current(value, by, _truthy(props.get(self.pin)), None, True)

    def read(self, tenant: str) -> Current:
        if tenant != "*":
            raise ValueError("the app-setting actuator is app-wide (tenant '*')")
        return self._current(self._settings())

    def read_all(self) -> dict[str, Current]:
        return {"*": self.read("*")}

    def inherited(self, tenant: str, known: dict[str, Current]) -> Current:
        return known.get(tenant) or Current(None)

    def bump_sentinel(self, now: dt.datetime) -> dict[str, Any]:
        return {}  # no sentinel: App Service restarts the app to apply a changed setting

    def write(self, tenant: str, value: str, current: Current, reason: str, now: dt.datetime,
              remove: bool = False) -> WriteResult:
        from azure.mgmt.web.models import SlotConfigNamesResource, StringDictionary
        rg, name = self.site.resource_group, self.site.name
        props = self._settings()
        if props.get(self.app.key) != current.value:
            raise WriteConflict(f"app setting {self.app.key} changed since it was read")
        if _truthy(props.get(self.pin)):
            raise WritePinned(f"app setting {self.app.key} is pinned ({self.pin})")
        # Sticky first: if that fails nothing was written, and a value Healer wrote is never swap-able.
        sticky = self.client.web_apps.list_slot_configuration_names(rg, name)
        names = list(sticky.app_setting_names or [])
        added = [n for n in (self.app.key, self.managed) if n not in names]
        if added:
            self.client.web_apps.update_slot_configuration_names(rg, name, SlotConfigNamesResource(
                app_setting_names=names + added, connection_string_names=list(sticky.connection_string_names or []),
                azure_storage_config_names=list(sticky.azure_storage_config_names or [])))
        before_names = set(props)
        props[self.app.key] = value
        props[self.managed] = value
        self.client.web_apps.update_application_settings(rg, name, StringDictionary(properties=props))
        details: dict[str, Any] = {
            "actuator": self.kind, "setting": self.app.key, "marker": self.managed, "madeSticky": added,
            "restart": "changing app settings restarts the app (App Service recycles it to apply them)"}
        try:  # the write landed: a failed read-back is reported, never raised
            back_props = self._settings()
        except Exception as exc:
            details.update(readBack=None, readBackError=_failure(exc))
            return WriteResult(None, False, details)
        back = self._current(back_props)
        kept = before_names <= set(back_props)
        details.update(readBack=back.value, settingsPreserved=kept, settingsCount=len(back_props))
        return WriteResult(back.value, back.value == value and back.written_by == HEALER and kept, details)


# ---------------------------------------------------------------------------------------------- factory

def actuator_for(settings: Settings, app: DownshiftApp) -> AppConfigActuator | AppSettingActuator:
    if app.actuator == "appConfiguration":
        assert app.app_config_endpoint
        return AppConfigActuator(app, _appconfig_client(app.app_config_endpoint, settings.get("AZURE_CLIENT_ID")))
    from shared.webapps import web_client
    return AppSettingActuator(app, web_client(settings, parse_site_id(app.resource_id).subscription))


def clear_caches() -> None:
    _appconfig_client.cache_clear()

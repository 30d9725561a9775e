"""Every setting Healer reads, in one place.

Settings come from the process environment (app settings in Azure, `local.settings.json` under `func start`).
`SETTINGS` below is the catalogue: the infra cross-check test compares it with what the Bicep sets.
JSON-valued settings are parsed and validated here; a bad value fails loudly at first use with the setting's
name, never silently falls back to something permissive.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Setting:
    name: str
    doc: str
    default: str | None = None
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Storage (state, queues, audit). Functions' own connection; identity-based form in Azure.
    Setting("AzureWebJobsStorage", "Storage connection string (local/Azurite). In Azure use the identity-based "
            "AzureWebJobsStorage__accountName (+ __credential=managedidentity, __clientId).", secret=True),
    Setting("AzureWebJobsStorage__accountName", "Storage account name for identity-based access."),
    Setting("AzureWebJobsStorage__clientId", "Client id of the user-assigned identity used for storage."),
    Setting("HEALER_TABLE_PREFIX", "Prefix of every Healer table name (letters/digits).", "healer"),
    # Identity and Azure endpoints
    Setting("AZURE_CLIENT_ID", "Client id of Healer's user-assigned managed identity."),
    Setting("HEALER_ARM_ENDPOINT", "Azure Resource Manager endpoint.", "https://management.azure.com"),
    Setting("HEALER_ARM_AUDIENCE", "Token audience for ARM.", "https://management.azure.com"),
    Setting("HEALER_ARM_POLL_SECONDS", "Fallback polling interval of ARM long-running operations "
            "(the service's Retry-After wins).", "10"),
    # Inbound authentication
    Setting("HEALER_AUTH_MODE", "'function-key' (default; the Functions host checks keys) or 'entra' "
            "(also require an Entra ID bearer token: Azure Monitor secure webhook, approvers).", "function-key"),
    Setting("HEALER_ENTRA_TENANT_ID", "Tenant whose tokens are accepted in 'entra' mode."),
    Setting("HEALER_ENTRA_AUDIENCE", "Audience (application ID URI or client id) Healer's tokens are issued for."),
    Setting("HEALER_ENTRA_JWKS_URL", "JWKS endpoint (default: the tenant's v2.0 discovery keys)."),
    Setting("HEALER_ENTRA_ISSUERS", "Comma-separated accepted issuers (default: the tenant's v1 and v2 issuers)."),
    Setting("HEALER_ENTRA_WEBHOOK_ROLE", "App role the action group's token must carry.",
            "ActionGroupsSecureWebhook"),
    Setting("HEALER_ENTRA_MONITOR_APP_ID", "Application id of Azure Monitor's secure-webhook caller "
            "(appid/azp claim).", "461e8683-5575-4561-ac7f-899cc907d62a"),
    Setting("HEALER_ENTRA_APPROVER_ROLE", "App role a human needs to approve actions or change controls.",
            "Healer.Approver"),
    Setting("HEALER_MAX_BODY_BYTES", "Largest request body accepted, in bytes.", "262144"),
    # Safety
    Setting("HEALER_KILL_SWITCH", "'true' stops every action (decisions are still recorded).", "false"),
    Setting("HEALER_DRY_RUN", "'true' decides and records but never acts.", "false"),
    Setting("HEALER_POLICY", "Policy document (JSON): allow/ask/deny rules per action and resource pattern. "
            "Missing or invalid means deny everything."),
    Setting("HEALER_NOTIFY_WEBHOOK_URL", "Where notifications (ask, escalations) are POSTed as JSON "
            "(Teams/Slack/Logic App).", secret=True),
    # Rollback healer
    Setting("HEALER_ROLLBACK_TARGETS", "JSON list of App Service apps Healer may roll back (the allowlist) "
            "with per-app options."),
    Setting("HEALER_ROLLBACK_RULE_MAP", "JSON object: alert rule name or id -> {resourceId, slot}, used when a "
            "rule has no healer.* customProperties."),
    Setting("HEALER_LEASE_SECONDS", "How long one worker holds an app's operation lease.", "300"),
    # Model downshift healer (issue 3)

    # Replication healer (issue 4)

    # Error-clustering healer (issue 5)

    # Telemetry
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "Enables OpenTelemetry export to Application Insights.",
            secret=True),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class RollbackTarget(BaseModel):
    """One App Service app Healer may roll back, and how."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resource_id: str = Field(alias="resourceId")
    slot: str = "staging"
    build_marker: str = Field("appSetting:BUILD_ID", alias="buildMarker")
    health_url: str | None = Field(None, alias="healthUrl")
    dry_run: bool = Field(False, alias="dryRun")
    max_rollbacks: int = Field(2, alias="maxRollbacks", ge=1)
    window_minutes: int = Field(1440, alias="windowMinutes", ge=1)
    max_build_age_minutes: int = Field(1440, alias="maxBuildAgeMinutes", ge=1)

    @field_validator("resource_id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        from shared.resource_ids import parse_site_id
        parse_site_id(v)
        return v.rstrip("/")

    @field_validator("build_marker")
    @classmethod
    def _marker(cls, v: str) -> str:
        if v in ("linuxFxVersion", "deploymentId") or (v.startswith("appSetting:") and len(v) > 11):
            return v
        raise ValueError("buildMarker must be 'appSetting:<NAME>', 'linuxFxVersion' or 'deploymentId'")

    @property
    def key(self) -> str:
        return self.resource_id.lower()


class RuleTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    resource_id: str = Field(alias="resourceId")
    slot: str | None = None


class Settings:
    """Typed, validated view of the environment. Cheap to build; parse work is cached per instance."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._env = dict(os.environ if environ is None else environ)

    def get(self, name: str) -> str | None:
        if name not in _DEFAULTS:
            raise KeyError(f"{name} is not a declared setting (add it to shared.config.SETTINGS)")
        value = self._env.get(name)
        return value if value not in (None, "") else _DEFAULTS[name]

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ConfigError(f"setting {name} is required")
        return value

    def _int(self, name: str) -> int:
        try:
            return int(self.require(name))
        except ValueError as exc:
            raise ConfigError(f"setting {name} must be an integer") from exc

    def _json(self, name: str) -> Any:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"setting {name} is not valid JSON: {exc.msg} at {exc.pos}") from exc

    # ----------------------------------------------------------------------------- safety
    @property
    def kill_switch(self) -> bool:
        return _truthy(self.get("HEALER_KILL_SWITCH"))

    @property
    def dry_run(self) -> bool:
        return _truthy(self.get("HEALER_DRY_RUN"))

    @property
    def policy_document(self) -> Any:
        return self._json("HEALER_POLICY")

    @property
    def max_body_bytes(self) -> int:
        return self._int("HEALER_MAX_BODY_BYTES")

    @property
    def lease_seconds(self) -> int:
        return self._int("HEALER_LEASE_SECONDS")

    @property
    def table_prefix(self) -> str:
        prefix = self.require("HEALER_TABLE_PREFIX")
        if not prefix.isalnum() or not prefix[0].isalpha():
            raise ConfigError("setting HEALER_TABLE_PREFIX must be letters and digits, starting with a letter")
        return prefix

    @property
    def arm_poll_seconds(self) -> float:
        try:
            return float(self.require("HEALER_ARM_POLL_SECONDS"))
        except ValueError as exc:
            raise ConfigError("setting HEALER_ARM_POLL_SECONDS must be a number") from exc

    @property
    def auth_mode(self) -> str:
        mode = self.require("HEALER_AUTH_MODE").lower()
        if mode not in ("function-key", "entra"):
            raise ConfigError("setting HEALER_AUTH_MODE must be 'function-key' or 'entra'")
        return mode

    # ----------------------------------------------------------------------------- rollback
    @cached_property
    def rollback_targets(self) -> dict[str, RollbackTarget]:
        raw = self._json("HEALER_ROLLBACK_TARGETS") or []
        if not isinstance(raw, list):
            raise ConfigError("setting HEALER_ROLLBACK_TARGETS must be a JSON list")
        try:
            targets = [RollbackTarget.model_validate(item) for item in raw]
        except ValidationError as exc:
            raise ConfigError(f"setting HEALER_ROLLBACK_TARGETS is invalid: {exc}") from exc
        return {t.key: t for t in targets}

    @cached_property
    def rollback_rule_map(self) -> dict[str, RuleTarget]:
        raw = self._json("HEALER_ROLLBACK_RULE_MAP") or {}
        if not isinstance(raw, dict):
            raise ConfigError("setting HEALER_ROLLBACK_RULE_MAP must be a JSON object")
        try:
            return {k.lower(): RuleTarget.model_validate(v) for k, v in raw.items()}
        except ValidationError as exc:
            raise ConfigError(f"setting HEALER_ROLLBACK_RULE_MAP is invalid: {exc}") from exc


def load_settings() -> Settings:
    return Settings()

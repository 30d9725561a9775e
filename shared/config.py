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
from typing import Any
from collections.abc import Mapping

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
    Setting("HEALER_ALERTS_ENDPOINT", "Azure Monitor AlertsManagement endpoint (alert condition, acknowledgement). "
            "Empty: HEALER_ARM_ENDPOINT."),
    Setting("HEALER_ALERT_ACK", "Comma-separated healers (rollback, downshift) that acknowledge the fired alert in "
            "Azure Monitor after acting on or refusing it, with a comment naming the audit record. Empty: none."),
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
    Setting("HEALER_ENTRA_READER_ROLE", "App role that may read the audit, approvals, controls and status "
            "(approvers may too).", "Healer.Reader"),
    Setting("HEALER_EASY_AUTH", "'true' when App Service Authentication (Easy Auth) fronts the app: the console's "
            "requests are then identified by the platform's X-MS-CLIENT-PRINCIPAL header (never trusted otherwise).",
            "false"),
    Setting("HEALER_CONSOLE_SECRET", "Key Vault reference: the secret that signs the console's CSRF tokens (Easy "
            "Auth mode).", secret=True),
    Setting("HEALER_MAX_BODY_BYTES", "Largest request body accepted, in bytes.", "262144"),
    # Safety
    Setting("HEALER_KILL_SWITCH", "'true' stops every action (decisions are still recorded).", "false"),
    Setting("HEALER_DRY_RUN", "'true' decides and records but never acts.", "false"),
    Setting("HEALER_POLICY", "Policy document (JSON): allow/ask/deny rules per action and resource pattern. "
            "Missing or invalid means deny everything."),
    Setting("HEALER_POLICY_LKG_MAX_AGE_SECONDS", "How long (seconds) the last-known-good policy may be used while "
            "HEALER_POLICY is unreadable (an unresolved Key Vault reference); 0 never. Each use is audited.", "3600"),
    Setting("HEALER_OPERATOR_KEY", "The operator key (a Key Vault reference in Azure): in function-key mode, "
            "approvals, controls, re-arm, release and runs also need it in the x-healer-operator-key header. No "
            "alert sender holds it. Empty: operator routes are refused in function-key mode.", secret=True),
    Setting("HEALER_AUDIT_RETENTION_DAYS", "Days of audit records kept in Table storage (Application Insights keeps "
            "its own copy by its own retention).", "90"),
    Setting("HEALER_DEDUPE_RETENTION_DAYS", "Days delivery dedupe records and decided approvals are kept.", "30"),
    Setting("HEALER_HOUSEKEEPING_SCHEDULE", "NCRONTAB of the daily retention run (read by the timer binding as "
            "%HEALER_HOUSEKEEPING_SCHEDULE%).", "0 17 3 * * *"),
    Setting("HEALER_NOTIFY_WEBHOOK_URL", "One generic JSON notification destination (Logic App or any webhook) "
            "getting the default events of every healer; kept for compatibility, see HEALER_NOTIFY_DESTINATIONS.",
            secret=True),
    Setting("HEALER_NOTIFY_DESTINATIONS", "JSON list of notification destinations (a Key Vault reference in Azure: "
            "it holds webhook URLs): name, format (teams = Adaptive Card to a Teams Workflows webhook, slack = Block "
            "Kit to an incoming webhook, generic = JSON), url, rules ([{healers, events}], first match wins; "
            "default: every healer, the default events).", secret=True),
    Setting("HEALER_PUBLIC_BASE_URL", "Healer's public base URL (https://<app>.azurewebsites.net), used for the "
            "absolute Approve/Reject links in notifications."),
    Setting("HEALER_APPROVAL_LINK_SECRET", "HMAC-SHA256 key (32+ characters) signing Approve/Reject links (a Key "
            "Vault reference in Azure). Empty: notifications carry no links.", secret=True),
    # Rollback healer
    Setting("HEALER_ROLLBACK_TARGETS", "JSON list of App Service apps Healer may roll back (the allowlist) "
            "with per-app options."),
    Setting("HEALER_ROLLBACK_RULE_MAP", "JSON object: alert rule name or id -> {resourceId, slot}, used when a "
            "rule has no healer.* customProperties."),
    Setting("HEALER_LEASE_SECONDS", "How long one worker holds an app's operation lease.", "300"),
    Setting("HEALER_ROLLBACK_LOGS_ENDPOINT", "Log Analytics query endpoint used to re-run a log alert's query "
            "after a rollback (proving the recovery).", "https://api.loganalytics.io"),
    # Model downshift healer (issue 3)
    Setting("HEALER_DOWNSHIFT_APPS", "JSON list of AI apps the downshift healer manages: resourceId, actuator "
            "(appConfiguration|appSetting), appConfigEndpoint, key, tenantKeys (label|key), sentinelKey, role, "
            "costMetric, tenantDimension, policy (ladder, thresholds, dwell, caps, timezone), tenants "
            "({tenant: {budget, timezone}}), defaultBudget, budgetNames, rules, probeUrl, dryRun."),
    Setting("HEALER_DOWNSHIFT_SCHEDULE", "NCRONTAB of the spend/drift tick (the timer binding reads it as "
            "%HEALER_DOWNSHIFT_SCHEDULE%, so it must be set as an app setting).", "0 */10 * * * *"),
    Setting("HEALER_DOWNSHIFT_SCHEMA", "'workspace' (AppMetrics, query the workspace) or 'classic' (customMetrics, "
            "query the Application Insights resource).", "workspace"),
    Setting("HEALER_DOWNSHIFT_WORKSPACE_ID", "Log Analytics workspace id with the apps' cost metric (workspace "
            "schema)."),
    Setting("HEALER_DOWNSHIFT_RESOURCE_ID", "Application Insights resource id with the apps' cost metric (classic "
            "schema)."),
    Setting("HEALER_DOWNSHIFT_LOGS_ENDPOINT", "Log Analytics query endpoint.", "https://api.loganalytics.io"),

    # Replication healer (issue 4)
    Setting("HEALER_REPLICATION_REGISTRIES", "JSON object: registry short name -> list of regions that must serve "
            "each pushed image (e.g. {\"myreg\": [\"eastus\", \"westeurope\"]}), or {\"regions\": [...], "
            "\"resourceId\": \"<registry resource id>\", \"degraded\": \"wait\"|\"exclude\"} to read its replicas "
            "from ARM. Events of other registries are refused and audited."),
    Setting("HEALER_REPLICATION_ENDPOINTS", "JSON object: regional registry host (<registry>.<region>.geo.azurecr.io, "
            "or a login server) -> base URL to use instead of https://<host> (local stand-ins only; empty in Azure)."),
    Setting("HEALER_REPLICATION_DEADLINE_SECONDS", "How long one wait may take before it is reported timed out.",
            "1800"),
    Setting("HEALER_REPLICATION_BACKOFF", "JSON object of the re-check backoff: baseSeconds, factor, maxSeconds, "
            "minSeconds, jitter (empty: 2, 1.6, 30, 0.5, 0.25)."),
    Setting("HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS", "How long a replica's tag may name another digest before a "
            "tag overwrite race is reported (a digest never seen pushed; older pushes are lag).", "60"),
    Setting("HEALER_REPLICATION_FAIL_FAST_SECONDS", "How long a replica's regional host must keep failing DNS "
            "before its wait fails fast, named (regional endpoints not enabled), instead of timing out.", "15"),
    Setting("HEALER_REPLICATION_MAX_THROTTLED_SECONDS", "A replica answering HTTP 429 moves its own deadline out by "
            "the time it is throttled, up to this; a wait that ends still throttled is reported throttled.", "1800"),
    Setting("HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS", "How long a registry's topology read from ARM (replicas, "
            "their status, regional endpoints) is reused before it is read again.", "300"),
    Setting("HEALER_REPLICATION_ACR_TENANT_ID", "Tenant sent in the ACR token exchange (POST /oauth2/exchange)."),
    Setting("HEALER_REPLICATION_TOPIC_ENDPOINT", "Event Grid topic endpoint for outcome events "
            "(https://<topic>.<region>-1.eventgrid.azure.net/api/events). Empty: outcomes are only recorded."),
    Setting("HEALER_REPLICATION_TOPIC_KEY", "Topic access key, for local/test topics only. Empty (Azure): publish "
            "with Healer's Entra identity (EventGrid Data Sender; the topic has local auth disabled).", secret=True),

    # Error-clustering healer (issue 5)
    Setting("HEALER_ERRORS_SCHEDULE", "NCRONTAB of the daily error-clustering run (the timer binding reads it as "
            "%HEALER_ERRORS_SCHEDULE%, so it must be set as an app setting).", "0 0 6 * * *"),
    Setting("HEALER_ERRORS_SCHEMA", "'workspace' (AppExceptions, query the workspace) or 'classic' (exceptions, "
            "query the Application Insights resource).", "workspace"),
    Setting("HEALER_ERRORS_WORKSPACE_ID", "Log Analytics workspace id (workspace schema)."),
    Setting("HEALER_ERRORS_RESOURCE_ID", "Application Insights resource id (classic schema)."),
    Setting("HEALER_ERRORS_LOGS_ENDPOINT", "Log Analytics query endpoint.", "https://api.loganalytics.io"),
    Setting("HEALER_ERRORS_INCLUDE_TRACES", "'true' also clusters error-level traces (severity >= 3).", "false"),
    Setting("HEALER_ERRORS_WINDOW_HOURS", "Hours the timer run looks back (ending at the last whole hour).", "24"),
    Setting("HEALER_ERRORS_MAX_ROWS", "Most aggregated rows one query returns.", "5000"),
    Setting("HEALER_ERRORS_TOP_N", "How many groups get a draft pull request per run.", "5"),
    Setting("HEALER_ERRORS_BASELINE_DAYS", "Days of per-fingerprint history for new/regressed.", "7"),
    Setting("HEALER_ERRORS_IN_APP_PREFIXES", "Comma-separated namespace/module/path prefixes that are always "
            "in-app frames (optional; framework frames are recognised without it)."),
    Setting("HEALER_ERRORS_GITHUB_API_URL", "GitHub REST base URL (https://<host>/api/v3 for GHES).",
            "https://api.github.com"),
    Setting("HEALER_ERRORS_GITHUB_REPOSITORY", "owner/name of the repository that gets the draft pull requests."),
    Setting("HEALER_ERRORS_GITHUB_TOKEN", "GitHub token with contents+pull-requests write on that repository "
            "(a Key Vault reference in Azure). Or use a GitHub App (the three settings below), not both.",
            secret=True),
    Setting("HEALER_ERRORS_GITHUB_APP_ID", "GitHub App id (numeric; the JWT issuer). With "
            "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID and HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY, Healer authenticates "
            "as that installation (tokens minted and refreshed by githubkit) instead of with a token. The app needs "
            "Contents and Pull requests read/write on the repository."),
    Setting("HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID", "Installation id of that GitHub App on the repository's "
            "owner (numeric)."),
    Setting("HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY", "The GitHub App's private key (RSA, PEM; a Key Vault "
            "reference in Azure).", secret=True),
    Setting("HEALER_ERRORS_BASE_BRANCH", "Branch pull requests target (default: the repository's default)."),
    Setting("HEALER_ERRORS_SOURCE_REF", "Ref (commit/tag/branch) of the deployed code whose files ground the "
            "model (default: the base branch)."),
    Setting("HEALER_ERRORS_SOURCE_PREFIX", "Path prefix in the repository of the files named by stacks "
            "(e.g. 'src/')."),
    Setting("HEALER_ERRORS_VERSION_DIMENSION", "Custom dimension that holds the application version (default: "
            "AppVersion / application_Version)."),
    Setting("HEALER_ERRORS_VERSION_MAP", "JSON object: application version -> commit sha, tag or branch (checked "
            "before tags, releases and deployments)."),
    Setting("HEALER_ERRORS_VERSION_TAGS", "Comma-separated tag names a version maps to; {version} is replaced.",
            "{version},v{version}"),
    Setting("HEALER_ERRORS_DEPLOY_ENVIRONMENT", "GitHub deployments environment whose history is correlated with "
            "first-seen times (empty: every environment).", "production"),
    Setting("HEALER_ERRORS_LLM_PROVIDER", "'none' (deterministic triage only), 'azure' (Azure OpenAI, Entra ID "
            "token from Healer's identity) or 'openai' (any OpenAI-compatible endpoint).", "none"),
    Setting("HEALER_ERRORS_LLM_ENDPOINT", "Azure OpenAI endpoint, or the base URL of an OpenAI-compatible API."),
    Setting("HEALER_ERRORS_LLM_MODEL", "Deployment name (Azure) or model name."),
    Setting("HEALER_ERRORS_LLM_API_VERSION", "Azure OpenAI API version.", "2024-10-21"),
    Setting("HEALER_ERRORS_LLM_API_KEY", "Key for an OpenAI-compatible endpoint (never used for Azure).",
            secret=True),
    Setting("HEALER_ERRORS_LLM_AUDIENCE", "Token scope for Azure OpenAI.",
            "https://cognitiveservices.azure.com/.default"),
    Setting("HEALER_ERRORS_LLM_TOKEN_BUDGET", "Most model tokens one run may spend.", "60000"),
    Setting("HEALER_ERRORS_LLM_TIMEOUT_SECONDS", "Timeout of one model request.", "60"),
    Setting("HEALER_ERRORS_LLM_MAX_RETRIES", "Retries of a throttled/failed model request (SDK, honours "
            "Retry-After).", "2"),

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
    # Attribution before action (issue 14)
    on_config_change: str = Field("ask", alias="onConfigChange", pattern=r"^(ask|skip)$")
    activity_log: bool = Field(True, alias="activityLog")
    app_config_endpoint: str | None = Field(None, alias="appConfigEndpoint", max_length=300)
    app_config_keys: str = Field("*", alias="appConfigKeys", max_length=300)
    app_config_label: str | None = Field(None, alias="appConfigLabel", max_length=300)
    # Prove the recovery (issue 14): healers.rollback.recovery.RecoveryOptions
    recovery: dict[str, Any] | None = None
    freeze: bool = Field(False, alias="freezeInsteadOfRollback")

    @field_validator("resource_id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        from shared.resource_ids import parse_site_id
        parse_site_id(v.strip())
        return v.strip().rstrip("/")

    @field_validator("recovery")
    @classmethod
    def _recovery(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            from healers.rollback.recovery import RecoveryOptions
            RecoveryOptions.model_validate(v)
        return v

    @field_validator("app_config_endpoint")
    @classmethod
    def _https_endpoint(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("appConfigEndpoint must be an https:// URL")
        return v.rstrip("/") if v else v

    @field_validator("build_marker")
    @classmethod
    def _marker(cls, v: str) -> str:
        if v in ("linuxFxVersion", "deploymentId") or (v.startswith("appSetting:") and len(v) > 11):
            return v
        raise ValueError("buildMarker must be 'appSetting:<NAME>', 'linuxFxVersion' or 'deploymentId'")

    @property
    def key(self) -> str:
        from shared.resource_ids import canonical
        return canonical(self.resource_id)


class RuleTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    resource_id: str = Field(alias="resourceId")
    slot: str | None = None


_TENANT_RE = r"^(\*|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$"
_KEY_RE = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class DownshiftTenant(BaseModel):
    """A tenant's budget for the period and the time zone its period runs in (tenant "*" = the whole app)."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    budget: float | None = Field(None, gt=0, le=1e12)
    timezone: str | None = Field(None, max_length=64)
    period: str | None = Field(None, pattern=r"^(month|quarter|year)$")
    block: bool | None = None          # the last rung for this tenant (None: the app policy's `block`)


class DownshiftApp(BaseModel):
    """One AI app the downshift healer manages (HEALER_DOWNSHIFT_APPS). The policy (ladder etc.) is validated by
    healers.downshift.core.DownshiftPolicy when loaded."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resource_id: str = Field(alias="resourceId")
    actuator: str = Field("appConfiguration", pattern=r"^(appConfiguration|appSetting)$")
    app_config_endpoint: str | None = Field(None, alias="appConfigEndpoint", max_length=300)
    key: str = Field("ai:model", pattern=_KEY_RE)
    tenant_keys: str = Field("label", alias="tenantKeys", pattern=r"^(label|key)$")
    sentinel_key: str = Field("ai:sentinel", alias="sentinelKey", pattern=_KEY_RE)
    block_key: str = Field("ai:blocked", alias="blockKey", pattern=_KEY_RE)
    role: str | None = Field(None, max_length=256)
    cost_metric: str = Field("agent.cost.usd", alias="costMetric", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
    tenant_dimension: str = Field("tenant", alias="tenantDimension", pattern=r"^[A-Za-z_][A-Za-z0-9 _.-]{0,63}$")
    rate_card: dict[str, Any] | None = Field(None, alias="rateCard")  # healers.downshift.rates (token metrics)
    policy: dict[str, Any]
    tenants: dict[str, DownshiftTenant] = Field(default_factory=dict, max_length=100_000)
    default_budget: float | None = Field(None, alias="defaultBudget", gt=0, le=1e12)
    budget_names: list[str] = Field(default_factory=list, alias="budgetNames", max_length=50)
    rules: list[str] = Field(default_factory=list, max_length=50)
    probe_url: str | None = Field(None, alias="probeUrl", max_length=2000)
    dry_run: bool = Field(False, alias="dryRun")

    @field_validator("resource_id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        from shared.resource_ids import parse_site_id
        if parse_site_id(v).slot:
            raise ValueError("resourceId must be the app, not a slot")
        return v.rstrip("/")

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: dict[str, DownshiftTenant]) -> dict[str, DownshiftTenant]:
        import re
        bad = [t for t in v if not re.match(_TENANT_RE, t)]
        if bad:
            raise ValueError(f"invalid tenant names {[b[:40] for b in bad[:3]]}")
        return v

    @field_validator("app_config_endpoint", "probe_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return v.rstrip("/") if v else v

    @property
    def key_id(self) -> str:
        from shared.resource_ids import canonical
        return canonical(self.resource_id)


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
    def audit_retention_days(self) -> int:
        return max(1, self._int("HEALER_AUDIT_RETENTION_DAYS"))

    @property
    def dedupe_retention_days(self) -> int:
        return max(2, self._int("HEALER_DEDUPE_RETENTION_DAYS"))

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

    # ----------------------------------------------------------------------------- downshift (issue 3)
    @cached_property
    def downshift_apps(self) -> dict[str, DownshiftApp]:
        raw = self._json("HEALER_DOWNSHIFT_APPS") or []
        if not isinstance(raw, list):
            raise ConfigError("setting HEALER_DOWNSHIFT_APPS must be a JSON list")
        try:
            apps = [DownshiftApp.model_validate(item) for item in raw]
        except ValidationError as exc:
            raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS is invalid: {exc}") from exc
        for app in apps:
            if app.actuator == "appConfiguration" and not app.app_config_endpoint:
                raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: {app.resource_id} needs appConfigEndpoint")
            if app.actuator == "appSetting" and set(app.tenants) - {"*"}:
                raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: {app.resource_id} uses the app-setting actuator, "
                                  "which is app-wide: only tenant '*' can be configured")
        return {a.key_id: a for a in apps}


def load_settings() -> Settings:
    return Settings()

"""Configuration validated at load: every HEALER_* setting, and every JSON document in them.

`problems(settings)` lists what is wrong (pure of I/O; cached per configuration, so the gate and the read paths
can call it on every use). An unknown `HEALER_*` name is a problem naming the closest known one — a typo such as
`HEALER_DRYRUN` must never silently leave a safety switch off. While any problem exists, the gate refuses every
action with the problem as the reason, `GET /api/health` answers 503 listing them, and one `config-invalid` audit
record is written per distinct problem set (deduplicated on a hash), so one notification follows.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from collections.abc import Callable, Mapping

from shared.config import SETTINGS, ConfigError, Settings

log = logging.getLogger("healer.config")
KNOWN = {s.name for s in SETTINGS}
HEALER_NAMES = sorted(n for n in KNOWN if n.startswith("HEALER_"))
# Names with the HEALER_ prefix that are not Healer's settings: markers Healer writes on the apps it manages
# (downshift's app-setting actuator) and the test suite's own knob.
NOT_SETTINGS = ("HEALER_MANAGED_", "HEALER_PIN_", "HEALER_HYPOTHESIS_EXAMPLES")
BOOLS = ("HEALER_KILL_SWITCH", "HEALER_DRY_RUN", "HEALER_ERRORS_INCLUDE_TRACES")
_TRUE_FALSE = {"1", "0", "true", "false", "yes", "no", "on", "off"}
INTS = {"HEALER_MAX_BODY_BYTES": (1024, 100 * 1024 * 1024), "HEALER_AUDIT_RETENTION_DAYS": (1, 3650),
        "HEALER_DEDUPE_RETENTION_DAYS": (2, 3650), "HEALER_LEASE_SECONDS": (10, 86400),
        "HEALER_POLICY_LKG_MAX_AGE_SECONDS": (0, 7 * 86400)}
NUMBERS = ("HEALER_ARM_POLL_SECONDS", "HEALER_REPLICATION_DEADLINE_SECONDS",
           "HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS")
ENUMS = {"HEALER_AUTH_MODE": ("function-key", "entra"), "HEALER_DOWNSHIFT_SCHEMA": ("workspace", "classic"),
         "HEALER_ERRORS_SCHEMA": ("workspace", "classic"), "HEALER_ERRORS_LLM_PROVIDER": ("none", "azure", "openai")}
JSON_SETTINGS = ("HEALER_POLICY", "HEALER_ROLLBACK_TARGETS", "HEALER_ROLLBACK_RULE_MAP", "HEALER_DOWNSHIFT_APPS",
                 "HEALER_REPLICATION_REGISTRIES", "HEALER_REPLICATION_ENDPOINTS", "HEALER_REPLICATION_BACKOFF")
KEY_VAULT_REF = "@Microsoft.KeyVault("


@dataclass(frozen=True)
class Problem:
    setting: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"setting": self.setting, "why": self.why}

    def __str__(self) -> str:
        return self.why if self.setting in self.why else f"{self.setting}: {self.why}"


def suggestion(name: str) -> str:
    close = difflib.get_close_matches(name.upper(), HEALER_NAMES, n=1, cutoff=0.6)
    return f" — did you mean `{close[0]}`?" if close else ""


def unknown_names(environ: Mapping[str, str]) -> list[Problem]:
    out = []
    for name in sorted(environ):
        if name.upper().startswith("HEALER_") and name not in KNOWN and not name.upper().startswith(NOT_SETTINGS):
            out.append(Problem(name[:100], f"`{name[:100]}` is not a Healer setting{suggestion(name)}"))
    return out


def _scalars(settings: Settings) -> list[Problem]:
    out = []
    for name in BOOLS:
        v = (settings.get(name) or "").strip().lower()
        if v and v not in _TRUE_FALSE:
            out.append(Problem(name, f"{name} must be true or false, not {v[:40]!r}"))
    for name, (lo, hi) in INTS.items():
        v = settings.get(name)
        if v in (None, ""):
            continue
        try:
            n = int(v)
        except ValueError:
            out.append(Problem(name, f"{name} must be an integer, not {v[:40]!r}"))
            continue
        if not lo <= n <= hi:
            out.append(Problem(name, f"{name} must be between {lo} and {hi}, not {n}"))
    for name in NUMBERS:
        v = settings.get(name)
        try:
            if v not in (None, "") and float(v) < 0:
                raise ValueError
        except ValueError:
            out.append(Problem(name, f"{name} must be a non-negative number, not {str(v)[:40]!r}"))
    for name, allowed in ENUMS.items():
        v = (settings.get(name) or "").strip().lower()
        if v and v not in allowed:
            out.append(Problem(name, f"{name} must be one of {', '.join(allowed)}, not {v[:40]!r}"))
    prefix = settings.get("HEALER_TABLE_PREFIX") or ""
    if not (prefix.isalnum() and prefix[:1].isalpha()):
        out.append(Problem("HEALER_TABLE_PREFIX", "HEALER_TABLE_PREFIX must be letters and digits, starting with a "
                                                  "letter"))
    return out


def _json(settings: Settings) -> list[Problem]:
    out = []
    for name in JSON_SETTINGS:
        raw = settings.get(name)
        if raw is None or (name == "HEALER_POLICY" and raw.strip().startswith(KEY_VAULT_REF)):
            continue  # an unresolved Key Vault reference: the policy source is unreadable (last-known-good applies)
        try:
            json.loads(raw)
        except json.JSONDecodeError as exc:
            out.append(Problem(name, f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"))
    if not any(p.setting == "HEALER_POLICY" for p in out):
        raw = settings.get("HEALER_POLICY")
        if raw is not None and not raw.strip().startswith(KEY_VAULT_REF):
            from shared.policy import load_policy
            policy, why = load_policy(json.loads(raw))
            if policy is None:
                out.append(Problem("HEALER_POLICY", f"HEALER_POLICY: {why}"))
    return out


def _loaders() -> list[tuple[str, Callable[[Settings], object]]]:
    from healers.downshift.shell import load_apps
    from healers.errors.shell import load_config as errors_config
    from healers.replication.shell import load_config as replication_config
    from shared.notify_config import destinations as notify_destinations
    return [("HEALER_ROLLBACK_TARGETS", lambda s: s.rollback_targets),
            ("HEALER_ROLLBACK_RULE_MAP", lambda s: s.rollback_rule_map),
            ("HEALER_DOWNSHIFT_APPS", load_apps), ("HEALER_REPLICATION_REGISTRIES", replication_config),
            ("HEALER_ERRORS_GITHUB_REPOSITORY", errors_config),
            ("HEALER_NOTIFY_DESTINATIONS", notify_destinations)]


def _documents(settings: Settings, already: set[str]) -> list[Problem]:
    out = []
    for default_name, load in _loaders():
        try:
            load(Settings(settings._env))  # a fresh view: cached parses of a broken value are not reused
        except (ConfigError, ValueError, KeyError, TypeError) as exc:
            text = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
            named = re.search(r"HEALER_[A-Z0-9_]+", text)
            setting = named.group(0) if named else default_name
            if setting not in already:
                out.append(Problem(setting, _redact(text)))
    return out


def _redact(text: str) -> str:
    return re.sub(r"(?i)(sig|key|token|password|secret)=([^&\s\"']+)", r"\1=***", text)


_cache: dict[str, list[Problem]] = {}
_lock = threading.Lock()


def fingerprint(environ: Mapping[str, str]) -> str:
    items = sorted((k, v) for k, v in environ.items() if k.upper().startswith(("HEALER_", "AZURE")))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def problems(settings: Settings | None = None) -> list[Problem]:
    """Everything wrong with the configuration (empty when fine). Cached per configuration."""
    settings = settings or Settings()
    env = settings._env
    key = fingerprint(env)
    with _lock:
        if key in _cache:
            return _cache[key]
    found = unknown_names(env) + _scalars(settings)
    found += _json(settings)
    found += _documents(settings, {p.setting for p in found})
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = found
    return found


def summary(found: list[Problem]) -> str:
    return "; ".join(str(p) for p in found)[:1500]


def problems_hash(found: list[Problem]) -> str:
    return hashlib.sha256(json.dumps(sorted(p.why for p in found)).encode()).hexdigest()[:32]


def report(settings: Settings, found: list[Problem], now=None) -> bool:
    """One `config-invalid` audit record per distinct problem set (insert-if-absent on its hash). True if new."""
    from shared import audit
    from shared.state import Conflict, Record, Store
    digest = problems_hash(found)
    try:
        Store(settings, "dedupe").insert(Record("config-invalid", digest, {"problems": [p.as_dict() for p in found]}))
    except Conflict:
        return False
    audit.record(settings, healer="config", outcome="config-invalid",
                 reason=f"Healer's configuration is invalid; it acts on nothing until fixed: {summary(found)}",
                 details={"problems": [p.as_dict() for p in found], "hash": digest}, now=now)
    return True


def check_at_start() -> list[Problem]:
    """Called when the app loads: log every problem loudly (the audit record follows on first use)."""
    try:
        found = problems(Settings(os.environ))
    except Exception:  # validation itself must never stop the app from loading (health and the gate report it)
        log.exception("configuration validation failed")
        return []
    for p in found:
        log.error("configuration invalid: %s", p)
    return found

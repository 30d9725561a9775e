"""`healer config check`: validate settings offline with the validator the app runs at start.

Reads `local.settings.json` (its `Values`), a JSON object of settings, or `NAME=value` lines (an `.env`, or the
output of `az functionapp config appsettings list -o tsv --query "[].[name,value]"` joined with `=`).
"""
from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Mapping

MAX_FILE_BYTES = 4 << 20


def read_settings_file(path: Path) -> dict[str, str]:
    """The settings in `path`, as the app would see them in its environment."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB")
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        doc = json.loads(text)
        values = doc.get("Values", doc) if isinstance(doc, dict) else None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object (or local.settings.json with \"Values\")")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    if stripped.startswith("["):  # az functionapp config appsettings list -o json
        doc = json.loads(text)
        return {str(item["name"]): str(item.get("value") or "") for item in doc
                if isinstance(item, dict) and "name" in item}
    settings: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{n}: expected NAME=value")
        settings[name.strip()] = value.strip()
    return settings


def problems(values: Mapping[str, str]) -> list[dict[str, str]]:
    """Every problem with these settings: [{"setting", "problem"}], empty when the app would accept them."""
    from shared import config
    validate = getattr(config, "validate_environment", None)
    if validate is not None:  # the app's own start-up validator
        return [{"setting": p.setting, "problem": p.message} if hasattr(p, "setting") else dict(p)
                for p in validate(values)]
    return _fallback(values)


def _fallback(values: Mapping[str, str]) -> list[dict[str, str]]:
    import difflib

    from shared.config import SETTINGS, ConfigError, Settings
    known = [s.name for s in SETTINGS]
    found: list[dict[str, str]] = []
    for name in values:
        if name.upper().startswith("HEALER_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" — did you mean {close[0]}?" if close else ""
            found.append({"setting": name, "problem": f"{name} is not a Healer setting{hint}"})
    settings = Settings({k: v for k, v in values.items() if k in known})
    for prop in ("policy_document", "max_body_bytes", "lease_seconds", "table_prefix", "auth_mode",
                 "rollback_targets", "rollback_rule_map", "downshift_apps"):
        try:
            getattr(settings, prop)
        except ConfigError as exc:
            found.append({"setting": str(exc).split()[1] if str(exc).startswith("setting ") else prop,
                          "problem": str(exc)})
    return found

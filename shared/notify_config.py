"""Where notifications go: destinations and routing rules (HEALER_NOTIFY_DESTINATIONS), validated with pydantic.

```json
[{"name": "oncall", "format": "teams", "url": "https://…/workflows/…/triggers/manual/paths/invoke?…",
  "rules": [{"healers": ["rollback"], "events": ["acted", "escalated", "pending", "approved", "rejected"]},
            {"healers": ["*"], "events": ["escalated", "failed", "dead-letter", "config-invalid", "controls"]}]},
 {"name": "sre-slack", "format": "slack", "url": "https://hooks.slack.com/services/…"},
 {"name": "logic-app", "format": "generic", "url": "https://prod-01.westeurope.logic.azure.com/…"}]
```

A record's *event* is its audit outcome, except that any record of healer `controls` is the event `controls`, and
a record a healer flagged for a human (`details.attention`) with an otherwise quiet outcome is `attention`. The
first rule whose `healers` match the record's healer decides (its `events`, possibly empty: muted); no rule
matches → not sent. A destination without rules gets `DEFAULT_EVENTS` of every healer. The legacy
`HEALER_NOTIFY_WEBHOOK_URL` is one more `generic` destination named `webhook` with the defaults.
URLs are secrets: they are never logged, audited or put on a queue (messages carry the destination's name).
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.config import ConfigError, Settings

DEFAULT_EVENTS = ("acted", "escalated", "failed", "pending", "approved", "rejected", "expired", "dead-letter",
                  "config-invalid", "controls", "attention")
# Every event a rule may name: the audit outcomes plus the two derived ones.
KNOWN_EVENTS = frozenset(DEFAULT_EVENTS) | {"skipped", "refused", "recorded", "dry-run", "ignored", "duplicate"}
# The notifier's own records never notify (a broken destination must not loop through the others).
SILENT_HEALERS = frozenset({"notify"})
Format = Literal["teams", "slack", "generic"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    healers: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=20)
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS), max_length=len(KNOWN_EVENTS))

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - KNOWN_EVENTS)
        if bad:
            raise ValueError(f"unknown events {bad[:5]}; known: {sorted(KNOWN_EVENTS)}")
        return v

    @field_validator("healers")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [h for h in v if not re.fullmatch(r"\*|[a-z][a-z0-9-]{0,31}", h)]
        if bad:
            raise ValueError(f"healer names must be lowercase names or '*': {[b[:40] for b in bad[:3]]}")
        return v

    def matches(self, healer: str) -> bool:
        return "*" in self.healers or healer in self.healers


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
    format: Format
    url: str = Field(min_length=8, max_length=2000, repr=False)
    rules: list[Rule] = Field(default_factory=lambda: [Rule()], max_length=50)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("url must be an http(s) URL")  # never echo the value: it is a secret
        return v

    def events_for(self, healer: str) -> frozenset[str]:
        for rule in self.rules:
            if rule.matches(healer):
                return frozenset(rule.events)
        return frozenset()


def _validation_summary(exc: ValidationError) -> str:
    """Pydantic's errors without the input values (a URL is a secret)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def destinations(settings: Settings) -> list[Destination]:
    """Every configured destination (HEALER_NOTIFY_DESTINATIONS, then the legacy webhook). Raises ConfigError."""
    out: list[Destination] = []
    raw = settings.get("HEALER_NOTIFY_DESTINATIONS")
    if raw:
        try:
            doc: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"setting HEALER_NOTIFY_DESTINATIONS is not valid JSON: {exc.msg} at {exc.pos}") \
                from None
        if not isinstance(doc, list) or len(doc) > 20:
            raise ConfigError("setting HEALER_NOTIFY_DESTINATIONS must be a JSON list of at most 20 destinations")
        try:
            out = [Destination.model_validate(d) for d in doc]
        except ValidationError as exc:
            raise ConfigError(f"setting HEALER_NOTIFY_DESTINATIONS is invalid: {_validation_summary(exc)}") from None
    legacy = settings.get("HEALER_NOTIFY_WEBHOOK_URL")
    if legacy:
        try:
            out.append(Destination(name="webhook", format="generic", url=legacy))
        except ValidationError:
            raise ConfigError("setting HEALER_NOTIFY_WEBHOOK_URL must be an http(s) URL") from None
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise ConfigError("setting HEALER_NOTIFY_DESTINATIONS: destination names must be unique "
                          "('webhook' is taken when HEALER_NOTIFY_WEBHOOK_URL is set)")
    return out


def event_of(entry: dict[str, Any]) -> str:
    """The routing event of an audit record (see the module docstring)."""
    if entry.get("healer") == "controls":
        return "controls"
    outcome = str(entry.get("outcome", ""))
    details = entry.get("details") or {}
    if outcome not in DEFAULT_EVENTS and isinstance(details, dict) and details.get("attention"):
        return "attention"
    return outcome


def route(dests: list[Destination], entry: dict[str, Any]) -> list[Destination]:
    """The destinations that get a notification for this audit record (pure)."""
    healer = str(entry.get("healer", ""))
    if healer in SILENT_HEALERS:
        return []
    event = event_of(entry)
    return [d for d in dests if event in d.events_for(healer)]

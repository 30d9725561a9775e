"""Attribution before action (pure): which changes to the app could explain the alert instead of the swapped build.

A slot swap brings code *and* non-sticky configuration; after it, the app's behaviour can still change without
any new build: an app setting or connection string edited on production, an App Configuration key (a prompt, a
feature flag, a model name), or a dependency going down. Rolling code back does not help then, and may hurt.

Inputs are collected by the shell (`healers/rollback/changes.py`) from three sources:

* **fingerprints** — Healer stores, at each observation, a hash per app-setting / connection-string name of
  production (never a value); a name whose hash differs now changed between that observation and now;
* the **Activity Log** — `Microsoft.Web/sites/config/write` operations on production, with time and caller;
* **App Configuration revisions** — key-values of the app's store last modified in the window.

A change whose time window overlaps (swap, alert] is *suspect*. The decision core then asks a human (or skips, per
app) instead of swapping code.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

from pydantic import BaseModel, Field

Source = Literal["app-settings", "connection-strings", "activity-log", "app-configuration"]
MAX_CHANGES = 50
DEPENDENCY_PROPERTY = "healer.dependencyDriven"
DEPENDENCY_WORDS = ("dependency", "dependencies", "remotedependency", "dependencytarget", "dependency.target")


class ConfigChange(BaseModel):
    """One configuration change. `after`..`before` bound when it happened (equal when the time is known)."""
    source: Source
    what: str = Field(max_length=300)
    before: dt.datetime
    after: dt.datetime | None = None  # None: any time up to `before`
    by: str | None = Field(None, max_length=200)

    def describe(self) -> str:
        when = _fmt(self.before) if self.after == self.before else \
            f"between {_fmt(self.after)} and {_fmt(self.before)}"
        return f"{self.what}, {when}, by {self.by or 'unknown'} ({self.source})"


def _fmt(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "?"


def fingerprint(values: dict[str, str], salt: str) -> dict[str, str]:
    """Name -> a short salted hash of the value. Values are never stored, only these hashes."""
    return {name: hashlib.sha256(f"{salt}\0{name}\0{value}".encode()).hexdigest()[:20]
            for name, value in sorted(values.items())[:2000]}


def changed_names(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    """(name, 'added' | 'removed' | 'changed') for every name whose hash differs."""
    out = [(n, "added") for n in new if n not in old] + [(n, "removed") for n in old if n not in new]
    out += [(n, "changed") for n in new if n in old and old[n] != new[n]]
    return sorted(out)


def fingerprint_changes(stored: dict | None, now_prints: dict[str, dict[str, str]], *, now: dt.datetime,
                        swap_at: dt.datetime | None, ignore: set[str]) -> list[ConfigChange]:
    """Changes since the stored fingerprint. Only a fingerprint taken after the swap is comparable: a swap itself
    moves non-sticky settings, so an older one would blame the swap (the Activity Log covers that interval)."""
    if not stored or not stored.get("at"):
        return []
    taken = dt.datetime.fromisoformat(stored["at"])
    if swap_at is None or taken < swap_at:
        return []
    out = []
    for source, label in (("app-settings", "app setting"), ("connection-strings", "connection string")):
        for name, how in changed_names(stored.get(source) or {}, now_prints.get(source) or {}):
            if name not in ignore:
                out.append(ConfigChange(source=source, what=f"{label} {name[:200]} {how} on production",
                                        after=taken, before=now))
    return out[:MAX_CHANGES]


def suspects(changes: list[ConfigChange], swap_at: dt.datetime, fired_at: dt.datetime) -> list[ConfigChange]:
    """The changes that may have happened after the swap and before the alert fired."""
    return [c for c in changes if c.before > swap_at and (c.after is None or c.after <= fired_at)]


def dependency_hint(custom_properties: dict[str, str], dimensions: list[tuple[str, str]]) -> str | None:
    """Why the alert looks like a dependency outage (a rollback would not help), or None."""
    if str(custom_properties.get(DEPENDENCY_PROPERTY, "")).strip().lower() in ("true", "1", "yes"):
        return f"the alert rule is marked dependency-driven ({DEPENDENCY_PROPERTY})"
    for name, value in dimensions:
        if any(w in name.strip().lower() for w in DEPENDENCY_WORDS):
            return f"the alert names a dependency ({name[:60]}={value[:100]})"
    return None

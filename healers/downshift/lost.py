"""A lost Resolved (pure): a capacity downshift whose Resolved never arrives must not pin a tenant down forever.

Webhook deliveries can be lost. When a capacity alert has been Fired for longer than the dwell, the shell asks Azure
Monitor (AlertsManagement, `shared.monitor_alerts.alert_condition`) for the alert's current condition, at most once
per dwell per alert:

* Resolved → a Resolved signal is merged as if it had been delivered (the restore path starts: dwell, probe, caps);
* still Fired → nothing changes; asked again after another dwell;
* unknown (not found, no access, an error) → the tenant stays down (unknown never upshifts) and a human is told once
  per alert.

What is watched lives in `DownshiftState.monitor_checked`, one string per alert:
`<alert id>|<subscription>|<last check ISO time or ''>|<1 when the unknown was notified, else 0>`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Literal

from healers.downshift.core import MAX_SEEN, CapacitySignal, DownshiftPolicy, DownshiftState, _utc

ACTIVE = ("DOWNSHIFTED", "RESTORING")


@dataclass(frozen=True)
class Watch:
    alert_id: str
    subscription: str
    checked_at: dt.datetime | None = None
    notified: bool = False

    def encode(self) -> str:
        when = "" if self.checked_at is None else self.checked_at.astimezone(dt.UTC).isoformat()
        return f"{self.alert_id}|{self.subscription}|{when}|{1 if self.notified else 0}"

    @classmethod
    def decode(cls, text: str) -> Watch | None:
        parts = text.split("|")
        if len(parts) != 4 or not parts[0]:
            return None
        try:
            when = dt.datetime.fromisoformat(parts[2]) if parts[2] else None
        except ValueError:
            when = None
        return cls(parts[0], parts[1], when, parts[3] == "1")


def watches(state: DownshiftState) -> dict[str, Watch]:
    out = {}
    for text in state.monitor_checked:
        w = Watch.decode(text)
        if w is not None:
            out[w.alert_id] = w
    return out


def _store(state: DownshiftState, items: dict[str, Watch], prune: bool = True) -> DownshiftState:
    kept = [w for a, w in items.items() if not prune or a in state.alerts]   # forget alerts the state forgot
    return dataclasses.replace(state, monitor_checked=tuple(w.encode() for w in kept)[-MAX_SEEN:])


def remember(state: DownshiftState, alert_id: str, subscription: str | None) -> DownshiftState:
    """Watch a Fired capacity alert (its subscription is where Azure Monitor keeps it)."""
    if not subscription:
        return state
    items = watches(state)
    items.setdefault(alert_id, Watch(alert_id, subscription))
    return _store(state, items, prune=False)   # the alert itself is merged by `core.decide` right after


def due(state: DownshiftState, policy: DownshiftPolicy, now: dt.datetime) -> list[Watch]:
    """Watched alerts still Fired after the dwell, not asked about within the last dwell."""
    if state.status not in ACTIVE:
        return []
    now = _utc(now)
    dwell = dt.timedelta(seconds=policy.dwell_s(max(state.trips, 1)))
    items = watches(state)
    out = []
    for alert_id, (condition, at) in sorted(state.alerts.items()):
        w = items.get(alert_id)
        if condition != "Fired" or w is None or now - at < dwell:
            continue
        if w.checked_at is None or now - w.checked_at >= dwell:
            out.append(w)
    return out


def after_check(state: DownshiftState, watch: Watch, condition: Literal["Fired", "Resolved"] | None,
                now: dt.datetime, resolved_at: dt.datetime | None = None
                ) -> tuple[DownshiftState, CapacitySignal | None, bool]:
    """Merge Azure Monitor's answer: (state, a Resolved signal to decide on or None, whether to notify a human)."""
    now = _utc(now)
    notify = condition is None and not watch.notified
    items = watches(state)
    items[watch.alert_id] = dataclasses.replace(watch, checked_at=now, notified=watch.notified or notify)
    new = _store(state, items)
    if condition == "Resolved":
        fired_at = state.alerts.get(watch.alert_id, ("Fired", now))[1]
        when = max(_utc(resolved_at), fired_at) if resolved_at is not None else now
        return new, CapacitySignal(watch.alert_id, "Resolved", when), False
    return new, None, notify

"""Every timer run leaves a heartbeat: a log record (`healer.timer`) that the self-monitoring alert
`infra/kql/self-timers-stale.kql` watches, and the last run per timer in the `timers` table for `/api/health`.

A heartbeat never breaks the timer it reports on.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from shared.config import Settings

log = logging.getLogger("healer.timers")
PARTITION = "timers"
TIMERS = ("downshift_tick", "errors_daily", "housekeeping")


def ran(settings: Settings, name: str, timer: Any = None, now: dt.datetime | None = None) -> None:
    """Record that timer `name` fired (past_due when the host caught up on a missed schedule)."""
    at = now or dt.datetime.now(dt.UTC)
    past_due = bool(getattr(timer, "past_due", False))
    log.info("timer %s ran%s", name, " (past due)" if past_due else "",
             extra={"healer.timer": name, "healer.past_due": past_due})
    try:
        from shared.state import Record, Store
        Store(settings, "timers").upsert(Record(PARTITION, name, {"timer": name, "lastRun": at.isoformat(),
                                                                  "pastDue": past_due}))
    except Exception as exc:  # storage trouble is the timer's own problem to report, not the heartbeat's
        log.warning("timer %s: heartbeat not stored: %s", name, type(exc).__name__)


def last_runs(settings: Settings) -> dict[str, dict[str, Any] | None]:
    """Last recorded run of every timer (None: never ran since deployment)."""
    from shared.state import Store
    store = Store(settings, "timers")
    runs: dict[str, dict[str, Any] | None] = {}
    for name in TIMERS:
        rec = store.get(PARTITION, name)
        runs[name] = rec.data if rec else None
    return runs

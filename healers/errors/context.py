"""Context the errors shell reads around a day's groups: what other healers did on the same apps. Imperative but
small: each reader returns plain data for the pure functions in `links.py`, and a failure to read context never
fails the run (the group is drafted without it, and the reason is logged).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from healers.errors import links
from healers.errors.cluster import Group
from healers.errors.triage import Window
from shared import audit
from shared.config import ConfigError, Settings

log = logging.getLogger("healer.errors")
MAX_AUDIT_PER_DAY = 500


def _downshift_roles(settings: Settings) -> dict[str, set[str]]:
    try:
        apps = settings.downshift_apps
    except ConfigError:
        return {}
    return {a.resource_id.lower(): links.app_roles(a.resource_id, a.role) for a in apps.values()}


def _downshift_actions(settings: Settings, window: Window) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    day = (window.start - links.SLACK).date()
    while day <= window.end.date():
        out.extend(audit.list_records(settings, day=day, healer="downshift", outcome="acted",
                                      limit=MAX_AUDIT_PER_DAY))
        day += dt.timedelta(days=1)
    return out


def attach_related(settings: Settings, groups: list[Group], window: Window) -> None:
    """Fill `related` on failed-call groups with the downshift healer's actions on the same apps."""
    candidates = [g for g in groups if g.kind == "call" and g.failure in links.LINKED_FAILURES]
    if not candidates:
        return
    try:
        records = _downshift_actions(settings, window)
    except Exception as exc:  # context is optional: storage trouble here must not fail the day's run
        log.warning("downshift audit not read for error links: %s", type(exc).__name__)
        return
    roles = _downshift_roles(settings)
    for g in candidates:
        g.related = links.downshift_links(g, records, roles, window.start, window.end)

"""Links from error groups to what other healers did on the same app. Pure.

A storm of throttled or timed-out calls from a model endpoint is often the very thing the downshift healer reacted
to. A failed-call group is linked to every downshift action (audit outcome `acted`) in its window on an app whose
role is one of the group's roles: the app's configured `role` in HEALER_DOWNSHIFT_APPS, or the site name at the
end of its resource id (App Service reports the site name as the cloud role name by default).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from collections.abc import Iterable

from healers.errors.cluster import Group
from healers.errors.failures import THROTTLED, TIMEOUT

LINKED_FAILURES = (THROTTLED, TIMEOUT)
MAX_LINKS = 5
SLACK = dt.timedelta(hours=1)  # an action just before the window can still be the cause or the answer


def app_roles(resource_id: str, configured_role: str | None = None) -> set[str]:
    """The role names telemetry from this app carries (lower-case)."""
    roles = {resource_id.rstrip("/").rsplit("/", 1)[-1].lower()} if resource_id else set()
    if configured_role:
        roles.add(configured_role.lower())
    return roles - {""}


def _when(record: dict[str, Any]) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(str(record.get("at")))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def downshift_links(group: Group, records: Iterable[dict[str, Any]], roles_of: dict[str, set[str]],
                    start: dt.datetime, end: dt.datetime) -> list[str]:
    """Lines for the triage file: the downshift actions on the group's apps within the window (oldest first).
    `roles_of`: resource id (lower-case) -> its role names."""
    if group.kind != "call" or group.failure not in LINKED_FAILURES:
        return []
    wanted = {r.lower() for r in group.roles}
    hits: list[tuple[dt.datetime, str]] = []
    for rec in records:
        if rec.get("healer") != "downshift" or rec.get("outcome") != "acted":
            continue
        at = _when(rec)
        resource = str(rec.get("resource") or "")
        if at is None or not (start - SLACK <= at <= end):
            continue
        if not (roles_of.get(resource.lower()) or app_roles(resource)) & wanted:
            continue
        subject = str(rec.get("subject") or "*")
        hits.append((at, f"{at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC: the downshift healer acted on "
                         f"{resource.rsplit('/', 1)[-1]} (tenant {subject}): {str(rec.get('reason') or '')[:200]} "
                         f"(audit {rec.get('id', '-')})"))
    hits.sort()
    return [line for _, line in hits[:MAX_LINKS]]

"""The operator's side of the rollback healer: re-arm an app (and forget a remembered bad build), and the freeze
condition in the app's controls record. Shared names (HEALER, Refused, app_state) live here so the shell can use
them without a cycle."""
from __future__ import annotations

import datetime as dt
from typing import Any

from healers.rollback.core import AppState, forget_bad_build
from shared import audit
from shared.config import Settings
from shared.controls import PARTITION as CONTROLS_PARTITION
from shared.resource_ids import parse_site_id
from shared.state import (Conflict, Lease, Record, Store, acquire_lease, release_lease, safe_key,
                          save_under_lease)
from shared.work import RetryLater

HEALER = "rollback"


class Refused(Exception):
    """The request cannot be honoured (not allowlisted, nothing to forget, busy); the message says why."""


def app_state(lease: Lease) -> AppState:
    return AppState.model_validate({k: v for k, v in lease.record.data.items() if k in AppState.model_fields})


def set_freeze(settings: Settings, scope: str, frozen: dict[str, Any] | None) -> None:
    """The app's controls record carries `freeze` (None clears it); other control fields are kept."""
    store = Store(settings, "controls")
    row = safe_key(scope)
    for _ in range(3):
        rec = store.get(CONTROLS_PARTITION, row) or Record(CONTROLS_PARTITION, row, {"scope": scope})
        rec.data["freeze"] = frozen
        try:
            store.replace(rec)
            return
        except Conflict:
            continue
    raise RetryLater(5, "the app's controls record kept changing; freeze not recorded yet")


def rearm(settings: Settings, resource_id: str, *, by: str, reason: str, now: dt.datetime,
          forget_build: str | None = None) -> dict[str, Any]:
    """Clear an app's latch and escalation so automatic rollback may act again. Remembered bad builds stay
    remembered; `forget_build` clears that one (it must be remembered)."""
    site = parse_site_id(resource_id)
    target = settings.rollback_targets.get(site.app_id.lower())
    if target is None:
        raise Refused(f"{site.app_id} is not in the rollback allowlist")
    ops = Store(settings, "ops")
    lease = acquire_lease(ops, HEALER, safe_key(target.key), f"rearm:{by}", settings.lease_seconds, now)
    if lease is None:
        raise RetryLater(10, "an operation is running on this app; try again shortly")
    try:
        if lease.record.data.get("op"):
            raise Refused("a swap is in flight on this app; re-arm after it finishes")
        app = app_state(lease)
        forgotten = None
        if forget_build is not None:
            if forget_build not in app.bad_builds:
                raise Refused(f"build {forget_build[:100]!r} is not remembered as bad for {site.name}")
            forgotten = {forget_build: app.bad_builds[forget_build].model_dump(mode="json")}
            app = forget_bad_build(app, forget_build)
        before = {"latch": lease.record.data.get("latch"), "escalated": lease.record.data.get("escalated")}
        before["frozen"] = lease.record.data.get("frozen")
        lease.record.data.update(latch=None, escalated=None, frozen=None,
                                 bad_builds=app.model_dump(mode="json")["bad_builds"])
        save_under_lease(ops, lease)
    finally:
        release_lease(ops, lease)
    if before.get("frozen"):
        set_freeze(settings, target.key, None)
    what = f"re-armed by {by}" + (f", forgot bad build {forget_build}" if forgotten else "")
    audit.record(settings, healer=HEALER, outcome="recorded", reason=f"{what}: {reason}"[:500],
                 resource=target.resource_id, subject="rearm",
                 details={"before": before, "forgotten": forgotten,
                          "rememberedBadBuilds": sorted(app.bad_builds)[:50]}, now=now)
    return {"resourceId": target.resource_id, "rearmed": True, "before": before, "forgotten": forgotten,
            "badBuilds": sorted(app.bad_builds)}

"""Kill switch and dry-run: from settings (deploy time) and from the controls table (flipped at run time).

Either source engaging a switch engages it. If the controls table cannot be read, the kill switch counts as
engaged: Healer fails closed.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import BaseModel

from shared.config import Settings
from shared.state import Record, Store, safe_key

log = logging.getLogger("healer.controls")
PARTITION = "controls"
GLOBAL = "global"


class Mode(BaseModel):
    killed: bool
    dry_run: bool
    reason: str
    unreadable: bool = False  # the controls could not be read: killed to fail closed, and worth asking again


def effective_mode(settings_kill: bool, settings_dry: bool, global_ctl: dict[str, Any] | None,
                   app_ctl: dict[str, Any] | None, target_dry_run: bool = False,
                   read_error: str | None = None) -> Mode:
    """Pure: combine every source of kill/dry-run into one mode with a reason."""
    if read_error:
        return Mode(killed=True, dry_run=True, unreadable=True,
                    reason=f"fail closed: controls unreadable ({read_error})")
    g, a = global_ctl or {}, app_ctl or {}
    kills = [("setting HEALER_KILL_SWITCH", settings_kill), ("global control", g.get("kill")),
             ("app control", a.get("kill"))]
    drys = [("setting HEALER_DRY_RUN", settings_dry), ("global control", g.get("dryRun")),
            ("app control", a.get("dryRun")), ("target dryRun", target_dry_run)]
    killed = [name for name, on in kills if on]
    dry = [name for name, on in drys if on]
    if killed:
        return Mode(killed=True, dry_run=bool(dry), reason="kill switch engaged by " + ", ".join(killed))
    if dry:
        return Mode(killed=False, dry_run=True, reason="dry-run by " + ", ".join(dry))
    return Mode(killed=False, dry_run=False, reason="live")


def read_mode(settings: Settings, scope: str | None, target_dry_run: bool = False) -> Mode:
    try:
        store = Store(settings, "controls")
        g = store.get(PARTITION, GLOBAL)
        a = store.get(PARTITION, safe_key(scope)) if scope else None
    except Exception as exc:  # any storage failure → fail closed
        log.warning("controls unreadable: %s", type(exc).__name__)
        return effective_mode(False, False, None, None, read_error=type(exc).__name__)
    return effective_mode(settings.kill_switch, settings.dry_run, g.data if g else None, a.data if a else None,
                          target_dry_run)


def set_control(settings: Settings, scope: str | None, *, kill: bool | None, dry_run: bool | None, by: str,
                reason: str, now: dt.datetime) -> dict[str, Any]:
    store = Store(settings, "controls")
    row = GLOBAL if not scope else safe_key(scope)
    rec = store.get(PARTITION, row) or Record(PARTITION, row, {})
    if kill is not None:
        rec.data["kill"] = kill
    if dry_run is not None:
        rec.data["dryRun"] = dry_run
    rec.data.update({"scope": scope or GLOBAL, "by": by, "reason": reason[:500], "at": now.isoformat()})
    store.upsert(rec)
    return rec.data

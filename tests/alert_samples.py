"""Realistic Azure Monitor alert bodies made from the sample payloads in tests/fixtures/alerts.

One place that stamps a sample with the alert id, rule, condition and times a test, the drill or a benchmark needs.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alerts"


@lru_cache(maxsize=16)
def _sample(name: str) -> str:
    return (FIXTURES / name).read_text()


def sample(name: str) -> dict[str, Any]:
    return json.loads(_sample(name))


def alert_body(name: str = "metric_fired.json", *, alert_id: str | None = None, rule: str | None = None,
               condition: str = "Fired", fired: dt.datetime | None = None, resolved: dt.datetime | None = None,
               custom_properties: dict[str, str] | None = None, tenant: str | None = None) -> dict[str, Any]:
    """A common-schema alert from sample `name`. A new alert id unless given; fired one second from now unless
    given; a Resolved gets `resolved` (default now); `custom_properties` replace the sample's when given; `tenant`
    sets the first condition's dimensions (an empty list when None for samples that have conditions)."""
    body = copy.deepcopy(sample(name))
    ess = body["data"]["essentials"]
    now = dt.datetime.now(dt.timezone.utc)
    ess["alertId"] = ess["alertId"].rsplit("/", 1)[0] + "/" + (alert_id or str(uuid.uuid4()))
    ess["monitorCondition"] = condition
    if rule is not None:
        ess["alertRule"] = rule
    ess["firedDateTime"] = (fired or now + dt.timedelta(seconds=1)).isoformat()
    if condition == "Resolved":
        ess["resolvedDateTime"] = (resolved or now).isoformat()
    if custom_properties is not None:
        body["data"]["customProperties"] = dict(custom_properties)
    all_of = (body["data"].get("alertContext") or {}).get("condition", {}).get("allOf")
    if all_of:
        all_of[0]["dimensions"] = [{"name": "tenant", "value": tenant}] if tenant else []
    return body

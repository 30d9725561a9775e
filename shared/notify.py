"""Notifications to humans (approval requests, escalations): a JSON POST to a configured webhook.

A notification that cannot be delivered is logged and reported to the caller, never raised: the audit record is
the durable trail, the notification is a courtesy on top.
"""
from __future__ import annotations

import logging
from typing import Any

from shared.config import Settings

log = logging.getLogger("healer.notify")


def notify(settings: Settings, *, kind: str, title: str, text: str, facts: dict[str, Any] | None = None) -> str:
    """Send a notification. Returns 'sent', 'not configured' or 'failed: <why>'."""
    url = settings.get("HEALER_NOTIFY_WEBHOOK_URL")
    if not url:
        return "not configured"
    import httpx
    body = {"kind": kind, "title": title[:200], "text": text[:4000], "facts": facts or {}}
    try:
        resp = httpx.post(url, json=body, timeout=5.0)
        if resp.status_code >= 300:
            return f"failed: HTTP {resp.status_code}"
        return "sent"
    except httpx.HTTPError as exc:
        log.warning("notification failed: %s", type(exc).__name__)
        return f"failed: {type(exc).__name__}"

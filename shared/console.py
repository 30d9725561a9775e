"""The operator console: a small static page (console/) served by the function app itself, on Healer's own API.

The page and its two assets hold no data and no secrets, so they are served without a key (in Entra mode App
Service Authentication protects every route anyway). Every piece of data the page shows comes from the API with
the caller's credentials; every write the page makes goes through the same routes and checks as the CLI and curl.
Headers forbid framing, inline script and any other origin: what an alert says can never run as script here.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import azure.functions as func

from shared.auth import Principal
from shared.config import Settings
from shared.http import respond

ROOT = Path(__file__).resolve().parent.parent / "console"
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_cache: dict[str, bytes] = {}


def page(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/console (the page) and /api/console/{file} (its script and style sheet)."""
    name = req.route_params.get("file") or "index.html"
    if name not in ASSETS:
        return func.HttpResponse("not found", status_code=404, mimetype="text/plain", headers=SECURITY_HEADERS)
    body = _cache.get(name)
    if body is None:
        body = _cache[name] = (ROOT / name).read_bytes()
    return func.HttpResponse(body=body, status_code=200, headers={**SECURITY_HEADERS, "Content-Type": ASSETS[name]})


def csrf_token(settings: Settings, principal: Principal, now: dt.datetime | None = None) -> str:
    """A per-identity, per-day token the console sends back on writes (`x-healer-csrf`): a cross-site form can
    ride the sign-in cookie, but cannot read this."""
    day = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")
    secret = settings.require("HEALER_CONSOLE_SECRET").encode()
    return hmac.new(secret, f"{principal.name}|{principal.method}|{day}".encode(), hashlib.sha256).hexdigest()[:32]


def csrf_valid(settings: Settings, principal: Principal, token: str | None, now: dt.datetime | None = None) -> bool:
    now = now or dt.datetime.now(dt.UTC)
    if not token:
        return False
    return any(hmac.compare_digest(token, csrf_token(settings, principal, now - dt.timedelta(days=d)))
               for d in (0, 1))


def can_approve(settings: Settings, principal: Principal) -> bool:
    if principal.method in ("entra", "easyauth"):
        return settings.get("HEALER_ENTRA_APPROVER_ROLE") in principal.roles
    return principal.method == "operator-key"


def session(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /api/session: who the console is talking as, what it may do, and the CSRF token for its writes."""
    body: dict[str, Any] = {"name": principal.name, "method": principal.method, "roles": list(principal.roles),
                            "canApprove": can_approve(settings, principal), "mode": settings.auth_mode}
    if principal.method == "easyauth":
        body["csrf"] = csrf_token(settings, principal)
    return respond(200, body, headers={"Cache-Control": "no-store"})

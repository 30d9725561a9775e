"""Signed, single-use Approve / Reject links for approval notifications (`/api/approval-link?t=<token>`).

A token is `base64url(payload).base64url(HMAC-SHA256(HEALER_APPROVAL_LINK_SECRET, payload))`; the payload binds the
healer, approval id, action, a hash of the resource, the decision and the approval's expiry. The route is open
(function auth level anonymous): the signature is the credential, so whoever holds the notification can decide.

* `GET` never changes anything: it answers a small HTML page (every value escaped) with a form that POSTs back.
  (Link scanners and chat previews fetch URLs; they must not approve anything.)
* `POST` verifies again, consumes the link (insert-if-absent, so one use wins), and decides the approval through
  the same code as `POST /api/approvals/{healer}/{id}` (`shared.api.decide_and_enqueue`).
* A used link answers 410; an expired one 410; a tampered or foreign one 403; each with the reason.
* An approval whose policy rule names approver roles or groups gets no links (and a link is refused): only an Entra
  token can prove the approver holds them.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import azure.functions as func

from shared.config import ConfigError, Settings

log = logging.getLogger("healer.links")
ROUTE = "approval-link"
USED = "used"  # partition of the links table: one row per consumed link (sha256 of its signature)
MAX_FORM_BYTES = 8192
DECISIONS = ("approve", "reject")


class LinkError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _resource_hash(resource: str) -> str:
    return hashlib.sha256(resource.strip().rstrip("/").lower().encode()).hexdigest()[:32]


def secret_of(settings: Settings) -> bytes:
    secret = settings.get("HEALER_APPROVAL_LINK_SECRET") or ""
    if len(secret) < 32:
        raise ConfigError("setting HEALER_APPROVAL_LINK_SECRET must be set (at least 32 characters) for approval "
                          "links")
    return secret.encode()


def base_url_of(settings: Settings) -> str:
    base = (settings.get("HEALER_PUBLIC_BASE_URL") or "").rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ConfigError("setting HEALER_PUBLIC_BASE_URL must be Healer's public https:// base URL for approval "
                          "links")
    return base


def sign(secret: bytes, approval: dict[str, Any], decision: str) -> str:
    """The token for one decision on one approval (pure)."""
    if decision not in DECISIONS:
        raise ValueError(decision)
    expires = dt.datetime.fromisoformat(str(approval["expiresAt"]))
    payload = {"v": 1, "h": approval["healer"], "a": approval["id"], "act": approval["action"],
               "r": _resource_hash(str(approval["resource"])), "d": decision, "exp": int(expires.timestamp())}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(raw)}.{_b64(hmac.new(secret, raw, hashlib.sha256).digest())}"


def restricted(approval: dict[str, Any]) -> bool:
    """An approval whose policy rule names approver roles or groups: a link cannot prove who holds it."""
    wanted = approval.get("approvers") or {}
    return isinstance(wanted, dict) and bool(wanted.get("roles") or wanted.get("groups"))


def links_for(settings: Settings, approval: dict[str, Any]) -> dict[str, str]:
    """{"Approve": url, "Reject": url} for a pending approval; none for one restricted to approver roles or groups.
    Raises ConfigError when links are not configured."""
    if restricted(approval):
        return {}
    secret, base = secret_of(settings), base_url_of(settings)
    return {label: f"{base}/api/{ROUTE}?t={quote(sign(secret, approval, decision))}"
            for label, decision in (("Approve", "approve"), ("Reject", "reject"))}


@dataclass(frozen=True)
class Claim:
    healer: str
    approval_id: str
    action: str
    resource_hash: str
    decision: str
    expires: dt.datetime
    signature: str


def verify(secret: bytes, token: str, now: dt.datetime) -> Claim:
    """Check the signature and expiry (pure). Raises LinkError(403 tampered/malformed, 410 expired)."""
    try:
        body, sig = token.split(".")
        raw, given = _unb64(body), _unb64(sig)
    except (ValueError, TypeError):
        raise LinkError(403, "this link is malformed (truncated or altered)") from None
    if not hmac.compare_digest(hmac.new(secret, raw, hashlib.sha256).digest(), given):
        raise LinkError(403, "this link's signature does not match: it was altered or is not from this Healer")
    try:
        p = json.loads(raw)
        claim = Claim(str(p["h"]), str(p["a"]), str(p["act"]), str(p["r"]), str(p["d"]),
                      dt.datetime.fromtimestamp(int(p["exp"]), dt.UTC), sig)
    except (ValueError, KeyError, TypeError):
        raise LinkError(403, "this link's content is not understood") from None
    if claim.decision not in DECISIONS:
        raise LinkError(403, "this link names no decision")
    if now > claim.expires:
        raise LinkError(410, f"this link expired at {claim.expires.isoformat()} (with its approval)")
    return claim


def check_approval(claim: Claim, approval: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """The approval the claim is bound to, still pending. Raises LinkError (pure)."""
    if approval is None:
        raise LinkError(410, "this approval no longer exists")
    if approval.get("action") != claim.action or _resource_hash(str(approval.get("resource", ""))) != \
            claim.resource_hash:
        raise LinkError(403, "this link is not bound to this approval's action and resource")
    if restricted(approval):
        raise LinkError(403, "this approval may only be decided by its approver roles or groups: use "
                             "POST /api/approvals/{healer}/{id} with your Entra ID token")
    status = approval.get("status")
    if status != "pending":
        raise LinkError(410, f"this approval is already {status}")
    if dt.datetime.fromisoformat(str(approval["expiresAt"])) < now:
        raise LinkError(410, f"this approval expired at {approval['expiresAt']}")
    return approval


# ---------------------------------------------------------------------------------------------- HTTP

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _page(status: int, title: str, paragraphs: list[str], form: str = "") -> func.HttpResponse:
    esc = html.escape
    body = "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    doc = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"robots\" "
           f"content=\"noindex\"><meta name=\"viewport\" content=\"width=device-width\"><title>{esc(title)}</title>"
           f"<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}"
           f"p{{overflow-wrap:anywhere}}</style></head><body><h1>{esc(title)}</h1>{body}{form}</body></html>")
    return func.HttpResponse(doc, status_code=status, mimetype="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                   "frame-ancestors 'none'"})


def _load(settings: Settings, token: str, now: dt.datetime) -> tuple[Claim, dict[str, Any]]:
    from shared import approvals
    claim = verify(secret_of(settings), token, now)
    rec = approvals.get(settings, claim.healer, claim.approval_id)
    return claim, check_approval(claim, rec.data if rec else None, now)


def _form_fields(req: func.HttpRequest) -> dict[str, str]:
    raw = req.get_body() or b""
    if len(raw) > MAX_FORM_BYTES:
        raise LinkError(413, "the form is too large")
    try:
        fields = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), max_num_fields=10).items()}
    except (UnicodeDecodeError, ValueError):
        raise LinkError(400, "the form could not be read") from None
    return fields


def handle(req: func.HttpRequest) -> func.HttpResponse:
    """GET: a confirmation page. POST: decide, once."""
    from shared.tracing import span
    with span("healer.http approval-link", {k.lower(): v for k, v in dict(req.headers).items()},
              {"healer.route": f"/api/{ROUTE}"}):
        return _handle(req)


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    settings, now = Settings(), _now()
    try:
        if req.method == "GET":
            return _confirm(settings, req.params.get("t") or "", now)
        fields = _form_fields(req)
        return _decide(settings, fields.get("t") or req.params.get("t") or "", fields.get("by", ""), now)
    except LinkError as exc:
        return _page(exc.status, "This link cannot be used", [exc.reason])
    except ConfigError as exc:  # links are off here: nothing to find
        log.error("approval link refused: %s", exc)
        return _page(404, "Approval links are not enabled", [str(exc)])
    except Exception as exc:  # storage down etc.: the approver may retry
        log.error("approval link failed: %s", type(exc).__name__)
        return _page(503, "Healer could not handle this link right now", ["Try again in a minute."])


def _confirm(settings: Settings, token: str, now: dt.datetime) -> func.HttpResponse:
    claim, approval = _load(settings, token, now)
    verb = "Approve" if claim.decision == "approve" else "Reject"
    esc = html.escape
    form = (f"<form method=\"post\" action=\"{ROUTE}\"><input type=\"hidden\" name=\"t\" value=\"{esc(token)}\">"
            f"<p><label>Your name (recorded in the audit) <input name=\"by\" maxlength=\"100\" "
            f"autocomplete=\"name\"></label></p><p><button type=\"submit\">{verb}</button></p></form>")
    return _page(200, f"{verb} {approval.get('action', '')}?", [
        f"Healer asks to run {approval.get('action', '')} on {approval.get('resource', '')}.",
        f"Why: {approval.get('reason', '')}", f"Subject: {approval.get('subject', '')}",
        f"This request expires at {approval.get('expiresAt', '')}. Healer re-checks the live state before acting.",
        "Nothing has been decided yet: press the button to confirm."], form)


def _decide(settings: Settings, token: str, by: str, now: dt.datetime) -> func.HttpResponse:
    from shared.api import decide_and_enqueue
    from shared.state import Conflict, Record, Store
    claim, approval = _load(settings, token, now)
    store = Store(settings, "links")
    row = hashlib.sha256(claim.signature.encode()).hexdigest()[:40]
    try:
        store.insert(Record(USED, row, {"usedAt": now.isoformat(), "decision": claim.decision,
                                        "healer": claim.healer, "approvalId": claim.approval_id}))
    except Conflict:
        raise LinkError(410, "this link was already used") from None
    name = " ".join(by.split())[:100]
    who = f"{name} (signed link)" if name else "holder of a signed approval link"
    status, result = decide_and_enqueue(settings, healer=claim.healer, aid=claim.approval_id,
                                        approve=claim.decision == "approve", by=who, note="decided through a signed "
                                        "link", now=now, via="signed-link")
    if status != 200:
        if status >= 500 or "changed" in str(result.get("error", "")):
            store.delete(USED, row)  # nothing was decided: the link stays usable
        raise LinkError(410 if status == 409 else status, str(result.get("error", "not decided")))
    verb = "approved" if claim.decision == "approve" else "rejected"
    return _page(200, f"{approval.get('action', '')} {verb}", [
        f"Recorded: {approval.get('action', '')} on {approval.get('resource', '')} {verb} by {who}.",
        "Healer re-checks the live state before acting; the follow-up notification says what it did."
        if claim.decision == "approve" else "Healer will not run this action."])

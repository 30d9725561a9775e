"""What a notification says (`Notice`, from one audit record) and how each format carries it. Pure functions.

* `teams`: an Adaptive Card 1.5 in the message envelope a Teams Workflows webhook takes
  (`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": …}]}`),
  TextBlock + FactSet, links as `Action.OpenUrl` (webhook-posted cards have no bot behind them, so no Submit).
* `slack`: Block Kit for an incoming webhook (header, section, fields, actions with URL buttons, context) plus the
  `text` fallback; untrusted text only ever in `plain_text` objects (never parsed as mrkdwn or links).
* `generic`: JSON for Logic Apps and the like; keeps the original `{kind, title, text, facts}` keys.

Follow-ups of one incident (asked → decided → acted / failed / expired) share the incident id and the title line.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from shared.notify_config import event_of

_STATUS = {"acted": "Healer acted", "escalated": "Escalated: a human must look", "failed": "Failed",
           "pending": "Approval needed", "approved": "Approved", "rejected": "Rejected", "expired": "Approval expired",
           "dead-letter": "Could not process a message", "config-invalid": "Configuration invalid: nothing acts",
           "controls": "Controls changed", "attention": "Needs attention"}
_KIND = {"pending": "approval-requested", "escalated": "escalation"}
_TEAMS_COLOR = {"acted": "Good", "approved": "Good", "pending": "Warning", "expired": "Warning",
                "attention": "Warning", "controls": "Warning", "rejected": "Default"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]~<>])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+-]|\d+\.)", re.MULTILINE)


@dataclass
class Notice:
    """The content of one notification, independent of the format."""
    audit_id: str
    event: str
    healer: str
    outcome: str
    incident: str
    title: str           # the incident's title line: the same for every follow-up
    status: str          # what happened this time
    text: str
    at: str
    resource: str = ""
    subject: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)   # "Approve"/"Reject" → absolute URL
    expires_at: str | None = None
    kind: str = ""       # the generic format's `kind` (an attention record may name its own)


def approval_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The approval an audit record is about: `details.approval` (the gate's contract) if present."""
    details = entry.get("details") or {}
    approval = details.get("approval") if isinstance(details, dict) else None
    return approval if isinstance(approval, dict) and approval.get("id") else None


def approval_id_of(entry: dict[str, Any]) -> str | None:
    approval = approval_of(entry)
    if approval:
        return str(approval["id"])
    details = entry.get("details") or {}
    aid = details.get("approvalId") if isinstance(details, dict) else None
    return str(aid) if aid else None


def incident_of(entry: dict[str, Any]) -> str:
    """One id for every message of an incident: the approval id when one is involved, else (healer, resource,
    subject)."""
    details = entry.get("details") or {}
    explicit = details.get("incidentId") if isinstance(details, dict) else None
    if explicit:
        return str(explicit)[:64]
    aid = approval_id_of(entry)
    if aid:
        return aid[:64]
    key = f"{entry.get('healer')}|{str(entry.get('resource', '')).lower()}|{entry.get('subject', '')}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _short(resource: str) -> str:
    return resource.rstrip("/").rsplit("/", 1)[-1] if resource else ""


def build_notice(entry: dict[str, Any], approval: dict[str, Any] | None = None,
                 links: dict[str, str] | None = None, api_base: str | None = None) -> Notice:
    """A Notice for one audit record (`approval`: the approval it concerns, if any)."""
    event, healer = event_of(entry), str(entry.get("healer", ""))
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    resource, subject = str(entry.get("resource", "")), str(entry.get("subject", ""))
    approval = approval or approval_of(entry)
    target = _short(resource) or _short(str((approval or {}).get("resource", ""))) or subject[:60] or "Healer"
    title = f"Healer · {healer} · {target}"
    status = _STATUS.get(event, event)
    if event == "attention" and isinstance(details.get("attention"), str):
        status = details["attention"]
    elif event == "dead-letter":
        status = f"Healer could not process a {healer} message"
    elif approval and event in ("pending", "approved", "rejected", "expired"):
        status = f"{status}: {approval.get('action', '')} on {_short(str(approval.get('resource', ''))) or target}"
    facts: list[tuple[str, str]] = [("Outcome", str(entry.get("outcome", ""))), ("Healer", healer)]
    if resource:
        facts.append(("Resource", resource))
    if subject:
        facts.append(("Subject", subject))
    if approval:
        facts.append(("Action", str(approval.get("action", ""))))
        if approval.get("expiresAt"):
            facts.append(("Expires", str(approval["expiresAt"])))
        if event == "pending" and api_base is not None:
            facts.append(("API", f"POST {api_base}/api/approvals/{approval.get('healer', healer)}/{approval['id']}"))
    for key in ("rule", "tenant", "from", "to", "by"):
        if isinstance(details.get(key), (str, int, float)) and str(details[key]):
            facts.append((key.capitalize(), str(details[key])))
    incident = incident_of(entry)
    facts += [("Incident", incident), ("Audit record", str(entry.get("id", ""))), ("At", str(entry.get("at", "")))]
    return Notice(audit_id=str(entry.get("id", "")), event=event, healer=healer,
                  outcome=str(entry.get("outcome", "")), incident=incident, title=title, status=status,
                  text=str(entry.get("reason", "")) + (f"\n{details['attentionText']}"
                                                      if isinstance(details.get("attentionText"), str) else ""),
                  at=str(entry.get("at", "")), resource=resource, subject=subject,
                  facts=[(k, v[:300]) for k, v in facts], links=dict(links or {}),
                  expires_at=str(approval["expiresAt"]) if approval and approval.get("expiresAt") else None,
                  kind=str(details["attentionKind"])[:60] if event == "attention" and details.get("attentionKind")
                  else _KIND.get(event, event))


# ---------------------------------------------------------------------------------------------- formats

def md_escape(text: str) -> str:
    """Untrusted text for an Adaptive Card TextBlock/FactSet (markdown subset): no links, no formatting."""
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), _MD_SPECIAL.sub(r"\\\1", text))


def teams(n: Notice) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": md_escape(n.title), "size": "Medium", "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": md_escape(n.status), "weight": "Bolder", "wrap": True,
         "color": _TEAMS_COLOR.get(n.event, "Attention")},
        {"type": "TextBlock", "text": md_escape(n.text[:4000]), "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": md_escape(v)} for k, v in n.facts]},
    ]
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.5", "body": body, "msteams": {"width": "Full"}}
    if n.links:
        card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": url,
                            "style": "positive" if label == "Approve" else "destructive"}
                           for label, url in n.links.items()]
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def _plain(text: str, limit: int) -> dict[str, Any]:
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return {"type": "plain_text", "text": text or " ", "emoji": False}


def slack(n: Notice) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(n.title, 150)},
        {"type": "section", "text": _plain(f"{n.status}\n{n.text}", 3000)},
        {"type": "section", "fields": [_plain(f"{k}: {v}", 2000) for k, v in n.facts[:10]]},
    ]
    if n.links:
        blocks.append({"type": "actions", "block_id": "healer-approval", "elements": [
            {"type": "button", "text": _plain(label, 75), "url": url, "action_id": f"healer-{label.lower()}",
             "style": "primary" if label == "Approve" else "danger"} for label, url in n.links.items()]})
    blocks.append({"type": "context", "elements": [_plain(f"Incident {n.incident} · audit {n.audit_id}", 2000)]})
    fallback = f"{n.title}: {n.status}. {n.text}"[:3000]
    # The fallback is mrkdwn (it shows in notifications): Slack's three control characters are escaped, so
    # untrusted text cannot mention (<!here>) or link (<url|text>).
    return {"text": fallback.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), "blocks": blocks}


def generic(n: Notice) -> dict[str, Any]:
    return {"version": 2, "kind": n.kind or _KIND.get(n.event, n.event), "title": f"{n.title}: {n.status}"[:200],
            "text": n.text[:4000], "facts": dict(n.facts), "event": n.event, "healer": n.healer,
            "outcome": n.outcome, "incident": n.incident, "auditId": n.audit_id, "at": n.at,
            "resource": n.resource, "subject": n.subject, "links": {k.lower(): v for k, v in n.links.items()},
            "expiresAt": n.expires_at}


RENDERERS = {"teams": teams, "slack": slack, "generic": generic}

"""Stand-in for a Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is received").

It takes what the workflow's trigger takes: `{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <Adaptive Card>}]}` and answers 202 Accepted. It checks the
card against Adaptive Cards schema 1.5 for the parts senders use: `type: AdaptiveCard`, `version` ≤ 1.5, known body
element types (TextBlock needs `text`, FactSet needs `facts` of {title, value} strings, containers recurse),
actions of known types with an absolute `url` for Action.OpenUrl, and no Action.Submit/Action.Execute (a card
posted by a workflow has no bot to receive them). Connector-era MessageCards are refused (retired).
The real trigger answers 202 and fails later in the flow's run history; this stand-in answers 400 with the reason
instead, so a test sees a bad card at once. Payloads over 28 KB are refused (Teams' message size limit).

Run: `python -m standins.teams --port N`; POST to `/workflows/<anything>`.
"""
from __future__ import annotations

import json
from typing import Any

from standins.chat_hooks import RecordingHook
from standins.httpbase import route, serve

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ELEMENTS = {"TextBlock", "RichTextBlock", "Image", "ImageSet", "FactSet", "Container", "ColumnSet", "ActionSet",
            "Table", "Media"}
ACTIONS = {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}
VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"}
MAX_BYTES = 28 * 1024


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def check_elements(items: Any, where: str) -> str | None:
    if not isinstance(items, list):
        return f"{where} must be an array"
    for i, el in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(el, dict) or el.get("type") not in ELEMENTS:
            return f"{at}: unknown element type {el.get('type') if isinstance(el, dict) else el!r}"
        kind = el["type"]
        if kind == "TextBlock" and not _str(el.get("text")):
            return f"{at}: TextBlock requires a non-empty 'text'"
        if kind == "FactSet":
            facts = el.get("facts")
            if not isinstance(facts, list) or not all(isinstance(f, dict) and isinstance(f.get("title"), str)
                                                      and isinstance(f.get("value"), str) for f in facts):
                return f"{at}: FactSet requires 'facts' of {{title, value}} strings"
        if kind == "Container" and (err := check_elements(el.get("items"), f"{at}.items")):
            return err
        if kind == "ColumnSet":
            for j, col in enumerate(el.get("columns") or []):
                if err := check_elements(col.get("items", []), f"{at}.columns[{j}].items"):
                    return err
        if kind == "ActionSet" and (err := check_actions(el.get("actions"), f"{at}.actions")):
            return err
    return None


def check_actions(actions: Any, where: str) -> str | None:
    if actions is None:
        return None
    if not isinstance(actions, list):
        return f"{where} must be an array"
    for i, act in enumerate(actions):
        kind = act.get("type") if isinstance(act, dict) else None
        if kind in ("Action.Submit", "Action.Execute"):
            return f"{where}[{i}]: {kind} is not supported on a card posted by a workflow (no bot receives it)"
        if kind not in ACTIONS:
            return f"{where}[{i}]: unknown action type {kind!r}"
        if kind == "Action.OpenUrl" and not (_str(act.get("url")) and act["url"].startswith(("https://", "http://"))):
            return f"{where}[{i}]: Action.OpenUrl requires an absolute 'url'"
        if not _str(act.get("title")):
            return f"{where}[{i}]: an action needs a 'title'"
    return None


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if len(json.dumps(body).encode()) > MAX_BYTES:
        return "the message is larger than 28 KB"
    if body.get("@type") == "MessageCard" or body.get("type") != "message":
        return "expected {\"type\": \"message\", \"attachments\": [...]} (MessageCard is retired)"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty array"
    for i, att in enumerate(attachments):
        if not isinstance(att, dict) or att.get("contentType") != CARD_TYPE:
            return f"attachments[{i}].contentType must be {CARD_TYPE}"
        card = att.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return f"attachments[{i}].content.type must be AdaptiveCard"
        if card.get("version") not in VERSIONS:
            return f"attachments[{i}].content.version must be 1.0 to 1.5, got {card.get('version')!r}"
        if err := check_elements(card.get("body", []), f"attachments[{i}].content.body"):
            return err
        if err := check_actions(card.get("actions"), f"attachments[{i}].content.actions"):
            return err
    return None


class TeamsWorkflowHandler(RecordingHook):
    """Teams Workflows webhook stand-in."""
    ok_status = 202

    def validate(self, body: Any) -> str | None:
        return validate(body)

    def accept(self) -> None:
        self.send_raw(202, b"", "text/plain")

    def refuse(self, error: str) -> None:
        self.send_json(400, {"error": {"code": "InvalidRequestContent", "message": error}})

    @route("POST", r"/workflows/.+")
    def hook(self) -> None:
        self.take()


if __name__ == "__main__":
    serve(TeamsWorkflowHandler)

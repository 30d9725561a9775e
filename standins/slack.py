"""Stand-in for a Slack incoming webhook (`https://hooks.slack.com/services/T…/B…/…`).

It answers as Slack does: 200 with the body `ok`, or a 4xx with a plain-text error code: `invalid_payload` (not
JSON), `no_text` (neither `text` nor `blocks`), `invalid_blocks` (a block Slack would reject). Blocks are checked
against Block Kit's documented shapes and limits for the types senders use: at most 50 blocks; `header`
(plain_text, ≤ 150 chars), `section` (text ≤ 3000 or up to 10 fields ≤ 2000 each), `context` (≤ 10 text/image
elements), `actions` (≤ 25 elements; buttons with plain_text ≤ 75, url ≤ 3000, style primary|danger), `divider`,
`image`; text objects are `plain_text` or `mrkdwn`; `block_id`/`action_id` ≤ 255.

Run: `python -m standins.slack --port N`; POST to `/services/<anything>`.
"""
from __future__ import annotations

from typing import Any

from standins.chat_hooks import RecordingHook
from standins.httpbase import route, serve

BLOCKS = {"section", "header", "context", "actions", "divider", "image", "rich_text"}


def _text(obj: Any, limit: int, plain_only: bool = False) -> bool:
    if not isinstance(obj, dict) or obj.get("type") not in (("plain_text",) if plain_only else ("plain_text",
                                                                                                  "mrkdwn")):
        return False
    text = obj.get("text")
    return isinstance(text, str) and 0 < len(text) <= limit


def _block_error(b: Any) -> str | None:
    if not isinstance(b, dict) or b.get("type") not in BLOCKS:
        return "unknown block type"
    if len(str(b.get("block_id", ""))) > 255:
        return "block_id longer than 255"
    kind = b["type"]
    if kind == "header" and not _text(b.get("text"), 150, plain_only=True):
        return "header needs plain_text of at most 150 characters"
    if kind == "section":
        fields = b.get("fields")
        if "text" not in b and not fields:
            return "section needs text or fields"
        if "text" in b and not _text(b["text"], 3000):
            return "section text must be a text object of at most 3000 characters"
        if fields is not None and (not isinstance(fields, list) or len(fields) > 10
                                   or not all(_text(f, 2000) for f in fields)):
            return "section fields: at most 10 text objects of at most 2000 characters"
    if kind == "context":
        els = b.get("elements")
        if not isinstance(els, list) or not 0 < len(els) <= 10 or not all(
                _text(e, 3000) or (isinstance(e, dict) and e.get("type") == "image") for e in els):
            return "context needs 1 to 10 text or image elements"
    if kind == "actions":
        els = b.get("elements")
        if not isinstance(els, list) or not 0 < len(els) <= 25:
            return "actions needs 1 to 25 elements"
        for e in els:
            if not isinstance(e, dict) or e.get("type") != "button":
                continue
            if not _text(e.get("text"), 75, plain_only=True):
                return "button text must be plain_text of at most 75 characters"
            if "url" in e and (not isinstance(e["url"], str) or len(e["url"]) > 3000):
                return "button url longer than 3000"
            if e.get("style") not in (None, "primary", "danger"):
                return "button style must be primary or danger"
            if len(str(e.get("action_id", ""))) > 255:
                return "action_id longer than 255"
    return None


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "invalid_payload"
    blocks = body.get("blocks")
    if not body.get("text") and not blocks:
        return "no_text"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        if any(_block_error(b) for b in blocks):
            return "invalid_blocks"
    return None


class SlackWebhookHandler(RecordingHook):
    """Slack incoming webhook stand-in."""

    def validate(self, body: Any) -> str | None:
        return validate(body)

    def accept(self) -> None:
        self.send_raw(200, b"ok", "text/html")

    def refuse(self, error: str) -> None:
        self.send_raw(400, error.encode(), "text/html")

    @route("POST", r"/services/.+")
    def hook(self) -> None:
        self.take()


if __name__ == "__main__":
    serve(SlackWebhookHandler)

"""The Teams and Slack stand-ins answer like the services: good payloads 202 / 200 "ok", bad ones 4xx with why."""
from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hi"}]}


def teams_post(chat, body):
    return httpx.post(chat.url("teams") + "/workflows/x/triggers/manual/paths/invoke", json=body)


def slack_post(chat, body):
    return httpx.post(chat.url("slack") + "/services/T/B/X", json=body)


def envelope(card):
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "content": card}]}


def test_teams_accepts_a_card_with_202_and_records_it(chat):
    chat.reset()
    assert teams_post(chat, envelope(CARD)).status_code == 202
    assert chat.received("teams")[0]["body"]["attachments"][0]["content"] == CARD


@pytest.mark.parametrize("body, why", [
    ({"@type": "MessageCard", "@context": "https://schema.org/extensions", "text": "hi"}, "MessageCard"),
    (envelope({**CARD, "version": "1.6"}), "version"),
    (envelope({**CARD, "body": [{"type": "Marquee", "text": "x"}]}), "unknown element"),
    (envelope({**CARD, "body": [{"type": "TextBlock"}]}), "TextBlock requires"),
    (envelope({**CARD, "body": [{"type": "FactSet", "facts": [{"title": "a", "value": 1}]}]}), "FactSet"),
    (envelope({**CARD, "actions": [{"type": "Action.Submit", "title": "Approve"}]}), "not supported"),
    (envelope({**CARD, "actions": [{"type": "Action.OpenUrl", "title": "Go", "url": "/relative"}]}), "absolute"),
    ({"type": "message", "attachments": [{"contentType": "text/plain", "content": "x"}]}, "contentType"),
])
def test_teams_refuses_what_the_card_schema_refuses(chat, body, why):
    resp = teams_post(chat, body)
    assert resp.status_code == 400 and why in resp.json()["error"]["message"]


def test_slack_answers_ok_or_the_error_code(chat):
    good = {"text": "fallback", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "t"}}]}
    resp = slack_post(chat, good)
    assert (resp.status_code, resp.text) == (200, "ok")
    for body, code in (({}, "no_text"),
                       ({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text",
                                                                             "text": "x" * 151}}]}, "invalid_blocks"),
                       ({"text": "x", "blocks": [{"type": "section"}]}, "invalid_blocks"),
                       ({"text": "x", "blocks": [{"type": "actions", "elements": [
                           {"type": "button", "text": {"type": "mrkdwn", "text": "*a*"}, "url": "https://x"}]}]},
                        "invalid_blocks"),
                       ({"text": "x", "blocks": [{"type": "section", "fields": [
                           {"type": "plain_text", "text": "f"}] * 11}]}, "invalid_blocks")):
        resp = slack_post(chat, body)
        assert (resp.status_code, resp.text) == (400, code)
    resp = httpx.post(chat.url("slack") + "/services/T/B/X", content=b"{not json")
    assert (resp.status_code, resp.text) == (400, "invalid_payload")

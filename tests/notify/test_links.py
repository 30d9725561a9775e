"""Signed approval links: GET never decides, POST decides once through the approvals path, then 410."""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from shared import approval_links, approvals, audit
from shared.config import Settings
from tests.functions import call, http, trigger
from tests.notify.conftest import LINK_SECRET
from tests.notify_helpers import drain, queued

pytestmark = pytest.mark.integration
APP = "/subscriptions/1/resourceGroups/prod/providers/Microsoft.Web/sites/shop-web"
NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.timezone.utc)


def approval(**over) -> dict:
    return {"id": "abc123", "healer": "rollback", "action": "rollback.swap", "resource": APP, "subject": "alert-1",
            "expiresAt": (NOW + dt.timedelta(hours=4)).isoformat(), **over}


# ---------------------------------------------------------------------------------------------- pure

def test_token_verifies_and_binds_the_decision():
    token = approval_links.sign(LINK_SECRET.encode(), approval(), "approve")
    claim = approval_links.verify(LINK_SECRET.encode(), token, NOW)
    assert (claim.approval_id, claim.action, claim.decision) == ("abc123", "rollback.swap", "approve")
    assert claim.expires == NOW + dt.timedelta(hours=4)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),      # signature altered
    lambda t: t.replace(t.split(".")[0], approval_links.sign(b"x" * 40, approval(), "reject").split(".")[0]),
    lambda t: t.split(".")[0],                                         # signature cut off
    lambda t: "garbage",
])
def test_tampered_tokens_are_403(mangle):
    token = approval_links.sign(LINK_SECRET.encode(), approval(), "approve")
    with pytest.raises(approval_links.LinkError) as err:
        approval_links.verify(LINK_SECRET.encode(), mangle(token), NOW)
    assert err.value.status == 403


def test_expired_token_is_410_and_other_secrets_are_403():
    token = approval_links.sign(LINK_SECRET.encode(), approval(), "approve")
    with pytest.raises(approval_links.LinkError) as err:
        approval_links.verify(LINK_SECRET.encode(), token, NOW + dt.timedelta(hours=5))
    assert err.value.status == 410 and "expired" in err.value.reason
    with pytest.raises(approval_links.LinkError) as err:
        approval_links.verify(b"y" * 40, token, NOW)
    assert err.value.status == 403


def test_claim_must_match_the_approvals_action_and_resource():
    claim = approval_links.verify(LINK_SECRET.encode(), approval_links.sign(LINK_SECRET.encode(), approval(),
                                                                            "approve"), NOW)
    other = {**approval(resource=APP.replace("shop-web", "pay-web")), "status": "pending"}
    with pytest.raises(approval_links.LinkError) as err:
        approval_links.check_approval(claim, other, NOW)
    assert err.value.status == 403
    same = {**approval(resource=APP.upper() + "/"), "status": "pending"}
    assert approval_links.check_approval(claim, same, NOW)


# ---------------------------------------------------------------------------------------------- HTTP

@pytest.fixture
def parked(notify_env):
    now = dt.datetime.now(dt.timezone.utc)
    data, _ = approvals.park(Settings(), healer="rollback", subject="alert-<b>1</b>", action="rollback.swap",
                             resource=APP, reason="5xx <script>alert(1)</script>", now=now, queue_name="healer-rollback",
                             message={"v": 1, "kind": "approved", "alert": {"alert_id": "x"}, "attempt": 0})
    audit.record(Settings(), healer="rollback", outcome="pending", reason="asked", resource=APP,
                 subject=data["subject"], details={"approvalId": data["id"], "approval": approvals.summary(data)})
    drain()
    return data


def links_from_card(chat) -> dict[str, str]:
    [card] = chat.received("teams")
    actions = card["body"]["attachments"][0]["content"]["actions"]
    return {a["title"]: a["url"] for a in actions}


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def get(functions, token: str):
    return call(functions, "approval_link", http("GET", "approval-link", params={"t": token}))


def post(functions, token: str, by: str = "Ada"):
    return call(functions, "approval_link", http("POST", "approval-link", body=urlencode({"t": token, "by": by})
                                                 .encode(), headers={"content-type":
                                                                     "application/x-www-form-urlencoded"}))


def test_route_is_anonymous_get_and_post(functions):
    t = trigger(functions["approval_link"])
    assert t["route"] == "approval-link" and t["authLevel"].upper() == "ANONYMOUS"
    assert sorted(m.upper() for m in t["methods"]) == ["GET", "POST"]


def test_every_card_carries_absolute_links_and_the_api_fallback(parked, notify_env):
    links = links_from_card(notify_env)
    assert set(links) == {"Approve", "Reject"}
    assert all(u.startswith("https://healer.example.net/api/approval-link?t=") for u in links.values())
    slack = notify_env.received("slack")[0]["body"]
    buttons = next(b for b in slack["blocks"] if b["type"] == "actions")["elements"]
    assert {b["text"]["text"]: b["url"] for b in buttons} == links
    assert notify_env.received("generic")[0]["body"]["links"] == {k.lower(): v for k, v in links.items()}


def test_get_shows_an_escaped_form_and_changes_nothing(parked, notify_env, functions):
    token = token_of(links_from_card(notify_env)["Approve"])
    for _ in range(3):  # link scanners and previews fetch it
        resp = get(functions, token)
        assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_body().decode()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;1&lt;/b&gt;" in page
    assert 'method="post"' in page and resp.headers["Cache-Control"] == "no-store"
    assert approvals.get(Settings(), "rollback", parked["id"]).data["status"] == "pending"


def test_post_approves_once_enqueues_the_work_then_410(parked, notify_env, functions):
    token = token_of(links_from_card(notify_env)["Approve"])
    resp = post(functions, token)
    assert resp.status_code == 200, resp.get_body()
    assert approvals.get(Settings(), "rollback", parked["id"]).data["status"] == "approved"
    assert [m.get("approvalId") for m in queued("healer-rollback")] == [parked["id"]]
    assert post(functions, token).status_code == 410
    assert get(functions, token).status_code == 410
    reject = token_of(links_from_card(notify_env)["Reject"])
    again = post(functions, reject)
    assert again.status_code == 410 and b"already approved" in again.get_body()
    day = dt.datetime.now(dt.timezone.utc).date()
    [approved] = audit.list_records(Settings(), day=day, outcome="approved")
    assert approved["details"]["via"] == "signed-link" and "Ada (signed link)" in approved["reason"]
    drain()  # the decision notifies, in the same incident
    decided = [r["body"] for r in notify_env.received("generic")]
    assert [d["event"] for d in decided] == ["pending", "approved"]
    assert decided[0]["incident"] == decided[1]["incident"] and decided[0]["title"].split(":")[0] == \
        decided[1]["title"].split(":")[0]


def test_reject_link_rejects(parked, notify_env, functions):
    resp = post(functions, token_of(links_from_card(notify_env)["Reject"]))
    assert resp.status_code == 200
    assert approvals.get(Settings(), "rollback", parked["id"]).data["status"] == "rejected"


def test_tampered_link_is_403_with_a_reason(parked, notify_env, functions):
    token = token_of(links_from_card(notify_env)["Approve"])
    body, sig = token.split(".")
    payload = json.loads(approval_links._unb64(body))
    payload["d"] = "reject"
    forged = approval_links._b64(json.dumps(payload).encode()) + "." + sig
    resp = post(functions, forged)
    assert resp.status_code == 403 and b"signature does not match" in resp.get_body()
    assert approvals.get(Settings(), "rollback", parked["id"]).data["status"] == "pending"


def test_expired_approval_link_is_410(notify_env, functions):
    token = approval_links.sign(LINK_SECRET.encode(), approval(expiresAt=(dt.datetime.now(dt.timezone.utc)
                                                                         - dt.timedelta(minutes=1)).isoformat()),
                                "approve")
    resp = post(functions, token)
    assert resp.status_code == 410 and b"expired" in resp.get_body()


def test_links_off_without_secret(notify_env, monkeypatch, functions):
    monkeypatch.delenv("HEALER_APPROVAL_LINK_SECRET")
    resp = get(functions, "x.y")
    assert resp.status_code == 404 and b"HEALER_APPROVAL_LINK_SECRET" in resp.get_body()


def test_an_approval_restricted_to_approver_groups_gets_no_links(notify_env, functions):
    now = dt.datetime.now(dt.timezone.utc)
    data, _ = approvals.park(Settings(), healer="rollback", subject="alert-2", action="rollback.swap", resource=APP,
                             reason="r", now=now, queue_name="healer-rollback", message={"v": 1})
    from shared.state import Store
    store = Store(Settings(), "approvals")
    rec = store.get("rollback", data["id"])
    rec.data["approvers"] = {"groups": ["0000-group"]}
    store.replace(rec)
    audit.record(Settings(), healer="rollback", outcome="pending", reason="asked", resource=APP, subject="alert-2",
                 details={"approvalId": data["id"], "approval": approvals.summary(data)})
    drain()
    [card] = notify_env.received("teams")
    assert "actions" not in card["body"]["attachments"][0]["content"]
    forged = approval_links.sign(LINK_SECRET.encode(), {**data, "healer": "rollback"}, "approve")
    resp = post(functions, forged)
    assert resp.status_code == 403 and b"approver roles or groups" in resp.get_body()

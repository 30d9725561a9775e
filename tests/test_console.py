"""The operator console in a real browser: headless Chromium (Debian's) driven by Playwright, against Healer running
in the local Functions host stand-in. Screenshots of each page go to out/screenshots/ (see README, "Operating
Healer")."""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

from drill.host import start_healer
from standins.stack import site_id

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
           '<a href="javascript:window.__pwned=3">click</a>')
APP = site_id("console-prod", "console-web")


@pytest.fixture(scope="module")
def host(local_azure):
    prefix = "con" + uuid.uuid4().hex[:8]
    settings = {"HEALER_TABLE_PREFIX": prefix,
                "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
                    {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}),
                "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": APP, "slot": "staging"}])}
    healer = start_healer(local_azure, settings, name="healer-console")
    try:
        yield healer, {**local_azure.env(), **settings}
    finally:
        healer.stop()


@pytest.fixture(scope="module")
def seeded(host):
    """What an attacker controls reaches the console: an alert rule's name and an exception message."""
    healer, env = host
    from shared import approvals, audit
    from shared.config import Settings
    settings = Settings(env)
    now = dt.datetime.now(dt.timezone.utc)
    approvals.park(settings, healer="rollback", subject="alert-" + uuid.uuid4().hex[:8], action="rollback.swap",
                   resource=APP, reason=f"alert rule {HOSTILE} fired: swap v41 back", message={"kind": "test"},
                   queue_name="healer-rollback", now=now)
    audit.record(settings, healer="errors", outcome="acted", reason=f"drafted PR for {HOSTILE}", resource=APP,
                 subject="fp-1", details={"message": HOSTILE, "url": "javascript:alert(1)"}, now=now)
    audit.record(settings, healer="rollback", outcome="acted", reason="rolled back v42 → v41", resource=APP,
                 subject="alert-2", details={"before": {"production": "v42"}, "after": {"production": "v41"}},
                 now=now - dt.timedelta(days=2))
    return healer


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run scripts/bootstrap.sh")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def open_console(browser, healer, page_name: str):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{healer.url}/console?code={healer.key}#{page_name}")
    page.wait_for_selector(f"main[data-page='{page_name.split('?')[0]}']", timeout=30_000)
    return page, dialogs


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def test_pending_shows_the_evidence_and_renders_hostile_text_inert(browser, seeded):
    page, dialogs = open_console(browser, seeded, "pending")
    card = page.locator("section.card").first
    assert "rollback.swap on console-web" in card.inner_text()
    assert HOSTILE in card.inner_text(), "the hostile text is shown as text"
    assert page.evaluate("window.__pwned") is None and not dialogs, "nothing in it ran"
    assert page.locator("section.card script, section.card img, section.card a[href^='javascript']").count() == 0
    assert "read-only" in page.locator("#who").inner_text(), "function-key mode: the console is read-only"
    assert page.locator("button.approve").first.is_disabled()
    assert "code=" not in page.url, "the key is taken out of the address bar"
    shot(page, "pending")
    page.close()


def test_decisions_timeline_spans_days_and_expands(browser, seeded):
    three_days = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    page, dialogs = open_console(browser, seeded, f"decisions?from={three_days}")
    rows = page.locator("tr.record")
    assert rows.count() >= 2, "today's and two days ago's decisions"
    text = page.locator("main").inner_text()
    assert "rolled back v42 → v41" in text and HOSTILE in text
    rows.first.click()
    assert page.locator("tr.detail:not([hidden]) pre").first.inner_text().startswith("{")
    assert page.locator("main a[href^='javascript']").count() == 0 and page.evaluate("window.__pwned") is None
    shot(page, "decisions")
    page.goto(page.url.split("#")[0] + "#decisions?outcome=acted&healer=rollback&from=" + three_days)
    from playwright.sync_api import expect
    expect(page.locator("tr.record")).to_have_count(1)
    page.close()


def test_controls_and_health_pages_load(browser, seeded):
    for name in ("controls", "health"):
        page, dialogs = open_console(browser, seeded, name)
        assert "status-bad" not in page.locator("main").inner_html() or name == "health", page.locator("main").inner_text()
        shot(page, name)
        page.close()


def test_the_console_is_served_with_headers_that_keep_script_out(seeded):
    r = httpx.get(f"{seeded.url}/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert httpx.get(f"{seeded.url}/console/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{seeded.url}/console/..%2Fshared%2Fconfig.py").status_code == 404
    assert httpx.get(f"{seeded.url}/console/function_app.py").status_code == 404

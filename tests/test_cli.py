"""The `healer` CLI end to end, against Healer running in the local Functions host stand-in (as the drill runs it):
approve a pending swap, read the audit across days, flip controls, check a typo'd settings file."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cli.main import parse_since
from drill.host import start_healer
from standins.stack import build_of, seed_bad_release, site_id
from tests.alert_samples import alert_body

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
RG, APP = "cli-prod", "cli-web"


def healer_cli(host, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`healer ARGS` as an operator types it (the console script runs cli.main:main, as `python -m cli` does)."""
    full_env = {**os.environ, "HEALER_URL": host.url if host else "", "HEALER_KEY": host.key if host else "",
                "HEALER_OPERATOR_KEY": host.operator_key if host else "",
                "HEALER_OPERATOR_NAME": "oncall@example.com", "COLUMNS": "160", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)


def as_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def host(local_azure):
    saved = dict(os.environ)
    os.environ.update(local_azure.env())  # the test's "pipeline" is an Azure client too
    ctl = local_azure.arm_control()
    ctl.reset()
    target = site_id(RG, APP)
    settings = {"HEALER_TABLE_PREFIX": "cli" + uuid.uuid4().hex[:8],
                "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
                    {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}),
                "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": target, "slot": "staging"}])}
    healer = start_healer(local_azure, settings, name="healer-cli")
    try:
        yield healer, ctl, target
    finally:
        healer.stop()
        ctl.close()
        os.environ.clear()
        os.environ.update(saved)


def poll(fn, deadline_s: float = 60.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("condition not met before the deadline")


def test_on_call_approves_a_pending_swap_from_the_terminal(host, local_azure):
    healer, ctl, target = host
    seed_bad_release(ctl, local_azure.arm_url, RG, APP, good="v41", bad="v42")
    body = alert_body("metric_fired.json", alert_id=str(uuid.uuid4()), rule="cli-web-http5xx", condition="Fired",
                      fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1),
                      custom_properties={"healer.target": target, "healer.slot": "staging"})
    with healer.client() as client:
        assert client.post("/alerts/rollback", json=body).status_code == 202
    pending = poll(lambda: as_json(healer_cli(healer, "--json", "approvals"))["pending"])
    [approval] = pending
    assert approval["healer"] == "rollback" and approval["action"] == "rollback.swap"
    table = healer_cli(healer, "approvals")
    assert approval["id"] in table.stdout and "rollback.swap" in table.stdout

    done = healer_cli(healer, "approve", approval["id"], "--reason", "build v42 broke checkout")
    assert done.returncode == 0, done.stderr
    assert "approved" in done.stdout
    poll(lambda: build_of(ctl, RG, APP) == "v41")
    again = healer_cli(healer, "approve", approval["id"], "--reason", "twice")
    assert again.returncode == 4 and "no pending approval" in again.stderr, "a decided approval cannot be re-used"

    records = poll(lambda: [r for r in as_json(healer_cli(healer, "--json", "audit", "--since", "2d",
                                                          "--healer", "rollback"))["records"]
                            if r["outcome"] == "acted"])
    assert records and records[0]["resource"].lower() == target.lower()
    approved = as_json(healer_cli(healer, "--json", "audit", "--since", "2d", "--outcome", "approved"))["records"]
    assert any("oncall@example.com" in r["reason"] for r in approved), "the approver is on record"


def test_controls_and_status_from_the_terminal(host):
    healer, _, target = host
    assert healer_cli(healer, "kill", "on", "--resource", target, "--reason", "maintenance").returncode == 0
    status = as_json(healer_cli(healer, "--json", "status"))
    assert status["pendingApprovals"] == 0 and "controls" in status
    assert healer_cli(healer, "dry-run", "on").returncode == 0
    assert as_json(healer_cli(healer, "--json", "status"))["controls"]["dry_run"] is True
    assert healer_cli(healer, "dry-run", "off").returncode == 0
    assert healer_cli(healer, "kill", "off", "--resource", target).returncode == 0
    bad = healer_cli(healer, "kill", "maybe")
    assert bad.returncode == 2 and "on or off" in bad.stderr


def test_errors_are_one_line_with_a_cause_and_a_fix(host, tmp_path):
    healer, _, _ = host
    wrong_key = healer_cli(healer, "approvals", env={"HEALER_KEY": "not-the-key"})
    assert wrong_key.returncode == 3 and wrong_key.stderr.count("\n") == 1 and "HEALER_KEY" in wrong_key.stderr
    nowhere = healer_cli(None, "approvals", env={"HEALER_URL": "http://127.0.0.1:9/api"})
    assert nowhere.returncode == 5 and "cannot reach Healer" in nowhere.stderr
    no_url = healer_cli(None, "approvals", env={"HEALER_URL": "", "PATH": "/usr/bin:/bin"})
    assert no_url.returncode == 2 and "HEALER_URL" in no_url.stderr


def test_config_check_names_the_typo_and_its_fix(tmp_path):
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "HEALER_DRYRUN": "true", "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": []})}}))
    proc = healer_cli(None, "config", "check", str(settings))
    assert proc.returncode == 6
    assert "HEALER_DRYRUN" in proc.stdout and "did you mean HEALER_DRY_RUN" in proc.stdout
    good = tmp_path / "good.env"
    good.write_text("HEALER_DRY_RUN=true\nHEALER_POLICY={\"version\": 1, \"default\": \"deny\", \"rules\": []}\n")
    ok = healer_cli(None, "--json", "config", "check", str(good))
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"problems": [], "valid": True}


def test_version_is_the_one_version():
    from shared.version import __version__
    proc = healer_cli(None, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == __version__


def test_since_accepts_durations_and_dates():
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)
    assert parse_since("7d", now) == now - dt.timedelta(days=7)
    assert parse_since("90m", now) == now - dt.timedelta(minutes=90)
    assert parse_since("2026-11-30", now) == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)

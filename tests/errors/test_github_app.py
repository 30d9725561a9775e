"""GitHub App authentication: githubkit signs the app JWT, the GitHub stand-in verifies it against the app's public
key and mints installation tokens, and every repository call carries one. Bad keys, wrong ids and half-configured
Apps fail clearly (audited, naming the settings, quoting no secret)."""
from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
from azure.functions.timer import TimerRequest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from healers.errors import github, shell
from healers.errors.triage import Window
from shared import audit
from shared.config import ConfigError, Settings
from standins.github import StandinApp, start_github
from tests.errors import synth
from tests.errors.conftest import OWNER, REPO
from tests.functions import call

APP_ID, INSTALLATION_ID = 424242, 7777777
DAY = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)
W = Window(DAY - dt.timedelta(days=1), DAY)


def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="session")
def app_key() -> str:
    return rsa_pem()


@pytest.fixture(scope="session")
def app_github(workdir, app_key):
    gh = start_github(workdir, "ghp_" + secrets.token_hex(18), StandinApp(APP_ID, INSTALLATION_ID,
                                                                         public_pem(app_key)))
    try:
        yield gh
    finally:
        gh.stop()


@pytest.fixture
def app_env(errors_env, app_github, app_key, monkeypatch):
    """errors_env with GitHub reached through the App stand-in as the App installation (no token)."""
    gh = app_github
    gh.reset()
    gh.create_repo(OWNER, REPO, dict(synth.SOURCES))
    github._TOKEN_CACHES.clear()  # a fresh host: no installation token cached yet
    monkeypatch.delenv("HEALER_ERRORS_GITHUB_TOKEN")
    for k, v in {"HEALER_ERRORS_GITHUB_API_URL": gh.url, "HEALER_ERRORS_GITHUB_APP_ID": str(APP_ID),
                 "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID": str(INSTALLATION_ID),
                 "HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY": app_key}.items():
        monkeypatch.setenv(k, v)
    errors_env["la"].seed("AppExceptions", synth.day_of_rows("workspace", W.start, 400, 21))
    return {**errors_env, "gh": gh}


def run() -> shell.Report:
    return shell.run(Settings(), W, now=lambda: W.end + dt.timedelta(minutes=5))


def failed_records() -> list[dict]:
    return list(audit.list_records(Settings(), day=W.end.date(), healer="errors", outcome="failed"))


# ---------------------------------------------------------------------------------------------- over the wire

@pytest.mark.integration
def test_run_drafts_prs_as_the_app_installation(app_env, app_key):
    gh = app_env["gh"]
    report = run()
    assert [d["result"] for d in report.drafted] == ["created"] * 5
    pulls = gh.pulls()
    assert len(pulls) == 5 and all(p["draft"] for p in pulls)
    reqs = gh.requests()
    assert reqs[0]["method"] == "POST" and reqs[0]["path"] == f"/app/installations/{INSTALLATION_ID}/access_tokens"
    assert reqs[0]["auth"] == "app-jwt"
    assert [t["n"] for t in gh.app_tokens()] == [1]  # minted once, reused by githubkit while valid
    api = [r for r in reqs if r["path"].startswith("/repos/")]
    assert len(api) > 20 and {r["auth"] for r in api} == {"installation:1"}  # no JWT or other credential
    # nothing of the key reaches the audit
    body = app_key.splitlines()[5]
    assert not [r for r in audit.list_records(Settings(), day=W.end.date(), healer="errors") if body in json.dumps(r)]
    # a second run in the same host reuses the cached token and changes nothing
    again = run()
    assert [d["result"] for d in again.drafted] == ["unchanged"] * 5 and len(gh.app_tokens()) == 1


@pytest.mark.integration
def test_short_lived_installation_tokens_are_refreshed_before_they_expire(app_env):
    gh = app_env["gh"]
    gh.app_token_seconds(60)  # githubkit keeps a token until a minute before expires_at: so never, here
    report = run()
    assert [d["result"] for d in report.drafted] == ["created"] * 5
    tokens = gh.app_tokens()
    api = [r for r in gh.requests() if r["path"].startswith("/repos/")]
    assert len(tokens) == len(api) > 20  # a fresh token for every call
    assert [r["auth"] for r in api] == [f"installation:{t['n']}" for t in tokens]


@pytest.mark.integration
@pytest.mark.parametrize("case", ["wrong app id", "another key", "wrong installation"])
def test_rejected_app_credentials_fail_clearly_and_are_audited(app_env, monkeypatch, case):
    gh = app_env["gh"]
    if case == "wrong app id":
        monkeypatch.setenv("HEALER_ERRORS_GITHUB_APP_ID", str(APP_ID + 1))
    elif case == "another key":
        monkeypatch.setenv("HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY", rsa_pem())
    else:
        monkeypatch.setenv("HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID", str(INSTALLATION_ID + 1))
    status = 404 if case == "wrong installation" else 401
    report = run()
    assert [d["result"] for d in report.drafted] == ["failed"] * 5
    first, *rest = report.drafted
    assert f"GitHub App authentication failed: the installation token request answered HTTP {status}" \
        in first["detail"] and "HEALER_ERRORS_GITHUB_APP_ID" in first["detail"]
    assert all(d["detail"].startswith("not attempted: GitHub App authentication failed") for d in rest)
    # one token request, then GitHub is left alone; nothing written
    installation = INSTALLATION_ID + (case == "wrong installation")
    assert [r["path"] for r in gh.requests()] == [f"/app/installations/{installation}/access_tokens"]
    assert gh.pulls() == [] and gh.app_tokens() == []
    records = failed_records()
    assert len(records) == 5 and all("GitHub App authentication failed" in r["reason"] for r in records)


@pytest.mark.integration
def test_unreadable_private_key_refuses_the_timer_run_with_an_audited_config_error(functions, app_env, monkeypatch):
    """Found when the configuration is validated: the run is refused through the gate, the key never echoed."""
    monkeypatch.setenv("HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXN0dWZm\n"
                                                               "-----END PRIVATE KEY-----")
    call(functions, "errors_daily", TimerRequest(past_due=False))
    today = dt.datetime.now(dt.timezone.utc).date()
    [record] = list(audit.list_records(Settings(), day=today, healer="errors", outcome="refused"))
    assert "setting HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY" in record["reason"]
    [invalid] = list(audit.list_records(Settings(), day=today, outcome="config-invalid"))
    assert "c2VjcmV0" not in json.dumps(record) and "c2VjcmV0" not in json.dumps(invalid)
    assert app_env["gh"].requests() == []


# ---------------------------------------------------------------------------------------------- configuration

BASE = {"HEALER_ERRORS_GITHUB_REPOSITORY": "o/r"}


def app_settings(key: str, **over: str) -> dict[str, str]:
    return {**BASE, "HEALER_ERRORS_GITHUB_APP_ID": str(APP_ID),
            "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID": str(INSTALLATION_ID),
            "HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY": key, **over}


def test_app_settings_load(app_key):
    cfg = shell.load_config(Settings(app_settings(app_key)))
    assert cfg.app == github.GitHubApp(APP_ID, INSTALLATION_ID, app_key.strip() + "\n") and cfg.token is None
    assert app_key.splitlines()[3] not in repr(cfg)  # the key never shows in a repr
    escaped = app_key.strip().replace("\n", "\\n")  # as an app setting sometimes holds it
    assert shell.load_config(Settings(app_settings(escaped))).app == cfg.app
    token_only = shell.load_config(Settings({**BASE, "HEALER_ERRORS_GITHUB_TOKEN": "t"}))
    assert token_only.app is None and token_only.token == "t"


def test_token_and_app_together_are_refused(app_key):
    with pytest.raises(ConfigError) as info:
        shell.load_config(Settings(app_settings(app_key, HEALER_ERRORS_GITHUB_TOKEN="t")))
    assert "HEALER_ERRORS_GITHUB_TOKEN" in str(info.value) and "HEALER_ERRORS_GITHUB_APP_ID" in str(info.value)
    assert "mutually exclusive" in str(info.value)
    with pytest.raises(ConfigError, match="mutually exclusive"):
        shell.load_config(Settings({**BASE, "HEALER_ERRORS_GITHUB_TOKEN": "t", "HEALER_ERRORS_GITHUB_APP_ID": "1"}))


@pytest.mark.parametrize("missing", ["HEALER_ERRORS_GITHUB_APP_ID", "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID",
                                     "HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY"])
def test_half_an_app_names_what_is_missing(app_key, missing):
    env = app_settings(app_key)
    del env[missing]
    with pytest.raises(ConfigError) as info:
        shell.load_config(Settings(env))
    assert str(info.value).endswith(f"missing: {missing}")


def _ec_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.mark.parametrize("over,fragment", [
    ({"HEALER_ERRORS_GITHUB_APP_ID": "my-app"}, "HEALER_ERRORS_GITHUB_APP_ID must be a positive integer"),
    ({"HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID": "0"},
     "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID must be a positive integer"),
    ({"HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY": "ghp_notakey"}, "is not a PEM private key"),
    ({"HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"},
     "is not a readable PEM private key"),
    ({"HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY": None}, "is not an RSA private key"),
])
def test_malformed_app_settings_are_config_errors(app_key, over, fragment):
    over = {k: (v if v is not None else _ec_pem()) for k, v in over.items()}
    with pytest.raises(ConfigError) as info:
        shell.load_config(Settings(app_settings(app_key, **over)))
    assert fragment in str(info.value) and "AAAA" not in str(info.value)


def test_repository_without_any_credentials_names_both_ways():
    cfg = shell.load_config(Settings(BASE))
    with pytest.raises(ConfigError) as info:
        shell.build_clients(cfg)
    assert "HEALER_ERRORS_GITHUB_TOKEN" in str(info.value) and "HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY" in str(info.value)

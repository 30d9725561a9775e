"""Stand-ins for the error healer's tests: Log Analytics (HTTPS, test CA, tokens from the identity stand-in),
GitHub (real bare git repos) and OpenAI chat completions, each its own process, stopped by PID."""
from __future__ import annotations

import json
import secrets

import pytest

from standins.github import start_github
from standins.log_analytics import start_log_analytics
from standins.openai_api import start_openai
from tests.conftest import ALLOW_ALL
from tests.errors import synth

WORKSPACE_ID = "11111111-2222-3333-4444-555555555555"
OWNER, REPO = "contoso", "shop"


@pytest.fixture(scope="session")
def errors_servers(local_azure, workdir):
    started = []
    try:
        la = start_log_analytics(workdir, local_azure.ca, local_azure.secret)
        started.append(la)
        gh = start_github(workdir, "ghs_" + secrets.token_hex(18))
        started.append(gh)
        ai = start_openai(workdir, token_secret=local_azure.secret, api_key="sk-test-" + secrets.token_hex(12))
        started.append(ai)
        yield {"la": la, "gh": gh, "ai": ai}
    finally:
        for s in reversed(started):
            s.stop()


@pytest.fixture
def errors_env(local_azure, storage_env, errors_servers, monkeypatch):
    la, gh, ai = errors_servers["la"], errors_servers["gh"], errors_servers["ai"]
    la.reset()
    gh.reset()
    ai.reset()
    gh.create_repo(OWNER, REPO, dict(synth.SOURCES))
    env = {**local_azure.env(), **storage_env,
           "HEALER_POLICY": json.dumps(ALLOW_ALL),
           "HEALER_ERRORS_SCHEMA": "workspace",
           "HEALER_ERRORS_WORKSPACE_ID": WORKSPACE_ID,
           "HEALER_ERRORS_LOGS_ENDPOINT": la.endpoint,
           "HEALER_ERRORS_GITHUB_API_URL": gh.url,
           "HEALER_ERRORS_GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
           "HEALER_ERRORS_GITHUB_TOKEN": gh.token,
           "HEALER_ERRORS_LLM_PROVIDER": "none"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from shared.identity import credential
    credential.cache_clear()
    return {"env": env, **errors_servers}


def use_model(monkeypatch, ai, provider: str = "openai", **extra: str) -> None:
    settings = {"HEALER_ERRORS_LLM_PROVIDER": provider,
                "HEALER_ERRORS_LLM_ENDPOINT": ai.url + ("/v1" if provider == "openai" else ""),
                "HEALER_ERRORS_LLM_MODEL": "gpt-test", "HEALER_ERRORS_LLM_MAX_RETRIES": "2", **extra}
    if provider == "openai":
        settings["HEALER_ERRORS_LLM_API_KEY"] = ai_key(ai)
    for k, v in settings.items():
        monkeypatch.setenv(k, v)


def ai_key(ai) -> str:
    args = ai.server.proc.args
    return args[args.index("--api-key") + 1]


TRIAGE_PREFIX = ".healer/errors/"


def assert_only_triage_writes(gh) -> None:
    """Healer never writes a file outside its triage folder: every contents write on the wire, and every branch
    (outside that folder) is the base branch's tree exactly."""
    from urllib.parse import unquote
    writes = [unquote(r["path"].split("?")[0]) for r in gh.requests() if r["method"] in ("PUT", "DELETE", "POST")
              and "/contents/" in r["path"]]
    outside = [p for p in writes if not p.split("/contents/", 1)[1].startswith(TRIAGE_PREFIX)]
    assert not outside, outside
    assert not [r for r in gh.requests() if "/git/" in r["path"] and "/git/ref" not in r["path"]]  # no trees/blobs
    outside_triage = lambda files: {p: t for p, t in files.items() if not p.startswith(TRIAGE_PREFIX)}  # noqa: E731
    base = outside_triage(gh.files(OWNER, REPO, "main"))
    for pr in gh.pulls():
        assert outside_triage(gh.files(OWNER, REPO, pr["head"]["ref"])) == base, pr["head"]["ref"]

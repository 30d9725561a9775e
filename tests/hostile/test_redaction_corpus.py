"""≥ 200 realistic fake secrets of ≥ 25 kinds, in exception messages and stack lines, through the whole errors
pipeline over the wire (Log Analytics stand-in → Healer → OpenAI and GitHub stand-ins): none reaches the model
request, the PR body, comments, files or patch files. Canaries next to every secret prove the text did flow."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from healers.errors import shell
from healers.errors.redact import redact
from healers.errors.triage import Window
from shared.config import Settings
from tests.errors import synth
from tests.errors.conftest import errors_env, errors_servers, use_model  # noqa: F401 (fixtures)
from tests.hostile.secrets_corpus import KINDS, corpus

pytestmark = pytest.mark.integration
DAY = dt.datetime(2025, 6, 3, 6, tzinfo=dt.timezone.utc)
W = Window(DAY - dt.timedelta(days=1), DAY)
GROUPS, PER_MESSAGE, PER_STACK = 9, 12, 13
CORPUS = corpus(GROUPS * (PER_MESSAGE + PER_STACK))


def canary(i: int) -> str:
    return f"canary{i:03d}x"


def group_rows(g: int, items: list[tuple[int, str]]) -> list[dict]:
    message = " | ".join(f"{canary(i)} {snippet}" for i, snippet in items[:PER_MESSAGE])
    frames = "".join(f'  File "/tmp/{{inst}}/app/g{g}/step{k}.py", line {10 + k}, in handle_{g}_{k}\n'
                     f"    {canary(i)} {snippet}\n" for k, (i, snippet) in enumerate(items[PER_MESSAGE:]))
    stack = "Traceback (most recent call last):\n" + frames + f"shop.errors.Group{g}Error: {message[:80]}"
    cause = synth.Cause(f"leak-{g}", f"shop.errors.Group{g}Error", f"shop.errors.Group{g}Error at handle_{g}",
                        ("shop-api",), (f"POST /leak/{g}",), 1.0, lambda r: message,
                        lambda line, inst: stack.replace("{inst}", inst), "python")
    rng = random.Random(g)
    return [synth.exception_row("workspace", W.start + dt.timedelta(hours=h), cause, rng, item_count=20 + g)
            for h in range(3)]


def test_corpus_is_big_and_varied():
    assert len(CORPUS) >= 200 and len({k for k, _, _ in CORPUS}) >= 25 and len(KINDS) >= 25
    issue_kinds = {"app-insights-connection-string", "functions-key-query", "cognitive-services-key",
                   "azure-devops-pat", "basic-auth-header", "docker-config-auth", "entra-client-secret",
                   "google-api-key", "mailgun-api-key", "sendgrid-api-key", "stripe-secret-key", "twilio-api-key",
                   "npm-token", "upper-snake-password", "underscore-secret", "json-string-password"}
    assert issue_kinds <= set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_redacted_raw_and_json_escaped(kind):
    for k, secret, snippet in corpus(3 * len(KINDS), seed=77):
        if k != kind:
            continue
        for text in (snippet, json.dumps({"m": snippet}), json.dumps({"d": json.dumps([{"m": snippet}])})):
            out = redact(text)
            assert secret not in out and json.dumps(secret)[1:-1] not in out, (kind, out)
            if text != snippet:
                json.loads(out)   # redacting JSON text keeps it JSON (App Insights `details` is parsed after)


def test_no_secret_reaches_the_model_or_github_over_the_wire(errors_env, monkeypatch):
    la, gh, ai = errors_env["la"], errors_env["gh"], errors_env["ai"]
    use_model(monkeypatch, ai)
    monkeypatch.setenv("HEALER_ERRORS_TOP_N", str(GROUPS + 1))
    indexed = list(enumerate(snippet for _, _, snippet in CORPUS))
    per_group = PER_MESSAGE + PER_STACK
    rows = [row for g in range(GROUPS) for row in group_rows(g, indexed[g * per_group:(g + 1) * per_group])]
    la.seed("AppExceptions", rows)
    report = shell.run(Settings(), W, now=lambda: W.end + dt.timedelta(minutes=5))
    assert len([d for d in report.drafted if d["result"] == "created"]) == GROUPS
    model_wire = json.dumps([r["body"] for r in ai.requests()], ensure_ascii=False)
    github_wire = gh.sent_text()
    assert len(ai.requests()) >= GROUPS
    wire = model_wire + "\n" + github_wire
    missing = [canary(i) for i in range(len(CORPUS)) if canary(i) not in wire]
    assert not missing, f"evidence did not flow: {missing[:10]}"
    leaked = {}
    for kind, secret, _ in CORPUS:
        for where, text in (("model", model_wire), ("github", github_wire)):
            if secret in text or json.dumps(secret)[1:-1] in text:
                leaked.setdefault(kind, []).append(where)
    assert not leaked, leaked

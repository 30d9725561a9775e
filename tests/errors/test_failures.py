"""All failures: failed dependency calls and failed requests without an exception, in the one KQL aggregation,
keyed by target / result code / operation, classified, and linked to the downshift healer's actions."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from healers.errors import failures, kql, links
from healers.errors.cluster import cluster
from healers.errors.kql import ErrorRow
from tests.errors import synth

T0 = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("code", "name", "expected"), [
    ("429", "", failures.THROTTLED), ("504", "", failures.TIMEOUT), ("408", "", failures.TIMEOUT),
    ("0", "", failures.TIMEOUT), ("", "", failures.TIMEOUT), ("Canceled", "", failures.TIMEOUT),
    ("TaskCanceledException", "", failures.TIMEOUT), ("503", "", failures.SERVER), ("500", "", failures.SERVER),
    ("400", "", failures.CLIENT), ("404", "", failures.CLIENT), ("Faulted", "", failures.FAILED),
    ("Faulted", "SQL: timed out", failures.TIMEOUT),
])
def test_classify(code: str, name: str, expected: str) -> None:
    assert failures.classify(code, name) == expected


def test_operation_key_masks_ids_not_names() -> None:
    assert failures.operation_key("POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21") == \
        "POST /openai/deployments/gpt-4o/chat/completions"
    assert failures.operation_key("GET /users/42/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301") == \
        "GET /users/<*>/orders/<*>"
    assert failures.operation_key("GET /reports/2025-03-03") == "GET /reports/<*>"
    assert failures.target_key("Chat-AI.OpenAI.Azure.com") == "chat-ai.openai.azure.com"


def _call(role: str, n: int, code: str = "429", source: str = "dependencies", **kw) -> ErrorRow:
    return ErrorRow(source, "", "dependency HTTP" if source == "dependencies" else "request", "shape", role, n,
                    T0, T0 + dt.timedelta(minutes=30), target=kw.get("target", synth.MODEL_ENDPOINT), result_code=code,
                    sample_message=kw.get("name", synth.MODEL_CALL + "?api-version=2024-10-21"),
                    versions=kw.get("versions", ["97"]))


def test_a_429_storm_across_roles_is_one_group_and_a_500_is_another() -> None:
    rows = [_call("chat-web", 500), _call("chat-worker", 300), _call("chat-web", 7, code="500"),
            _call("chat-web", 4, name=synth.MODEL_CALL)]  # the query string does not make another group
    groups = {g.failure: g for g in cluster(rows)}
    assert set(groups) == {failures.THROTTLED, failures.SERVER}
    storm = groups[failures.THROTTLED]
    assert storm.occurrences == 804 and storm.roles == ["chat-web", "chat-worker"] and storm.kind == "call"
    assert storm.title == ("Throttled (429) from chat-ai.openai.azure.com: "
                           "POST /openai/deployments/gpt-4o/chat/completions")
    assert storm.target == synth.MODEL_ENDPOINT and storm.versions == ["97"]
    # the fingerprint depends on target, code and operation only: another day, other roles, same group
    again = cluster([_call("chat-batch", 3)])
    assert again[0].fingerprint == storm.fingerprint


def test_downshift_links_match_the_app_by_role_or_site_name_within_the_window() -> None:
    storm = cluster([_call("chat-web", 50)])[0]
    acted = {"healer": "downshift", "outcome": "acted", "at": (T0 + dt.timedelta(minutes=20)).isoformat(),
             "resource": "/subscriptions/s/resourceGroups/ai/providers/Microsoft.Web/sites/chat-web", "subject": "*",
             "reason": "429 ratio alert fired: gpt-4o -> gpt-4o-mini", "id": "20250303/x"}
    other_app = dict(acted, resource=acted["resource"].replace("chat-web", "other-app"))
    too_early = dict(acted, at=(T0 - dt.timedelta(hours=30)).isoformat())
    skipped = dict(acted, outcome="skipped")
    lines = links.downshift_links(storm, [acted, other_app, too_early, skipped], {}, T0 - dt.timedelta(days=1),
                                  T0 + dt.timedelta(hours=2))
    assert len(lines) == 1 and "gpt-4o -> gpt-4o-mini" in lines[0] and "chat-web" in lines[0]
    # a configured role maps an app whose site name differs from the role
    renamed = dict(acted, resource=acted["resource"].replace("chat-web", "prod-chat-01"))
    assert links.downshift_links(storm, [renamed], {renamed["resource"].lower(): {"chat-web"}},
                                 T0 - dt.timedelta(days=1), T0 + dt.timedelta(hours=2))
    assert not links.downshift_links(storm, [renamed], {}, T0 - dt.timedelta(days=1), T0 + dt.timedelta(hours=2))
    # only throttled / timed-out calls are linked
    server = cluster([_call("chat-web", 5, code="500")])[0]
    assert not links.downshift_links(server, [acted], {}, T0 - dt.timedelta(days=1), T0 + dt.timedelta(hours=2))


def test_failures_query_is_one_union_valid_in_both_schemas() -> None:
    from standins.kql_check import assert_valid_kql
    for schema in ("classic", "workspace"):
        q = kql.failures_query(schema)
        assert q.count("summarize") == 2 and "union" in q and "leftanti" in q
        assert_valid_kql({"failures": q, "with_dimension": kql.failures_query(schema, version_dimension="build.id"),
                          "repro_dep": kql.repro_query(schema, "dependencies", [], [], T0, T0, "a'b.com", "429"),
                          "repro_req": kql.repro_query(schema, "requests", [], [], T0, T0, "", "400")}, schema)
    with pytest.raises(ValueError):
        kql.failures_query("workspace", version_dimension="x'] | take 1 //")


@pytest.mark.integration
def test_over_the_wire_a_429_storm_is_one_pr_linked_to_the_downshift_action(errors_env):
    """AppDependencies / AppRequests rows in the Log Analytics stand-in, the union query through LogsQueryClient,
    a downshift audit record on the same app, the PR on the GitHub stand-in."""
    from healers.errors import shell
    from healers.errors.triage import Window
    from shared import audit
    from shared.config import Settings

    la, gh = errors_env["la"], errors_env["gh"]
    window = Window(T0 - dt.timedelta(days=1), T0)
    storm_start = window.start + dt.timedelta(hours=10)
    storm = synth.throttle_storm("workspace", storm_start, 300, 11)
    la.seed("AppDependencies", storm + [synth.dependency_row("workspace", storm_start, random.Random(1),
                                                             success=True, result="200")])
    rng = random.Random(12)
    logged = synth.exception_row("workspace", storm_start, synth.CAUSES[0], rng)
    la.seed("AppExceptions", [logged])
    la.seed("AppRequests", [
        # failed without an exception: a group of its own
        *[synth.request_row("workspace", storm_start + dt.timedelta(minutes=i), rng, name=f"POST /api/chat/{i}",
                            result="400") for i in range(6)],
        # failed with an exception logged for the same operation: counted once, as the exception
        synth.request_row("workspace", storm_start, rng, name="POST /orders", result="500",
                          operation_id=logged["OperationId"])])
    settings = Settings()
    audit.record(settings, healer="downshift", outcome="acted", resource="/subscriptions/s/resourceGroups/ai/"
                 "providers/Microsoft.Web/sites/chat-web", subject="*", reason="switch gpt-4o -> gpt-4o-mini "
                 "(429 ratio alert)", now=storm_start + dt.timedelta(minutes=12))

    report = shell.run(settings, window, now=lambda: window.end + dt.timedelta(minutes=5))
    assert report.groups == 3  # the storm, the failed requests, the exception
    titles = {p["title"]: p for p in gh.pulls()}
    storm_pr = next(p for t, p in titles.items() if "Throttled (429)" in t)
    assert "chat-ai.openai.azure.com" in storm_pr["title"]
    short = storm_pr["head"]["ref"].rsplit("/", 1)[1]
    triage = gh.files(synth_owner(), synth_repo(), storm_pr["head"]["ref"])[f".healer/errors/{short}.md"]
    weighted = sum(r["ItemCount"] for r in storm)
    assert f"**{weighted}**" in triage and "chat-worker" in triage and "Failure: **throttled**" in triage
    assert "Related actions by other healers" in triage and "switch gpt-4o - gpt-4o-mini" in triage  # '>' dropped
    assert "the downshift healer acted on chat-web" in storm_pr["body"]
    assert "AppDependencies" in triage and "ResultCode == '429'" in triage  # the repro query
    assert any("Client error (400) answering POST /api/chat/" in t for t in titles)
    assert not any("(500)" in t for t in titles)  # the request with an exception is not a second group
    query = la.queries()[-1]["query"]
    assert "union" in query and "AppDependencies" in query and "AppRequests" in query


def synth_owner() -> str:
    from tests.errors.conftest import OWNER
    return OWNER


def synth_repo() -> str:
    from tests.errors.conftest import REPO
    return REPO

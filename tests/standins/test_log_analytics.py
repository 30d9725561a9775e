"""The Log Analytics query stand-in, driven by the real azure-monitor-query LogsQueryClient over HTTPS."""
from __future__ import annotations

import datetime as dt
import ssl
import time

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import LogsBatchQuery, LogsQueryClient, LogsQueryPartialResult, LogsQueryStatus

from standins.harness import make_test_ca, scratch_dir
from standins.kql_check import errors, validate_kql
from standins.log_analytics import AUDIENCES, parse_duration, parse_timespan, start_log_analytics
from standins.log_analytics_queries import sample_cost_by_tenant as sample
from standins.tokens import mint

SECRET = "test-only-log-analytics-secret-0123456789"
WORKSPACE_ID = "11111111-2222-3333-4444-555555555555"
RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
               "microsoft.insights/components/healer-ai")
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)


class HS256Credential:
    """A TokenCredential minting HS256 JWTs, for the stand-in's bearer check."""

    def __init__(self, secret: str = SECRET, audience: str = AUDIENCES[0]):
        self.secret, self.audience, self.scopes = secret, audience, []

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        token, expires_on = mint(self.secret, self.audience, object_id="healer-test", app_id="healer-test")
        return AccessToken(token, expires_on)


@pytest.fixture(scope="module")
def standin():
    work = scratch_dir("healer-la-")
    ca = make_test_ca(work)
    server = start_log_analytics(work, ca, SECRET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def la(standin):
    standin.reset()
    return standin


def client(la, credential=None) -> LogsQueryClient:
    return LogsQueryClient(credential or HS256Credential(), endpoint=la.endpoint, audience=AUDIENCES[0],
                           connection_verify=str(la.ca_path))


def metric(shape: str, minutes: int, tenant: str, value: float, name: str = sample.METRIC) -> dict:
    at = (T0 + dt.timedelta(minutes=minutes)).isoformat()
    if shape == "classic":
        return {"timestamp": at, "name": name, "value": value, "valueSum": value, "valueCount": 1,
                "customDimensions": {"tenant": tenant}}
    return {"TimeGenerated": at, "Name": name, "Sum": value, "ItemCount": 1, "Properties": {"tenant": tenant}}


def seed_costs(la) -> None:
    la.seed("customMetrics", [metric("classic", 5, "t1", 1.5), metric("classic", 10, "t2", 2.0),
                              metric("classic", 20, "t1", 0.5), metric("classic", 90, "t1", 100.0),
                              metric("classic", 15, "t1", 7.0, name="other.metric")])
    la.seed("AppMetrics", [metric("workspace", 5, "t1", 3.0), metric("workspace", 30, "t3", 4.0),
                           metric("workspace", -5, "t3", 50.0)])


@pytest.mark.parametrize("kql, expected", [
    (sample.KQL_CLASSIC, [["t1", 2.0], ["t2", 2.0]]),
    (sample.KQL_WORKSPACE, [["t1", 3.0], ["t3", 4.0]]),
])
def test_query_workspace_returns_tables_for_the_timespan(la, kql, expected):
    seed_costs(la)
    credential = HS256Credential()
    result = client(la, credential).query_workspace(WORKSPACE_ID, kql, timespan=(T0, dt.timedelta(hours=1)))
    assert result.status == LogsQueryStatus.SUCCESS
    (table,) = result.tables
    assert table.name == "PrimaryResult" and table.columns == ["tenant", "cost"]
    assert table.columns_types == ["string", "real"]
    assert [list(row) for row in table.rows] == expected
    assert credential.scopes == [("https://api.loganalytics.io/.default",)]
    (received,) = la.queries()
    assert received["name"] == sample.NAME and received["query"] == kql and received["status"] == 200
    assert received["workspace_id"] == WORKSPACE_ID
    assert received["timespan"].endswith("/PT3600.0S")


def test_duration_timespan_ends_at_the_standin_clock_and_resource_path(la):
    seed_costs(la)
    la.set_now(T0 + dt.timedelta(minutes=95))
    result = client(la).query_resource(RESOURCE_ID, sample.KQL_CLASSIC, timespan=dt.timedelta(minutes=80),
                                       include_statistics=True)
    # window [T0+15m, T0+95m): t1 at 20m and 90m; t2 at 10m is before it
    assert [list(r) for r in result.tables[0].rows] == [["t1", 100.5]]
    assert result.statistics["query"]["datasetStatistics"][0]["tableRowCount"] == 1
    (received,) = la.queries()
    assert received["route"] == "resource" and received["resource_id"] == RESOURCE_ID
    assert received["prefer"] == "include-statistics=true"


def test_partial_error_becomes_logs_query_partial_result(la):
    seed_costs(la)
    la.fault("partial", message="Query result set has exceeded the internal record count limit.")
    result = client(la).query_workspace(WORKSPACE_ID, sample.KQL_WORKSPACE, timespan=(T0, T0 + dt.timedelta(hours=1)))
    assert isinstance(result, LogsQueryPartialResult) and result.status == LogsQueryStatus.PARTIAL
    assert result.partial_error.code == "PartialError"
    assert "record count limit" in result.partial_error.details[0]["message"]
    assert [list(r) for r in result.partial_data[0].rows] == [["t1", 3.0], ["t3", 4.0]]
    # the fault was for one query only
    again = client(la).query_workspace(WORKSPACE_ID, sample.KQL_WORKSPACE, timespan=(T0, T0 + dt.timedelta(hours=1)))
    assert again.status == LogsQueryStatus.SUCCESS


def test_throttling_is_retried_by_the_sdk_after_retry_after(la):
    seed_costs(la)
    la.fault("throttle", count=1, retry_after=1)
    started = time.monotonic()
    result = client(la).query_workspace(WORKSPACE_ID, sample.KQL_CLASSIC, timespan=(T0, T0 + dt.timedelta(hours=1)))
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert result.status == LogsQueryStatus.SUCCESS
    assert [q["status"] for q in la.queries()] == [429, 200]
    stats = la.stats()
    assert stats["round_trips"] == 2 and stats["by_status"] == {"429": 1, "200": 1}


def test_missing_or_invalid_token_is_401(la):
    raw = httpx.post(f"{la.endpoint}/v1/workspaces/{WORKSPACE_ID}/query", json={"query": sample.KQL_CLASSIC},
                     verify=ssl.create_default_context(cafile=str(la.ca_path)))
    assert raw.status_code == 401 and raw.headers["WWW-Authenticate"].startswith("Bearer ")
    assert raw.json()["error"]["code"]
    with pytest.raises(HttpResponseError) as info:
        client(la, HS256Credential(secret="wrong-secret-wrong-secret-wrong-secret")).query_workspace(
            WORKSPACE_ID, sample.KQL_CLASSIC, timespan=dt.timedelta(hours=1))
    assert info.value.status_code == 401
    with pytest.raises(HttpResponseError) as info:
        client(la, HS256Credential(audience="https://management.azure.com")).query_workspace(
            WORKSPACE_ID, sample.KQL_CLASSIC, timespan=dt.timedelta(hours=1))
    assert info.value.status_code == 401
    assert la.stats()["by_status"] == {"401": 3}


@pytest.mark.parametrize("kql", ["customMetrics | count", "// healer-query: no-such-query\ncustomMetrics | count"])
def test_unknown_or_unmarked_query_is_bad_argument(la, kql):
    with pytest.raises(HttpResponseError) as info:
        client(la).query_workspace(WORKSPACE_ID, kql, timespan=dt.timedelta(hours=1))
    assert info.value.status_code == 400
    assert info.value.error.code == "BadArgumentError"


def test_injected_error_and_slowness(la):
    la.fault("slow", delay=0.2)
    la.fault("error", status=400, code="BadArgumentError", message="Query could not be parsed")
    seed_costs(la)
    ok = client(la).query_workspace(WORKSPACE_ID, sample.KQL_CLASSIC, timespan=(T0, T0 + dt.timedelta(hours=1)))
    assert ok.status == LogsQueryStatus.SUCCESS
    with pytest.raises(HttpResponseError) as info:
        client(la).query_workspace(WORKSPACE_ID, sample.KQL_CLASSIC, timespan=(T0, T0 + dt.timedelta(hours=1)))
    assert info.value.status_code == 400 and "could not be parsed" in str(info.value)
    assert [q["fault"] for q in la.queries()] == ["slow", "error"]


def test_batch_queries(la):
    seed_costs(la)
    span = (T0, T0 + dt.timedelta(hours=1))
    results = client(la).query_batch([
        LogsBatchQuery(WORKSPACE_ID, sample.KQL_CLASSIC, timespan=span),
        LogsBatchQuery(WORKSPACE_ID, "// healer-query: nope\nAppMetrics", timespan=span),
    ])
    assert [list(r) for r in results[0].tables[0].rows] == [["t1", 2.0], ["t2", 2.0]]
    assert results[1].status == LogsQueryStatus.FAILURE and results[1].code == "BadArgumentError"


def test_received_queries_pass_the_kql_checker(la):
    seed_costs(la)
    span = dt.timedelta(hours=1)
    client(la).query_workspace(WORKSPACE_ID, sample.KQL_CLASSIC, timespan=span)
    client(la).query_workspace(WORKSPACE_ID, sample.KQL_WORKSPACE, timespan=span)
    classic, workspace = [q["query"] for q in la.queries()]
    assert errors(validate_kql({"q": classic}, "classic")["q"]) == []
    assert errors(validate_kql({"q": workspace}, "workspace")["q"]) == []


def test_seeding_is_checked_against_the_schemas(la):
    with pytest.raises(RuntimeError, match="no column"):
        la.seed("AppMetrics", [{"TimeGenerated": T0.isoformat(), "valueSum": 1.0}])
    with pytest.raises(RuntimeError, match="time column"):
        la.seed("customMetrics", [{"name": "x"}])
    with pytest.raises(RuntimeError, match="is real"):
        la.seed("AppMetrics", [{"TimeGenerated": T0.isoformat(), "Sum": "1.0"}])
    with pytest.raises(RuntimeError, match="404"):
        la.seed("NoSuchTable", [])
    assert la.seed("exceptions", [{"timestamp": T0.isoformat(), "problemId": "p", "itemCount": 1}]) == 1


def test_timespan_parsing():
    now = T0
    assert parse_timespan(None, now) == (None, None)
    assert parse_timespan("PT3600.0S", now) == (now - dt.timedelta(hours=1), now)
    assert parse_timespan("P1DT2H", now) == (now - dt.timedelta(days=1, hours=2), now)
    assert parse_timespan("2025-03-01T00:00:00.000Z/2025-03-02T00:00:00.000Z", None) == (
        T0, T0 + dt.timedelta(days=1))
    assert parse_timespan("2025-03-01T00:00:00Z/PT30M", None) == (T0, T0 + dt.timedelta(minutes=30))
    assert parse_timespan("PT30M/2025-03-01T00:00:00Z", None) == (T0 - dt.timedelta(minutes=30), T0)
    for bad in ("P1M", "P1Y", "P", "PT", "1h", "2025-03-02T00:00:00Z/2025-03-01T00:00:00Z", "PT1H/PT2H"):
        with pytest.raises(ValueError):
            parse_timespan(bad, now)
    assert parse_duration("P1W") == dt.timedelta(weeks=1)

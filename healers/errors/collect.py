"""Collect aggregated error rows through the real LogsQueryClient (azure-monitor-query 2.0.0).

Throttling (429 + Retry-After) is retried by azure-core's retry policy; a partial result is used (and reported)
rather than thrown away; a failed query raises CollectError with the service's reason.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from healers.errors import kql
from healers.errors.kql import ErrorRow
from healers.errors.redact import redact

DEFAULT_ENDPOINT = "https://api.loganalytics.io"
AUDIENCE = "https://api.loganalytics.io"


class CollectError(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Source:
    schema: kql.Schema  # "classic" (query the App Insights resource) | "workspace" (query the workspace)
    workspace_id: str | None
    resource_id: str | None
    endpoint: str
    include_traces: bool
    max_rows: int
    version_dimension: str | None = None  # custom dimension holding the app version (default AppVersion)


@dataclass
class Collected:
    rows: list[ErrorRow] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)  # reasons a query came back partial
    queries: dict[str, str] = field(default_factory=dict)


def make_client(source: Source, credential: Any) -> Any:
    from azure.monitor.query import LogsQueryClient
    kwargs: dict[str, Any] = {}
    if source.endpoint.rstrip("/") != DEFAULT_ENDPOINT:
        kwargs = {"endpoint": source.endpoint.rstrip("/"), "audience": AUDIENCE}
    from shared.transport import sdk_options
    return LogsQueryClient(credential, **kwargs, **sdk_options())


def _redacted(row: ErrorRow) -> ErrorRow:
    row.sample_message = redact(row.sample_message)
    row.sample_stack = redact(row.sample_stack)
    row.shape = redact(row.shape)
    row.operations = [redact(o) for o in row.operations]
    row.target = redact(row.target)
    return row


def collect(client: Any, source: Source, start: dt.datetime, end: dt.datetime) -> Collected:
    from azure.core.exceptions import HttpResponseError
    from azure.monitor.query import LogsQueryStatus

    out = Collected()
    plan = [("exceptions", kql.exceptions_query(source.schema, source.max_rows, source.version_dimension))]
    if source.include_traces:
        plan.append(("traces", kql.traces_query(source.schema, max(source.max_rows // 2, 1))))
    for name, query in plan:
        out.queries[name] = query
        try:
            if source.schema == "workspace":
                if not source.workspace_id:
                    raise CollectError("setting HEALER_ERRORS_WORKSPACE_ID is required for the workspace schema")
                result = client.query_workspace(source.workspace_id, query, timespan=(start, end),
                                                server_timeout=180)
            else:
                if not source.resource_id:
                    raise CollectError("setting HEALER_ERRORS_RESOURCE_ID is required for the classic schema")
                result = client.query_resource(source.resource_id, query, timespan=(start, end), server_timeout=180)
        except HttpResponseError as exc:
            code = getattr(getattr(exc, "error", None), "code", None) or ""
            raise CollectError(f"{name} query failed: HTTP {exc.status_code} {code}".strip(), exc.status_code) \
                from None
        if result.status == LogsQueryStatus.PARTIAL:
            err = result.partial_error
            out.partial.append(f"{name}: {getattr(err, 'code', 'PartialError')}: "
                               f"{str(getattr(err, 'message', ''))[:200]}")
            tables = result.partial_data
        elif result.status == LogsQueryStatus.SUCCESS:
            tables = result.tables
        else:
            raise CollectError(f"{name} query failed: {getattr(result, 'code', 'unknown')}")
        for table in tables[:1]:
            out.rows.extend(_redacted(r) for r in kql.parse_rows(name, list(table.columns), list(table.rows)))
    return out

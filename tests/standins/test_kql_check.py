"""The offline KQL validator: real Kusto language service, App Insights classic and workspace schemas."""
from __future__ import annotations

import json

import pytest

from standins.kql_check import SCHEMAS, KqlToolingMissing, assert_valid_kql, errors, validate_kql
from standins.log_analytics_queries import sample_cost_by_tenant as sample

CLASSIC_VALID = {
    "cost": sample.KQL_CLASSIC,
    "exceptions": """// healer-query: errors-daily
exceptions
| where timestamp > ago(1d)
| summarize occurrences = sum(itemCount), sample_message = any(outerMessage), last_seen = max(timestamp)
    by problemId, type, cloud_RoleName
| order by occurrences desc
| take 50""",
    "traces": "traces | where severityLevel >= 3 | project timestamp, message, operation_Id",
    "requests": "requests | where success == 'False' | summarize failed = count(), p95 = percentile(duration, 95) "
                "by name, resultCode",
    "dependencies": "dependencies | summarize avg(duration) by type, target, bin(timestamp, 5m)",
    "events": "customEvents | summarize count() by name, tostring(customDimensions.tenant)",
}

WORKSPACE_VALID = {
    "cost": sample.KQL_WORKSPACE,
    "exceptions": """// healer-query: errors-daily
AppExceptions
| where TimeGenerated > ago(1d)
| summarize occurrences = sum(ItemCount), sample_message = any(OuterMessage), last_seen = max(TimeGenerated)
    by ProblemId, ExceptionType, AppRoleName
| order by occurrences desc
| take 50""",
    "traces": "AppTraces | where SeverityLevel >= 3 | project TimeGenerated, Message, OperationId",
    "requests": "AppRequests | where Success == false | summarize failed = count(), p95 = percentile(DurationMs, 95) "
                "by Name, ResultCode",
    "dependencies": "AppDependencies | summarize avg(DurationMs) by DependencyType, Target, bin(TimeGenerated, 5m)",
    "events": "AppEvents | summarize count() by Name, tostring(Properties.tenant)",
}

WORKSPACE_BAD = {
    "misspelled_column": "AppMetrics | where Name == 'agent.cost.usd' | summarize sum(Summ)",
    "unknown_table": "AppMetric | count",
    "syntax": "AppExceptions | where ExceptionType == | count",
    "classic_column": "AppMetrics | summarize sum(valueSum) by tostring(customDimensions.tenant)",
    "type_error": "AppMetrics | where Sum > 'ten'",
    "unknown_function": "AppTraces | extend x = no_such_function(Message)",
}


@pytest.fixture(scope="module")
def classic_results():
    return validate_kql({**CLASSIC_VALID, "workspace_table": "AppExceptions | count",
                         "workspace_column": "exceptions | summarize count() by ProblemId"}, "classic")


@pytest.fixture(scope="module")
def workspace_results():
    return validate_kql({**WORKSPACE_VALID, **WORKSPACE_BAD}, "workspace")


@pytest.mark.parametrize("name", sorted(CLASSIC_VALID))
def test_valid_classic_queries_have_no_diagnostics(classic_results, name):
    assert errors(classic_results[name]) == [], [str(d) for d in classic_results[name]]


@pytest.mark.parametrize("name", sorted(WORKSPACE_VALID))
def test_valid_workspace_queries_have_no_diagnostics(workspace_results, name):
    assert errors(workspace_results[name]) == [], [str(d) for d in workspace_results[name]]


def test_misspelled_column_is_an_error_at_its_offset(workspace_results):
    (err,) = errors(workspace_results["misspelled_column"])
    text = WORKSPACE_BAD["misspelled_column"]
    assert err.code == "KS142" and "'Summ'" in err.message
    assert text[err.offset:err.offset + err.length] == "Summ"
    assert (err.line, err.column) == (1, err.offset + 1)


def test_unknown_table_is_an_error(workspace_results):
    (err,) = errors(workspace_results["unknown_table"])
    assert err.code == "KS204" and "AppMetric" in err.message


def test_syntax_error_is_an_error(workspace_results):
    errs = errors(workspace_results["syntax"])
    assert errs and errs[0].severity == "Error"


def test_classic_columns_are_errors_against_the_workspace_schema(workspace_results):
    messages = [e.message for e in errors(workspace_results["classic_column"])]
    assert any("'valueSum'" in m for m in messages) and any("'customDimensions'" in m for m in messages)


def test_workspace_names_are_errors_against_the_classic_schema(classic_results):
    assert [e.code for e in errors(classic_results["workspace_table"])] == ["KS204"]
    assert any("'ProblemId'" in e.message for e in errors(classic_results["workspace_column"]))


def test_type_errors_and_unknown_functions(workspace_results):
    assert any("real and string" in e.message for e in errors(workspace_results["type_error"]))
    assert any("no_such_function" in e.message for e in errors(workspace_results["unknown_function"]))


def test_assert_valid_kql_lists_every_error():
    with pytest.raises(AssertionError) as info:
        assert_valid_kql({"ok": WORKSPACE_VALID["traces"], "bad": WORKSPACE_BAD["unknown_table"]}, "workspace")
    report = str(info.value)
    assert "bad:" in report and "KS204" in report and "ok:" not in report


def test_schemas_hold_both_table_shapes():
    classic = json.loads((SCHEMAS / "classic.json").read_text())["tables"]
    workspace = json.loads((SCHEMAS / "workspace.json").read_text())["tables"]
    assert set(classic) == {"customMetrics", "exceptions", "traces", "requests", "dependencies", "customEvents"}
    assert set(workspace) == {"AppMetrics", "AppExceptions", "AppTraces", "AppRequests", "AppDependencies",
                              "AppEvents"}
    assert classic["customMetrics"]["valueSum"] == "real" and workspace["AppMetrics"]["Sum"] == "real"
    assert classic["requests"]["success"] == "string" and workspace["AppRequests"]["Success"] == "bool"


def test_unknown_schema_is_rejected():
    with pytest.raises(ValueError):
        validate_kql({"q": "print 1"}, "nosuchschema")


def test_missing_node_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(KqlToolingMissing, match="node"):
        validate_kql({"q": "print 1"}, "workspace")

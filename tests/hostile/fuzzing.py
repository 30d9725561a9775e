"""Hypothesis strategies that generate hostile inputs for every entry point, driven by shared/openapi.json: request
bodies shaped by each operation's schema, Microsoft's sample payloads with random mutations, arbitrary JSON, raw
bytes and limit-breakers (deep nesting, long numbers, lone surrogates, NaN); query and route parameters named by
the description; Event Grid events and queue messages built from real ones. Used by tests/hostile/test_fuzz.py and
bench/hostile.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
from hypothesis import strategies as st

from shared.api import OPENAPI_FILE

SPEC = json.loads(OPENAPI_FILE.read_text())
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLES = [json.loads(p.read_text()) for p in sorted((FIXTURES / "payloads" / "full").glob("*.json"))] + \
          [json.loads(p.read_text()) for p in sorted((FIXTURES / "alerts").glob("*.json"))]

scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=30) | st.sampled_from(["Fired", "Resolved", "Activated", "azureMonitorCommonAlertSchema",
                                                     "AzureMonitorMetricAlert", "AIP Budget Notification", "CostAlerts",
                                                     "2026-11-20T10:05:00Z", "0001-01-01T00:00:00+14:00", "*", "",
                                                     "/subscriptions/x/resourceGroups/r/providers/Microsoft.Web/sites/s"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids,
                                                                                                max_size=4), max_leaves=8)
limit_breakers = st.sampled_from([
    b"[" * 3000 + b"]" * 3000, b'{"a": ' + b"9" * 5000 + b"}", b'{"hours": 1e309, "by": "x"}', b'{"by": "\\ud800"}',
    b"[NaN]", b'{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"alertId": "\\udfff"}}}',
    b"\xff\xfe", b"", b"null", b"{}", b"[]", b'"x"', b"{" + b" " * 300_000 + b"}",
    b'{"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00+14:00", "by": "x"}'])


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:5]):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, samples: list[Any]) -> Any:
    """A real payload with 1-4 random edits: a value replaced, a key dropped, or a key added."""
    index = draw(st.integers(0, len(samples) - 1))
    text, paths = _prepared(id(samples), samples)[index]
    doc = json.loads(text)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        try:
            parent = doc
            for k in path[:-1]:
                parent = parent[k]
            action = draw(st.sampled_from(["replace", "drop", "add"]))
            if action == "drop" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.text(max_size=10))] = draw(json_values)
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue   # an earlier edit removed this path
    return doc


_PREPARED: dict[int, list[tuple[str, list[tuple]]]] = {}


def _prepared(key: int, samples: list[Any]) -> list[tuple[str, list[tuple]]]:
    if key not in _PREPARED:
        _PREPARED[key] = [(json.dumps(s), [p for p in _paths(s) if p][:200] or [("x",)]) for s in samples]
    return _PREPARED[key]


def _schema_of(op: dict) -> dict:
    ref = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    return SPEC["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}


def _value_for(prop: dict) -> st.SearchStrategy:
    if "enum" in prop:
        return st.sampled_from(prop["enum"]) | json_values
    if prop.get("type") == "boolean":
        return st.booleans() | json_values
    if prop.get("type") == "integer":
        return st.integers(-10, 400) | json_values
    return st.text(max_size=60) | json_values


def shaped(op: dict) -> st.SearchStrategy:
    """Objects with the operation's documented properties (each optional, each value sometimes off-type)."""
    props = _schema_of(op).get("properties", {})
    if not props:
        return st.dictionaries(st.text(max_size=10), json_values, max_size=5)
    return st.fixed_dictionaries({}, optional={k: _value_for(v) for k, v in props.items()})


def body_bytes(op: dict) -> st.SearchStrategy:
    as_json = (shaped(op) | mutated(SAMPLES) | json_values).map(lambda v: json.dumps(v).encode())
    return as_json | limit_breakers | st.binary(max_size=120)


def request_for(path: str, method: str, op: dict) -> st.SearchStrategy:
    route = path.strip("/")
    params = [p for p in op.get("parameters", []) if p["in"] == "query"]
    names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
    text = st.text(max_size=40) | st.sampled_from(["", "2026-11-20", "1000000", "-1", "rollback", "sha256:" + "a" * 64])
    query = st.tuples(st.fixed_dictionaries({}, optional={p["name"]: text for p in params}),
                      st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=2)
                      ).map(lambda pair: {**pair[1], **pair[0]})
    route_params = st.fixed_dictionaries({n: text for n in names})
    body = body_bytes(op) if method == "post" else st.just(b"")
    headers = st.sampled_from([{}, {}, {"content-length": "99999999999999999999"}, {"content-length": "x"}])

    def build(args: tuple) -> func.HttpRequest:
        q, rp, b, h = args
        return func.HttpRequest(method=method.upper(), url=f"http://localhost/api/{route}", headers=h, params=q,
                                route_params=rp, body=b)
    return st.tuples(query, route_params, body, headers).map(build)


def acr_events() -> st.SearchStrategy:
    from drill.replication import acr_event
    base = [acr_event("myreg", "shop/web", "sha256:" + "b" * 64, tag="v1"),
            acr_event("myreg", "shop/web", "sha256:" + "c" * 64, action="delete"),
            {"id": "v1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "subject": "", "topic": "t",
             "eventTime": "2026-11-20T10:00:00Z", "dataVersion": "1", "data": {"validationCode": "abc"}}]
    return mutated(base) | st.fixed_dictionaries({"id": st.text(max_size=20), "eventType": st.text(max_size=40),
                                                  "subject": st.text(max_size=20),
                                                  "eventTime": st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-20T10:00:00.1234567+14:00",
                                                                                "0001-01-01T00:00:00Z"]) | st.text(max_size=30),
                                                  "dataVersion": st.just("1.0"), "data": json_values})


def queue_messages() -> st.SearchStrategy:
    alert = json.loads((FIXTURES / "alerts" / "metric_fired.json").read_text())
    base = [{"v": 1, "kind": "alert", "alert": {"schema_id": "common", "alert_id": "12345678-1234-1234-1234-"
                                                "1234567890ab", "rule": "r", "monitor_condition": "Fired",
                                                "fired_at": "2026-11-20T10:05:00Z", "custom_properties": {}}},
            {"v": 1, "kind": "run", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T01:00:00Z", "by": "x"},
            {"registry": "myreg", "repository": "shop/web", "digest": "sha256:" + "d" * 64, "generation": 1,
             "check": 0},
            {"kind": "budget", "alert": {"alert_id": "x"}}, {"raw": "x", "deadLetterReason": "r"}, alert]
    as_json = (mutated(base) | json_values).map(lambda v: json.dumps(v).encode())
    return as_json | limit_breakers | st.binary(max_size=80)

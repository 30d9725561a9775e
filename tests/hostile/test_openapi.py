"""shared/openapi.json describes exactly the HTTP routes function_app.py registers, and is served at
/api/openapi.json. A route added without its description fails here, naming the route."""
from __future__ import annotations

import json
import re

import pytest

from shared.api import OPENAPI_FILE
from tests.functions import call, http, trigger

SPEC = json.loads(OPENAPI_FILE.read_text())
METHODS = {"get", "post", "put", "patch", "delete"}


def registered_routes(functions) -> dict[tuple[str, str], str]:
    out = {}
    for name, fn in functions.items():
        t = trigger(fn)
        if t["type"] == "httpTrigger":
            for method in t["methods"]:
                out[("/" + t["route"].strip("/"), method.lower())] = name
    return out


def described_routes() -> dict[tuple[str, str], dict]:
    return {(path, method): op for path, ops in SPEC["paths"].items() for method, op in ops.items()
            if method in METHODS}


def test_every_registered_route_is_described_and_nothing_else(functions):
    registered, described = registered_routes(functions), described_routes()
    missing = sorted(f"{m.upper()} /api{p} (function {registered[(p, m)]})" for p, m in set(registered) - set(described))
    assert not missing, "routes registered in function_app.py but missing from shared/openapi.json: " + ", ".join(missing)
    stale = sorted(f"{m.upper()} /api{p}" for p, m in set(described) - set(registered))
    assert not stale, "routes described in shared/openapi.json that function_app.py does not register: " + ", ".join(stale)


def test_the_description_is_openapi_3_1_and_complete():
    assert SPEC["openapi"].startswith("3.1.") and SPEC["servers"] == [{"url": "/api"}]
    for (path, method), op in described_routes().items():
        assert op.get("operationId") and op.get("responses"), (method, path)
        for name in re.findall(r"{(\w+)}", path):
            assert any(p["in"] == "path" and p["name"] == name for p in op.get("parameters", [])), (path, name)
        refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', json.dumps(op))
        assert all(name in SPEC["components"][kind] for kind, name in refs), (path, refs)


@pytest.mark.integration
def test_it_is_served(functions, storage_env):
    resp = call(functions, "openapi", http("GET", "openapi.json"))
    assert resp.status_code == 200 and json.loads(resp.get_body()) == SPEC

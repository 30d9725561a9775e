"""Calling what function_app.py registers, with real azure.functions objects, as the host would."""
from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def trigger(fn) -> dict:
    """The trigger binding as the host reads it (the function.json the worker reports)."""
    return next(b for b in bindings(fn) if b["type"].endswith("Trigger"))


def bindings(fn) -> list[dict]:
    return json.loads(fn.get_function_json())["bindings"]


def call(functions: dict, name: str, *args: Any) -> Any:
    return functions[name].get_user_function()(*args)


def http(method: str, route: str, body: Any = None, params: dict | None = None, route_params: dict | None = None,
         headers: dict | None = None) -> func.HttpRequest:
    from tests.conftest import OPERATOR
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    return func.HttpRequest(method=method, url=f"http://localhost/api/{route}",
                            headers=dict(OPERATOR) if headers is None else headers,
                            params=params or {}, route_params=route_params or {}, body=raw)

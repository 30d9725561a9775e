"""Small helpers for HTTP-triggered functions: bounded JSON bodies and JSON responses with reasons."""
from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared import safejson


class BadRequest(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(body, default=str) if body is not None else "",
        status_code=status, mimetype="application/json", headers=headers)


def problem(status: int, reason: str) -> func.HttpResponse:
    return respond(status, {"error": reason})


def read_json(req: func.HttpRequest, max_bytes: int) -> Any:
    """The request body as JSON within `shared.safejson`'s limits (size, depth, number length and range, string
    validity); a broken limit is a 400 (413 for size) whose reason names it."""
    body = req.get_body() or b""
    declared = req.headers.get("content-length")
    if len(body) > max_bytes or (declared and declared.isdigit() and len(declared) < 19 and int(declared) > max_bytes):
        raise BadRequest(413, f"body larger than {max_bytes} bytes")
    if not body:
        raise BadRequest(400, "empty body: expected JSON")
    try:
        return safejson.loads(body, max_bytes)
    except safejson.JsonLimitError as exc:
        raise BadRequest(exc.status, exc.reason) from None

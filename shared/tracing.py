"""W3C trace context across Healer's hops: webhook → queue → worker → Azure calls → notification.

Azure Functions starts a span for each invocation, but a queue message carries no context by itself, so the
worker's span would begin a new operation. Healer writes the current context into every message it enqueues
(`_trace`: {"traceparent", "tracestate"}) and the worker resumes it, so one operation id (the trace id) links the
webhook, every retry, the decision, the ARM calls the Azure SDKs trace, and the notification.

Attribute names follow one scheme, `healer.*` (docs/operations.md lists them). With no tracer provider configured
(local runs, tests without Application Insights) every call here is a cheap no-op.
"""
from __future__ import annotations

import contextlib
from typing import Any
from collections.abc import Iterator, Mapping

TRACE_FIELD = "_trace"
_MAX_HEADER = 512

# The attribute scheme: every span and log record Healer emits uses these names.
ATTRIBUTES = {
    "healer.healer": "which healer (rollback, downshift, replication, errors, controls, approvals)",
    "healer.action": "the canonical action name (rollback.swap, downshift.switch, ...)",
    "healer.outcome": "the audit outcome (acted, skipped, refused, pending, dry-run, ...)",
    "healer.resource": "the canonical resource id acted on",
    "healer.subject": "the incident: alert id, tenant, image digest or error fingerprint",
    "healer.audit_id": "the audit record's id (day/row)",
    "healer.queue": "the work queue a message came from",
    "healer.attempt": "the message's retry attempt",
    "healer.route": "the HTTP route an intake request arrived on",
}


def inject() -> dict[str, str]:
    """The current trace context as a carrier dict (empty when nothing is being traced)."""
    from opentelemetry import propagate
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def _clean(carrier: Any) -> dict[str, str]:
    """Untrusted input (a queue message, a request header): keep only bounded string W3C fields."""
    if not isinstance(carrier, Mapping):
        return {}
    return {k: v for k, v in carrier.items()
            if k in ("traceparent", "tracestate") and isinstance(v, str) and len(v) <= _MAX_HEADER}


def with_context(message: dict[str, Any]) -> dict[str, Any]:
    """The message with the current trace context attached (unchanged when nothing is being traced)."""
    ctx = inject()
    return {**message, TRACE_FIELD: ctx} if ctx else message


@contextlib.contextmanager
def span(name: str, carrier: Any = None, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Run a block in a span, as a child of `carrier`'s context when it carries one (else of the current span).

    `attributes` use the `healer.*` names above; None values are left out."""
    from opentelemetry import context, propagate, trace
    parent = _clean(carrier)
    token = context.attach(propagate.extract(parent)) if parent else None
    try:
        with trace.get_tracer("healer").start_as_current_span(
                name, attributes={k: v for k, v in (attributes or {}).items() if v is not None}):
            yield
    finally:
        if token is not None:
            context.detach(token)

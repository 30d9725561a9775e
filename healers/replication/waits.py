"""Waits on demand: POST /api/replication/waits opens or joins the same dedupe-keyed wait an Event Grid delivery
would (one wait per registry, repository, digest), so a pipeline does not depend on event delivery (a lost event,
or the registry's home region — where its system topic lives — being down while replicas serve)."""
from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from healers.replication.events import DIGEST_RE, AcrImageEvent
from healers.replication.shell import Clock, StatusError, _load, _store, accept, image_request, prober_for
from shared.config import Settings

WAIT_FIELDS = {"registry", "repository", "digest", "tag"}


def open_wait(settings: Settings, body: Any, *, now: Clock = time.time, prober: Any = None) -> dict[str, Any]:
    """POST /api/replication/waits: open or join the same dedupe-keyed wait an Event Grid delivery would, so a
    pipeline does not depend on event delivery. `tag` alone is resolved to its digest at the registry's login
    server. Raises StatusError (4xx/5xx with a reason). Returns the intake outcome and where to poll."""
    if not isinstance(body, dict):
        raise StatusError(400, "body must be a JSON object {registry, repository, digest and/or tag}")
    unknown = set(body) - WAIT_FIELDS
    if unknown:
        raise StatusError(400, f"unknown fields {sorted(unknown)[:5]}; allowed: {sorted(WAIT_FIELDS)}")
    values = {k: body.get(k) for k in WAIT_FIELDS}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        raise StatusError(400, "registry, repository, digest and tag must be strings")
    digest, tag = values["digest"], values["tag"]
    registry, repository, config = image_request(settings, values["registry"], values["repository"], digest, tag)
    if not digest:
        digest = _resolve_tag(prober if prober is not None else prober_for(config), registry, repository, str(tag))
    key = hashlib.sha256(f"{registry}/{repository}@{digest}:{tag or ''}".encode()).hexdigest()[:32]
    event = AcrImageEvent(event_id=f"api-{key}", event_type="Microsoft.ContainerRegistry.ImagePushed",
                          action="push", schema_name="api", registry=registry, login_server=None,
                          repository=repository, tag=tag or None, digest=str(digest), media_type=None, location=None,
                          request_id=None, event_time=dt.datetime.fromtimestamp(now(), dt.UTC))
    outcome = accept(settings, event, now=now)
    record, _ = _load(_store(settings), registry, repository, str(digest))
    query = f"registry={registry}&repository={repository}&digest={digest}"
    return {"intake": outcome, "registry": registry, "repository": repository, "digest": digest, "tag": tag,
            "status": (record.status.replace("_", "-") if record else "unknown"),
            "outcomeEventId": record.outcome_event_id if record else None,
            "statusUrl": f"/api/replication/status?{query}"}


def _resolve_tag(prober: Any, registry: str, repository: str, tag: str) -> str:
    probe = prober.head_manifest(f"{registry}.azurecr.io", repository, tag)
    if probe.status == "present" and probe.digest and DIGEST_RE.fullmatch(probe.digest):
        return probe.digest
    if probe.status == "absent":
        raise StatusError(404, f"tag {repository}:{tag} not found at {registry}.azurecr.io; give the digest")
    if probe.status == "throttled":
        raise StatusError(503, f"{registry}.azurecr.io is throttling (HTTP 429); retry, or give the digest")
    raise StatusError(502, f"could not resolve {repository}:{tag} at {registry}.azurecr.io "
                           f"({probe.status}: {(probe.detail or '')[:200]}); give the digest")

"""The rollback healer's Azure calls: read both slots, start or resume a swap, check health.

Everything goes through the official `azure-mgmt-web` client (imported lazily) so retries, long-running
operations and error mapping are the SDK's, not ours.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from healers.rollback.core import DeploymentNote, Observed, SlotView, SwapStatus, deployment_history, successful
from shared.config import Settings
from shared.resource_ids import SiteId
from shared.webapps import web_client

if TYPE_CHECKING:
    from azure.mgmt.web import WebSiteManagementClient


class SwapConflict(Exception):
    """ARM answered 409: another swap (or operation) is running on the app."""


class TransientArmError(Exception):
    """ARM answered with an error worth retrying later (e.g. 400 'allocation changed')."""


class SwapFailed(Exception):
    """The swap's long-running operation ended in failure (not a polling hiccup): it will not finish by itself."""


def _when(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _deployments(client: WebSiteManagementClient, site: SiteId, slot: str | None) -> list[Any]:
    ops = client.web_apps
    items = ops.list_deployments_slot(site.resource_group, site.name, slot) if slot else \
        ops.list_deployments(site.resource_group, site.name)
    return list(items)


def _build(client: WebSiteManagementClient, site: SiteId, slot: str | None, marker: str,
           deployments: list[Any]) -> str | None:
    ops, rg, name = client.web_apps, site.resource_group, site.name
    if marker.startswith("appSetting:"):
        settings = ops.list_application_settings_slot(rg, name, slot) if slot else \
            ops.list_application_settings(rg, name)
        value = (settings.properties or {}).get(marker.split(":", 1)[1])
        return value or None
    if marker == "linuxFxVersion":
        config = ops.get_configuration_slot(rg, name, slot) if slot else ops.get_configuration(rg, name)
        return config.linux_fx_version or None
    active = [d for d in deployments if d.active and successful(d.status)]
    return active[0].name if active else None


def _deployed_at(d: Any) -> dt.datetime | None:
    return _when(d.end_time) or _when(d.start_time)


def _slot_view(client, site: SiteId, slot: str | None, marker: str, resource: Any) -> SlotView:
    """Only successful deployments (status 4) count; failed and unfinished ones are listed to be audited."""
    deployments = _deployments(client, site, slot)
    notes = [DeploymentNote(id=str(d.name or "?").rsplit("/", 1)[-1][:100], status=d.status, at=_deployed_at(d))
             for d in deployments]
    return SlotView(exists=True, state=resource.state or "Unknown",
                    build=_build(client, site, slot, marker, deployments),
                    target_swap_slot=resource.target_swap_slot or None, **deployment_history(notes))


def observe(settings: Settings, site: SiteId, slot: str, marker: str) -> Observed:
    """Read production and the slot: state, build marker, last deployment, last swap, pending preview."""
    from azure.core.exceptions import ResourceNotFoundError
    client = web_client(settings, site.subscription)
    prod_site = client.web_apps.get(site.resource_group, site.name)
    production = _slot_view(client, site, None, marker, prod_site)
    try:
        slot_site = client.web_apps.get_slot(site.resource_group, site.name, slot)
        slot_view = _slot_view(client, site, slot, marker, slot_site)
    except ResourceNotFoundError:
        slot_view = SlotView(exists=False, state="Missing")
    status = prod_site.slot_swap_status
    last_swap = None
    if status is not None and status.timestamp_utc:
        last_swap = SwapStatus(at=_when(status.timestamp_utc), source=status.source_slot_name or "",
                               destination=status.destination_slot_name or "")
    return Observed(production=production, slot=slot_view, last_swap=last_swap)


def _classify(exc: Exception) -> Exception:
    from azure.core.exceptions import HttpResponseError
    if isinstance(exc, HttpResponseError):
        text = str(exc.message or exc)
        if exc.status_code == 409:
            return SwapConflict(text[:300])
        if exc.status_code == 400 and "allocation" in text.lower():
            return TransientArmError(text[:300])
        if exc.status_code in (429, 500, 502, 503, 504):
            return TransientArmError(f"HTTP {exc.status_code}: {text[:200]}")
    return exc


def start_swap(settings: Settings, site: SiteId, slot: str) -> tuple[Any, str]:
    """Send the swap (slot ↔ production). Returns the poller and its continuation token."""
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.web.models import CsmSlotEntity
    client = web_client(settings, site.subscription)
    try:
        poller = client.web_apps.begin_swap_slot_with_production(
            site.resource_group, site.name, CsmSlotEntity(target_slot=slot, preserve_vnet=True))
    except HttpResponseError as exc:
        raise _classify(exc) from exc
    return poller, poller.continuation_token()


def resume_swap(settings: Settings, site: SiteId, slot: str, token: str) -> Any:
    """Rebuild the swap's poller from a persisted continuation token (no new swap is sent)."""
    from azure.mgmt.web.models import CsmSlotEntity
    client = web_client(settings, site.subscription)
    return client.web_apps.begin_swap_slot_with_production(
        site.resource_group, site.name, CsmSlotEntity(target_slot=slot, preserve_vnet=True),
        continuation_token=token)


def wait(poller: Any, heartbeat: Callable[[], None] = lambda: None, every: float = 30.0) -> None:
    """Wait for the long-running operation, calling `heartbeat` every `every` seconds while it runs.

    Raises TransientArmError when polling itself failed (the operation may still be running: poll again later from
    the continuation token) and SwapFailed when the operation ended in failure."""
    from azure.core.exceptions import HttpResponseError
    try:
        while True:
            poller.wait(timeout=every)
            if poller.done():
                break
            heartbeat()
        poller.result()
    except HttpResponseError as exc:
        if exc.status_code in (408, 429, 500, 502, 503, 504):
            raise TransientArmError(f"polling the swap failed with HTTP {exc.status_code}; it may still run") from exc
        raise SwapFailed(f"HTTP {exc.status_code}: {str(exc.message or exc)[:300]}") from exc


def deployment_log(settings: Settings, site: SiteId, slot: str | None, deployment_id: str) -> str:
    """The deployment's log text (ARM sites/deployments/{id}/log), bounded; '' when unavailable."""
    from azure.core.exceptions import HttpResponseError
    ops = web_client(settings, site.subscription).web_apps
    try:
        dep = ops.list_deployment_log_slot(site.resource_group, site.name, id=deployment_id, slot=slot) if slot else \
            ops.list_deployment_log(site.resource_group, site.name, deployment_id)
    except HttpResponseError as exc:
        return f"(deployment log unavailable: HTTP {exc.status_code})"
    return "\n".join(x for x in (dep.message, dep.details) if x)[-4000:]


def check_health(url: str | None) -> str | None:
    """None when no health URL is configured, 'ok' on 2xx, else what went wrong."""
    if not url:
        return None
    import httpx
    try:
        resp = httpx.get(url, timeout=10.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return "ok" if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"

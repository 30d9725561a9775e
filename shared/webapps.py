"""The one `WebSiteManagementClient` per subscription that every healer touching App Service uses.

Created lazily (azure-mgmt-web is heavy) with Healer's managed identity; ARM endpoint, audience and the
long-running-operation polling fallback come from settings.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from shared.config import Settings
from shared.transport import on_reset, sdk_options

# The Microsoft.Web ARM api-version Healer is tested against (azure-mgmt-web 11.0.1's default, pinned here so that an
# SDK upgrade cannot silently move Healer to another API version). Recorded in README.md.
WEB_API_VERSION = "2025-05-01"

if TYPE_CHECKING:
    from azure.mgmt.web import WebSiteManagementClient


@lru_cache(maxsize=16)
def _client(subscription: str, endpoint: str, audience: str, poll: float, client_id: str | None):
    from azure.mgmt.web import WebSiteManagementClient
    from shared.identity import credential
    return WebSiteManagementClient(credential(client_id), subscription, base_url=endpoint,
                                   credential_scopes=[audience.rstrip("/") + "/.default"], polling_interval=poll,
                                   api_version=WEB_API_VERSION, **sdk_options())


def web_client(settings: Settings, subscription: str) -> WebSiteManagementClient:
    return _client(subscription, settings.require("HEALER_ARM_ENDPOINT"), settings.require("HEALER_ARM_AUDIENCE"),
                   settings.arm_poll_seconds, settings.get("AZURE_CLIENT_ID"))


@on_reset
def reset_clients() -> None:
    """Forget cached clients (tests and tools that repoint Healer at other endpoints)."""
    _client.cache_clear()

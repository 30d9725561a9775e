"""Healer's Azure credential: its managed identity in Azure, the developer's login elsewhere."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.transport import on_reset, sdk_options

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@lru_cache(maxsize=4)
def credential(client_id: str | None = None) -> TokenCredential:
    """ManagedIdentityCredential when a managed-identity endpoint is present, else DefaultAzureCredential."""
    client_id = client_id or os.environ.get("AZURE_CLIENT_ID") or None
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        from azure.identity import ManagedIdentityCredential
        return ManagedIdentityCredential(client_id=client_id, **sdk_options()) if client_id \
            else ManagedIdentityCredential(**sdk_options())
    from azure.identity import DefaultAzureCredential
    return DefaultAzureCredential(managed_identity_client_id=client_id, **sdk_options())


on_reset(credential.cache_clear)  # shared.transport.reset() forgets it with the other clients

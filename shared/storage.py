"""Clients for Healer's storage account (tables for state, queues for work), from the Functions settings.

Locally (Azurite) the connection string in `AzureWebJobsStorage` is used; in Azure the identity-based form
(`AzureWebJobsStorage__accountName` + the user-assigned identity) — no shared keys.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.config import ConfigError, Settings

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.queue import QueueClient, QueueServiceClient

_created: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


def _conn_or_account(settings: Settings) -> tuple[str | None, str | None]:
    conn = settings.get("AzureWebJobsStorage")
    account = settings.get("AzureWebJobsStorage__accountName")
    if not conn and not account:
        raise ConfigError("setting AzureWebJobsStorage (or AzureWebJobsStorage__accountName) is required")
    return conn, account


@lru_cache(maxsize=8)
def _table_service(conn: str | None, account: str | None, client_id: str | None) -> "TableServiceClient":
    from azure.data.tables import TableServiceClient
    if conn:
        return TableServiceClient.from_connection_string(conn)
    from shared.identity import credential
    return TableServiceClient(f"https://{account}.table.core.windows.net", credential=credential(client_id))


@lru_cache(maxsize=8)
def _queue_service(conn: str | None, account: str | None, client_id: str | None) -> "QueueServiceClient":
    from azure.storage.queue import QueueServiceClient
    if conn:
        return QueueServiceClient.from_connection_string(conn)
    from shared.identity import credential
    return QueueServiceClient(f"https://{account}.queue.core.windows.net", credential=credential(client_id))


def table(settings: Settings, name: str) -> "TableClient":
    """A client for Healer table `name` (prefixed), created on first use in this process."""
    conn, account = _conn_or_account(settings)
    service = _table_service(conn, account, settings.get("AzureWebJobsStorage__clientId"))
    full = f"{settings.table_prefix}{name}"
    key = (conn or account or "", full)
    if key not in _created:
        with _created_lock:
            if key not in _created:
                service.create_table_if_not_exists(full)
                _created.add(key)
    return service.get_table_client(full)


def queue(settings: Settings, name: str) -> "QueueClient":
    """A client for queue `name` whose messages the Functions queue trigger can read (base64 text)."""
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy
    conn, account = _conn_or_account(settings)
    service = _queue_service(conn, account, settings.get("AzureWebJobsStorage__clientId"))
    client = service.get_queue_client(
        name, message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy())
    key = (conn or account or "", "queue:" + name)
    if key not in _created:
        with _created_lock:
            if key not in _created:
                from azure.core.exceptions import ResourceExistsError
                try:
                    client.create_queue()
                except ResourceExistsError:
                    pass
                _created.add(key)
    return client

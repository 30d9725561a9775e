"""Clients for Healer's storage account (tables for state, queues for work), from the Functions settings.

Locally (Azurite) the connection string in `AzureWebJobsStorage` is used; in Azure the identity-based form
(`AzureWebJobsStorage__accountName` + the user-assigned identity) — no shared keys.

Service, table and queue clients are cached per process, keyed on the settings that select them, and built with
the shared transport (`shared/transport.py`: one connection pool, no proxy scan per call); `reset_clients()`
forgets them.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.config import ConfigError, Settings
from shared.transport import on_reset, sdk_options

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
def _table_service(conn: str | None, account: str | None, client_id: str | None) -> TableServiceClient:
    from azure.data.tables import TableServiceClient
    if conn:
        return TableServiceClient.from_connection_string(conn, **sdk_options())
    from shared.identity import credential
    return TableServiceClient(f"https://{account}.table.core.windows.net", credential=credential(client_id),
                              **sdk_options())


@lru_cache(maxsize=8)
def _queue_service(conn: str | None, account: str | None, client_id: str | None) -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient
    if conn:
        return QueueServiceClient.from_connection_string(conn, **sdk_options())
    from shared.identity import credential
    return QueueServiceClient(f"https://{account}.queue.core.windows.net", credential=credential(client_id),
                              **sdk_options())


def table(settings: Settings, name: str) -> TableClient:
    """A client for Healer table `name` (prefixed), created (and the table with it) on first use in this process."""
    conn, account = _conn_or_account(settings)
    return _table(conn, account, settings.get("AzureWebJobsStorage__clientId"), f"{settings.table_prefix}{name}")


@lru_cache(maxsize=256)
def _table(conn: str | None, account: str | None, client_id: str | None, full: str) -> TableClient:
    service = _table_service(conn, account, client_id)
    key = (conn or account or "", full)
    if key not in _created:
        with _created_lock:
            if key not in _created:
                service.create_table_if_not_exists(full)
                _created.add(key)
    return service.get_table_client(full)


def queue(settings: Settings, name: str) -> QueueClient:
    """A client for queue `name` whose messages the Functions queue trigger can read (base64 text)."""
    conn, account = _conn_or_account(settings)
    return _queue(conn, account, settings.get("AzureWebJobsStorage__clientId"), name)


@lru_cache(maxsize=64)
def _queue(conn: str | None, account: str | None, client_id: str | None, name: str) -> QueueClient:
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy
    service = _queue_service(conn, account, client_id)
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


@on_reset
def reset_clients() -> None:
    """Forget cached clients and which tables and queues exist (tests and tools that repoint Healer)."""
    for cached in (_table, _queue, _table_service, _queue_service):
        cached.cache_clear()
    with _created_lock:
        _created.clear()

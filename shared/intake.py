"""Fail-fast enqueueing for intake paths (webhooks, run requests): storage down → an answer within 5 s.

The Storage SDK's default policy (exponential, 15 s initial back-off, up to 10 tries) keeps a webhook waiting
~80 s when storage is down, long after Azure Monitor's action group has given up. Intake instead uses its own
queue clients with one linear retry after `BACKOFF_S`, `CONNECT_TIMEOUT_S` to connect and `READ_TIMEOUT_S` to
read: at most 2 × (1 + 1.5) + 0.25 ≈ 5.25 s in the worst case (a half-open server), and well under a second when the
port is closed. The caller answers 503 and the sender retries. The queue is created only when a send finds it
missing, so the first request after a cold start is bounded too.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.config import ConfigError, Settings

if TYPE_CHECKING:
    from azure.storage.queue import QueueServiceClient

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 1.5
RETRIES = 1
BACKOFF_S = 0.25


@lru_cache(maxsize=8)
def _service(conn: str | None, account: str | None, client_id: str | None) -> QueueServiceClient:
    from azure.storage.queue import LinearRetry, QueueServiceClient
    options: dict[str, Any] = {
        "retry_policy": LinearRetry(backoff=BACKOFF_S, retry_total=RETRIES, random_jitter_range=0),  # type: ignore[arg-type]
        "connection_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S}
    if conn:
        return QueueServiceClient.from_connection_string(conn, **options)
    from shared.identity import credential
    return QueueServiceClient(f"https://{account}.queue.core.windows.net", credential=credential(client_id),
                              **options)


def send(settings: Settings, queue_name: str, payload: bytes) -> None:
    """Send one message (base64 text, as the Functions queue trigger reads it) with the bounded policy; raises the
    SDK's error when storage does not answer in time."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy
    conn, account = settings.get("AzureWebJobsStorage"), settings.get("AzureWebJobsStorage__accountName")
    if not conn and not account:
        raise ConfigError("setting AzureWebJobsStorage (or AzureWebJobsStorage__accountName) is required")
    client = _service(conn, account, settings.get("AzureWebJobsStorage__clientId")).get_queue_client(
        queue_name, message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy())
    try:
        client.send_message(payload)
    except ResourceNotFoundError:   # first message to this queue: create it, then send once more
        from azure.core.exceptions import ResourceExistsError
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        client.send_message(payload)


def reset() -> None:
    """Forget cached clients (tests that repoint Healer at another storage account)."""
    _service.cache_clear()

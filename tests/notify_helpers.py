"""Helpers for tests that count notifications: run the notify queue as the host would, and start chat stand-ins."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standins.chat_hooks import accepted
from standins.harness import Server, free_port, start_python_server


def _client(name: str):
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
    from shared.config import Settings
    conn = Settings().require("AzureWebJobsStorage")
    client = QueueClient.from_connection_string(conn, name, message_encode_policy=BinaryBase64EncodePolicy(),
                                                message_decode_policy=BinaryBase64DecodePolicy())
    try:
        client.create_queue()
    except Exception:
        pass
    return client


def drain(max_rounds: int = 200) -> list[str]:
    """Run `notify_worker` / `notify_dead_letter` over every visible message until both queues are empty, as the
    Functions host would (an exception leaves the message for the next dequeue). Returns the outcomes."""
    from shared import notify
    outcomes: list[str] = []
    work, poison = _client(notify.QUEUE), _client(notify.QUEUE + "-poison")
    for _ in range(max_rounds):
        got = False
        for client, fn in ((work, notify.process), (poison, notify.dead_letter)):
            for m in client.receive_messages(max_messages=32, visibility_timeout=30):
                got = True
                outcomes.append(fn(m.content, m.dequeue_count))
                client.delete_message(m)
        if not got:
            return outcomes
    raise AssertionError("notification queues did not drain")


def queued(name: str = "healer-notify") -> list[dict[str, Any]]:
    return [json.loads(m.content) for m in _client(name).peek_messages(max_messages=32)]


@dataclass
class ChatHooks:
    """Teams, Slack and generic stand-ins, and the HEALER_NOTIFY_DESTINATIONS that points at them."""
    servers: dict[str, Server] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.servers[name].ports['http']}"

    def destinations(self, **rules: Any) -> list[dict[str, Any]]:
        paths = {"teams": "/workflows/abc/triggers/manual/paths/invoke?sig=SECRETSIG", "slack":
                 "/services/T000/B000/SECRETTOKEN", "generic": "/hook/logic"}
        return [{"name": f"{fmt}-dest", "format": fmt, "url": self.url(fmt) + paths[fmt],
                 **({"rules": rules[fmt]} if fmt in rules else {})} for fmt in ("teams", "slack", "generic")]

    def received(self, name: str, all_requests: bool = False) -> list[dict[str, Any]]:
        got = httpx.get(self.url(name) + "/_standin/received").json()["received"]
        if name == "generic":
            return got  # the generic sink records accepted deliveries only
        return got if all_requests else accepted(got)

    def reset(self) -> None:
        for name in self.servers:
            httpx.post(self.url(name) + "/_standin/reset")

    def fail(self, name: str, count: int, status: int = 503) -> None:
        httpx.post(self.url(name) + "/_standin/fail", json={"count": count, "status": status})

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()


def start_chat_hooks(workdir: Path) -> ChatHooks:
    hooks = ChatHooks()
    try:
        for name, module in (("teams", "standins.teams"), ("slack", "standins.slack"),
                             ("generic", "standins.webhook_sink")):
            port = free_port()
            hooks.servers[name] = start_python_server(f"chat-{name}", module, ["--port", str(port)], port, workdir)
    except Exception:
        hooks.stop()
        raise
    return hooks

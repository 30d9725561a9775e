"""Run Healer's function app in the local Functions host stand-in, as `func start` would."""
from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from standins.harness import Server, free_port, start_process
from standins.stack import LocalAzure


@dataclass
class HealerHost:
    server: Server
    key: str
    operator_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['http']}/api"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-functions-key": self.key,
                                                        "x-healer-operator-key": self.operator_key}, timeout=30)

    def stop(self) -> None:
        self.server.stop()


def start_healer(stack: LocalAzure, settings: dict[str, str], name: str = "healer",
                 port: int | None = None, code: Path | None = None) -> HealerHost:
    """`port`: when the settings must name the host's own address (e.g. HEALER_PUBLIC_BASE_URL); `code` runs
    another checkout (a bench's baseline)."""
    port, key, operator_key = port or free_port(), secrets.token_hex(16), secrets.token_hex(16)
    env = {**stack.env(), "HEALER_OPERATOR_KEY": operator_key, **settings}
    server = start_process(name, [sys.executable, "-m", "standins.funchost", "--port", str(port), f"--key={key}"],
                           {"http": port}, stack.workdir, env=env, cwd=code)
    return HealerHost(server, key, operator_key)

"""The CLI's connection to a Healer deployment: where it is, how to authenticate, and errors that say what to do.

Where: `--url`, else `HEALER_URL`, else `azd env get-value HEALER_API_BASE_URL` (run in an azd project folder).
How:   Entra ID when an audience is known (`--audience` / `HEALER_AUDIENCE`): a token for `<audience>/.default`
       from azure-identity (Azure CLI login, azd login, managed identity, environment); otherwise the function key
       in `HEALER_KEY` (sent as `x-functions-key`), plus the operator key in `HEALER_OPERATOR_KEY` for operator
       actions (approve, controls, re-arm, release).
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

OPERATOR_KEY_HEADER = "x-healer-operator-key"

# Exit codes (documented in docs/operations.md; stable for scripts).
OK, FAILED, USAGE, AUTH, NOT_FOUND, UNREACHABLE, INVALID_CONFIG = 0, 1, 2, 3, 4, 5, 6


class CliError(Exception):
    """One line for a human: what went wrong and how to fix it, with the exit code for scripts."""

    def __init__(self, message: str, code: int = FAILED):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class Target:
    url: str
    key: str | None = None
    operator_key: str | None = None
    audience: str | None = None


def resolve_url(url: str | None) -> str:
    """The API base URL (ending in /api)."""
    found = url or os.environ.get("HEALER_URL") or _azd_value("HEALER_API_BASE_URL")
    if not found:
        raise CliError("no Healer URL: pass --url https://<app>.azurewebsites.net/api, set HEALER_URL, or run in "
                       "the azd project folder after `azd up`", USAGE)
    found = found.rstrip("/")
    return found if found.endswith("/api") else found + "/api"


def _azd_value(name: str) -> str | None:
    if not shutil.which("azd"):
        return None
    try:
        out = subprocess.run(["azd", "env", "get-value", name], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value.startswith("http") else None


def operator_name(by: str | None) -> str:
    """Who is acting, as recorded in the audit (in Entra mode Healer records the token's identity instead)."""
    if by:
        return by
    env = os.environ.get("HEALER_OPERATOR_NAME")
    if env:
        return env
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user database entry (containers)
        return "healer-cli"


class Api:
    """A small client of Healer's HTTP API."""

    def __init__(self, target: Target, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.target = target
        headers = {"user-agent": "healer-cli", "accept": "application/json"}
        if target.audience:
            headers["authorization"] = f"Bearer {_entra_token(target.audience)}"
        elif target.key:
            headers["x-functions-key"] = target.key
        if target.operator_key:
            headers[OPERATOR_KEY_HEADER] = target.operator_key
        self._http = httpx.Client(base_url=target.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v not in (None, "")})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise CliError(f"Healer at {self.target.url} did not answer in time; check the URL and that the app "
                           "is running", UNREACHABLE) from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach Healer at {self.target.url} ({type(exc).__name__}); check --url / "
                           "HEALER_URL", UNREACHABLE) from None
        if r.status_code < 400:
            return r.json() if r.content else {}
        raise _http_error(method, path, r)


def _reason(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300].strip() or r.reason_phrase
    if isinstance(body, dict):
        for k in ("reason", "detail", "error", "message", "title"):
            if isinstance(body.get(k), str):
                return body[k][:300]
    return str(body)[:300]


def _http_error(method: str, path: str, r: httpx.Response) -> CliError:
    why = _reason(r)
    where = f"{method} /api/{path.lstrip('/')}"
    if r.status_code == 401:
        return CliError(f"{where}: not authenticated ({why}); set HEALER_KEY (function key) or HEALER_AUDIENCE and "
                        "log in with `az login`", AUTH)
    if r.status_code == 403:
        return CliError(f"{where}: not allowed ({why}); operator actions need the Healer.Approver role or "
                        "HEALER_OPERATOR_KEY", AUTH)
    if r.status_code in (404, 409, 410):
        return CliError(f"{where}: {why}", NOT_FOUND)
    if r.status_code >= 500:
        return CliError(f"{where}: Healer answered {r.status_code} ({why}); see GET /api/health and the audit",
                        UNREACHABLE)
    return CliError(f"{where}: {r.status_code} {why}", FAILED)


def _entra_token(audience: str) -> str:
    try:
        from azure.identity import DefaultAzureCredential
        cred = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        return cred.get_token(audience.rstrip("/") + "/.default").token
    except Exception as exc:
        raise CliError(f"no Entra ID token for {audience} ({type(exc).__name__}); run `az login` (or `azd auth "
                       "login`) with an account that has a Healer role", AUTH) from None

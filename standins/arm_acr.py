"""Stand-in for ARM Microsoft.ContainerRegistry: registries and their geo-replications (what Healer reads).

    python -m standins.arm_acr --port N --cert C --key K --token-secret S

ARM surface (bearer token for https://management.azure.com/ from the identity stand-in, `api-version` required),
following the published REST contract (Registries - Get, Replications - List):
  {reg} = /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}
  GET {reg}                -> Registry {id, name, type, location, sku, properties: {loginServer, provisioningState,
                              regionalEndpoints: Enabled|Disabled, regionalEndpointHostNames, ...}}
  GET {reg}/replications   -> {value: [Replication {id, name, type, location, properties: {provisioningState,
                              status: {displayStatus, message, timestamp}, regionEndpointEnabled, zoneRedundancy}}]}
  404 ResourceNotFound for an unknown registry (ARM error body).
Control API (no auth):
  PUT    /_standin/registry       {"id": "<registry resource id>", "location": "eastus", "regionalEndpoints": true,
                                   "replications": {"westus": {"provisioningState": "Succeeded",
                                                               "displayStatus": "Ready"}}}
  DELETE /_standin/replication?id=<registry id>&region=<region>     (a replica removed)
  GET    /_standin/stats      {"gets": n, "lists": n}
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any
from urllib.parse import unquote

from standins import tokens
from standins.httpbase import JsonHandler, route, serve

API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
REG = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerRegistry/"
       r"registries/(?P<name>[^/]+)")


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def render_registry(rid: str, seed: dict[str, Any]) -> dict[str, Any]:
    name = rid.rsplit("/", 1)[-1]
    regions = [seed["location"], *[r for r in seed.get("replications", {}) if r != seed["location"]]]
    enabled = bool(seed.get("regionalEndpoints", True))
    return {"id": rid, "name": name, "type": "Microsoft.ContainerRegistry/registries", "location": seed["location"],
            "sku": {"name": "Premium", "tier": "Premium"}, "tags": {},
            "properties": {"loginServer": f"{name.lower()}.azurecr.io", "creationDate": "2025-01-01T00:00:00Z",
                           "provisioningState": "Succeeded", "adminUserEnabled": False,
                           "publicNetworkAccess": "Enabled", "zoneRedundancy": "Disabled",
                           "regionalEndpoints": "Enabled" if enabled else "Disabled",
                           "regionalEndpointHostNames": [f"{name.lower()}.{r}.geo.azurecr.io" for r in regions]
                           if enabled else []}}


def render_replication(rid: str, region: str, state: dict[str, Any]) -> dict[str, Any]:
    status = state.get("displayStatus", "Ready")
    return {"id": f"{rid}/replications/{region}", "name": region,
            "type": "Microsoft.ContainerRegistry/registries/replications", "location": region, "tags": {},
            "properties": {"provisioningState": state.get("provisioningState", "Succeeded"),
                           "status": {"displayStatus": status,
                                      "message": state.get("message") or f"The replication is {status.lower()}.",
                                      "timestamp": _now()},
                           "regionEndpointEnabled": bool(state.get("regionEndpointEnabled", True)),
                           "zoneRedundancy": "Disabled"}}


class ArmAcrHandler(JsonHandler):
    """Stand-in ARM Microsoft.ContainerRegistry (registries, replications)."""

    token_secret = ""
    registries: dict[str, dict[str, Any]] = {}     # lower-case resource id -> seed
    stats: dict[str, int] = {}

    def _arm(self) -> bool:
        if tokens.check_bearer(self, self.token_secret, tokens.ARM_AUDIENCES) is None:
            return False
        version = self.query.get("api-version")
        if not version or not API_VERSION_RE.match(version):
            self.send_json(400, arm_error("MissingApiVersionParameter" if not version else "InvalidApiVersionParameter",
                                          "The api-version query parameter (?api-version=) is required and must be "
                                          "a valid version."))
            return False
        return True

    def _find(self, sub: str, rg: str, name: str) -> tuple[str, dict[str, Any]] | None:
        rid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/"
               f"{unquote(name)}")
        seed = self.registries.get(rid.lower())
        if seed is None:
            self.send_json(404, arm_error("ResourceNotFound", f"The Resource 'Microsoft.ContainerRegistry/registries/"
                                                              f"{unquote(name)[:100]}' under resource group "
                                                              f"'{rg[:100]}' was not found."))
            return None
        return seed["id"], seed

    def _count(self, key: str) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    @route("GET", REG)
    def get_registry(self, sub: str, rg: str, name: str) -> None:
        if not self._arm():
            return
        with self.lock:
            found = self._find(sub, rg, name)
            if found is None:
                return
            self._count("gets")
            self.send_json(200, render_registry(*found))

    @route("GET", REG + r"/replications")
    def list_replications(self, sub: str, rg: str, name: str) -> None:
        if not self._arm():
            return
        with self.lock:
            found = self._find(sub, rg, name)
            if found is None:
                return
            rid, seed = found
            self._count("lists")
            self.send_json(200, {"value": [render_replication(rid, r, s)
                                           for r, s in seed.get("replications", {}).items()]})

    # ------------------------------------------------------------------ control
    @route("PUT", r"/_standin/registry")
    def put_registry(self) -> None:
        body = self.json_body() or {}
        seed = {"id": str(body["id"]), "location": str(body["location"]),
                "regionalEndpoints": bool(body.get("regionalEndpoints", True)),
                "replications": {str(k): dict(v) for k, v in (body.get("replications") or {}).items()}}
        with self.lock:
            self.registries[seed["id"].lower()] = seed
        self.send_json(200, seed)

    @route("DELETE", r"/_standin/replication")
    def delete_replication(self) -> None:
        q = self.query
        with self.lock:
            seed = self.registries.get(q.get("id", "").lower())
            removed = seed is not None and seed["replications"].pop(q.get("region", ""), None) is not None
        self.send_json(200 if removed else 404, {"removed": removed})

    @route("GET", r"/_standin/stats")
    def get_stats(self) -> None:
        with self.lock:
            self.send_json(200, dict(self.stats))


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-secret", required=True)


def _configure(args: argparse.Namespace) -> None:
    ArmAcrHandler.token_secret = args.token_secret
    ArmAcrHandler.registries, ArmAcrHandler.stats = {}, {}


class ArmAcrControl:
    """Test/drill-side client of the control API."""

    def __init__(self, base_url: str, ca_path: str) -> None:
        import ssl

        import httpx
        self._http = httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=ca_path), timeout=10)

    def put_registry(self, rid: str, location: str, replications: dict[str, dict[str, Any]] | list[str],
                     regional_endpoints: bool = True) -> None:
        if isinstance(replications, list):
            replications = {r: {} for r in replications}
        self._http.put("/_standin/registry", json={"id": rid, "location": location, "replications": replications,
                                                   "regionalEndpoints": regional_endpoints}).raise_for_status()

    def remove_replication(self, rid: str, region: str) -> None:
        self._http.delete("/_standin/replication", params={"id": rid, "region": region}).raise_for_status()

    def stats(self) -> dict[str, int]:
        return self._http.get("/_standin/stats").json()

    def close(self) -> None:
        self._http.close()


def start_arm_acr(stack: Any, name: str = "arm-acr"):
    """Start the stand-in with a LocalAzure stack's CA and token secret. Returns (server, base URL, control)."""
    import sys
    from standins.harness import free_port, start_process
    port = free_port()
    server = start_process(name, [sys.executable, "-m", "standins.arm_acr", "--port", str(port), "--cert",
                                  str(stack.ca.cert_path), "--key", str(stack.ca.key_path), "--token-secret",
                                  stack.secret], {"https": port}, stack.workdir)
    url = f"https://127.0.0.1:{port}"
    return server, url, ArmAcrControl(url, str(stack.ca.ca_path))


if __name__ == "__main__":
    serve(ArmAcrHandler, configure=_configure, extra_args=_args)

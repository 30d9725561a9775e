"""azd hooks that make `azd up` one pass: they wire what needs Healer's deployed code, so nobody has to.

    python infra/hooks/healer_hooks.py preprovision|postprovision|postdeploy

Runs on the operator's machine (azure.yaml calls it from sh and from pwsh), with the Python standard library only
and what azd gives it: the environment's values as environment variables, `azd auth token` for Resource Manager and
Microsoft Graph, `azd env set` and `azd provision`.

- preprovision: with the Entra app registration on (`HEALER_DEPLOY_AUTH_MODE=entra`, `HEALER_CREATE_ENTRA_APP=true`),
  make sure Azure Monitor's secure-webhook service principal exists in the tenant (Graph), so the Bicep can give it
  the `ActionGroupsSecureWebhook` role on Healer's app registration.
- postdeploy (and postprovision when the code is already deployed): wait, polling against a deadline, until the
  deployed Function App lists the functions the wiring points at and its host answers; then set
  `HEALER_WIRE_TRIGGERS=true` and run `azd provision` once more, which creates the action groups (function keys),
  alert rules, budget and Event Grid subscriptions (Event Grid validates the function endpoint).

Idempotent: once wired, `HEALER_WIRE_TRIGGERS` stays true and every later `azd provision` keeps the wiring in step,
so the hook has nothing left to do. It never recurses: the provision it starts carries `HEALER_HOOK_NESTED=1`, and
every hook seeing that does nothing. Opt out with `azd env set HEALER_AUTO_WIRE false`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

WEB_API_VERSION = "2024-04-01"
AZURE_MONITOR_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"  # "AzNS AAD Webhook", Azure Monitor's caller
NESTED = "HEALER_HOOK_NESTED"
# What the wiring points at: the action groups' endpoints and the registries' Event Grid subscription.
REQUIRED_FUNCTIONS = ("rollback_alert", "downshift_alert", "downshift_budget", "replication_events")
EVENTS = ("preprovision", "postprovision", "postdeploy")
# Outputs the wiring provision writes to the azd environment: proof that it wired.
WIRED_OUTPUTS = ("HEALER_ROLLBACK_ACTION_GROUP_ID", "HEALER_DOWNSHIFT_ACTION_GROUP_ID", "HEALER_BUDGET_ACTION_GROUP_ID")
PREFIX = "healer-hook:"


class HookError(Exception):
    """A failure the operator can act on: what went wrong and what to do about it."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------- decisions (pure)

@dataclass(frozen=True)
class Decision:
    action: str  # skip | wire | wire-if-deployed | ensure-monitor-sp
    reason: str


def decide(event: str, env: Mapping[str, str]) -> Decision:
    """What the hook should do for this azd event and environment; no I/O."""
    if truthy(env.get(NESTED)):
        return Decision("skip", "inside the provision Healer's own hook started: nothing to do")
    if event == "preprovision":
        if env.get("HEALER_DEPLOY_AUTH_MODE", "function-key") == "entra" and truthy(env.get("HEALER_CREATE_ENTRA_APP")):
            return Decision("ensure-monitor-sp", "Entra mode with the app registration created by the Bicep")
        return Decision("skip", "no Entra app registration to prepare")
    if not truthy(env.get("HEALER_AUTO_WIRE", "true")):
        return Decision("skip", "HEALER_AUTO_WIRE=false: wire yourself with "
                                "`azd env set HEALER_WIRE_TRIGGERS true && azd provision`")
    if truthy(env.get("HEALER_WIRE_TRIGGERS")):
        return Decision("skip", "already wired (HEALER_WIRE_TRIGGERS=true): every `azd provision` keeps "
                                "the action groups, alert rules, budget and Event Grid subscriptions in step")
    if event == "postdeploy":
        return Decision("wire", "the code is deployed: wiring action groups, alert rules, budget, Event Grid")
    return Decision("wire-if-deployed", "wiring now if the code is already deployed, otherwise after `azd deploy`")


def missing_functions(listed: set[str]) -> list[str]:
    return [name for name in REQUIRED_FUNCTIONS if name not in listed]


# ---------------------------------------------------------------------------------------------- azd and HTTP (shell)

@dataclass
class Hook:
    env: Mapping[str, str]
    out: Callable[[str], None] = lambda line: print(f"{PREFIX} {line}", flush=True)
    timeout: float = 600.0
    interval: float = 5.0
    request_timeout: float = 30.0
    _tokens: dict[str, str] = field(default_factory=dict)

    # -- settings
    def need(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise HookError(f"{name} is not set in the azd environment",
                            "run `azd provision` first (it writes the outputs to .azure/<env>/.env), then "
                            "`azd hooks run postdeploy`")
        return value

    @property
    def arm(self) -> str:
        return self.env.get("HEALER_HOOK_ARM_ENDPOINT", "https://management.azure.com").rstrip("/")

    @property
    def graph(self) -> str:
        return self.env.get("HEALER_HOOK_GRAPH_ENDPOINT", "https://graph.microsoft.com").rstrip("/")

    # -- azd
    def azd(self, *args: str, extra_env: Mapping[str, str] | None = None, capture: bool = True) -> str:
        exe = shutil.which("azd")
        if exe is None:
            raise HookError("azd is not on PATH", "install the Azure Developer CLI (https://aka.ms/azd)")
        proc = subprocess.run([exe, *args], env={**os.environ, **self.env, **(extra_env or {})},
                              capture_output=capture, text=True)
        if proc.returncode != 0:
            detail = (proc.stderr or "").strip()[-600:] if capture else "see azd's output above"
            raise HookError(f"`azd {' '.join(args[:2])}` failed with exit code {proc.returncode}: {detail}",
                            "fix the cause azd names, then run `azd hooks run postdeploy` again")
        return proc.stdout or ""

    def token(self, resource: str) -> str:
        if resource not in self._tokens:
            raw = self.azd("auth", "token", "--output", "json", "--scope", f"{resource}/.default")
            try:
                self._tokens[resource] = json.loads(raw)["token"]
            except (ValueError, KeyError, TypeError) as exc:
                raise HookError(f"`azd auth token` returned no token ({exc})", "run `azd auth login`") from exc
        return self._tokens[resource]

    # -- HTTP
    def request(self, method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def call(self, method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
        """An ARM or Graph call: an unreachable endpoint is a failure the operator must see."""
        try:
            return self.request(method, url, token, body)
        except (urllib.error.URLError, OSError) as exc:
            raise HookError(f"cannot reach {url.split('?')[0]}: {exc}",
                            "check this machine's network and proxy settings, then run the hook again") from exc

    def site_path(self) -> str:
        return (f"{self.arm}/subscriptions/{self.need('AZURE_SUBSCRIPTION_ID')}/resourceGroups/"
                f"{self.need('AZURE_RESOURCE_GROUP')}/providers/Microsoft.Web/sites/{self.need('AZURE_FUNCTION_APP_NAME')}")

    def deployed_functions(self) -> set[str]:
        """Names of the functions the deployed app's host indexed (ARM `sites/functions`)."""
        url: str | None = f"{self.site_path()}/functions?api-version={WEB_API_VERSION}"
        names: set[str] = set()
        while url:
            status, doc = self.call("GET", url, self.token(self.arm))
            if status in (401, 403):
                raise HookError(f"Resource Manager refused to list the app's functions ({status})",
                                "sign in with an account that can read the Function App: `azd auth login`")
            if status != 200 or not isinstance(doc, dict):
                return names  # the host is still starting: ARM answers 4xx/5xx until it indexed the code
            names |= {str(f.get("name", "")).rsplit("/", 1)[-1] for f in doc.get("value", []) if isinstance(f, dict)}
            url = doc.get("nextLink")
        return names

    def host_answers(self) -> bool:
        base = self.need("HEALER_API_BASE_URL").rstrip("/")
        root = base[: -len("/api")] if base.endswith("/api") else base
        try:
            status, _ = self.request("GET", f"{root}/")
        except (urllib.error.URLError, OSError):
            return False
        return status < 500

    # -- steps
    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        self.out(f"waiting up to {self.timeout:.0f} s for {self.env.get('AZURE_FUNCTION_APP_NAME')} to list "
                 f"{', '.join(REQUIRED_FUNCTIONS)} and answer")
        missing: list[str] = list(REQUIRED_FUNCTIONS)
        answering = False
        while True:
            self.request_timeout = max(1.0, min(30.0, deadline - time.monotonic()))  # never overrun the deadline much
            missing = missing_functions(self.deployed_functions())
            answering = not missing and self.host_answers()
            if answering:
                self.out("the deployed app lists every function the wiring needs and its host answers")
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.interval)
        what = (f"functions not deployed: {', '.join(missing)}" if missing
                else f"the host at {self.env.get('HEALER_API_BASE_URL')} does not answer")
        raise HookError(f"the app was not ready within {self.timeout:.0f} s ({what})",
                        "check `azd deploy`'s output and the app's log stream; then run `azd hooks run postdeploy` "
                        "(raise HEALER_HOOK_TIMEOUT_SECONDS for a slow first start)")

    def wire(self) -> None:
        self.azd("env", "set", "HEALER_WIRE_TRIGGERS", "true")
        self.out("HEALER_WIRE_TRIGGERS=true; running `azd provision` to create the action groups, alert rules, "
                 "budget and Event Grid subscriptions")
        try:
            self.azd("provision", "--no-prompt", extra_env={NESTED: "1", "HEALER_WIRE_TRIGGERS": "true"},
                     capture=False)
        except HookError as exc:
            self.azd("env", "set", "HEALER_WIRE_TRIGGERS", "false")
            raise HookError(f"the wiring provision failed ({exc.what}); HEALER_WIRE_TRIGGERS is false again",
                            "fix the error above and run `azd hooks run postdeploy` (or `azd up`) again; "
                            "nothing was left half-wired that a re-run does not complete") from exc
        try:
            values = json.loads(self.azd("env", "get-values", "--output", "json"))
        except ValueError:
            values = {}
        groups = [str(values.get(name) or "") for name in WIRED_OUTPUTS]
        if not all(groups):
            raise HookError("the wiring provision finished but the azd environment has no action group ids",
                            "run `azd provision` and check that HEALER_WIRE_TRIGGERS is true in `azd env get-values`")
        self.out("wired: Azure Monitor and Event Grid now deliver to Healer; later `azd provision` runs keep it so")
        for group in groups:
            self.out(f"  action group {group}")

    def ensure_monitor_sp(self) -> None:
        token = self.token(self.graph)
        url = f"{self.graph}/v1.0/servicePrincipals(appId='{AZURE_MONITOR_APP_ID}')"
        status, _ = self.call("GET", url, token)
        if status == 200:
            self.out("Azure Monitor's secure-webhook service principal exists")
            return
        if status == 404:
            status, doc = self.call("POST", f"{self.graph}/v1.0/servicePrincipals", token,
                                       {"appId": AZURE_MONITOR_APP_ID})
            if status in (200, 201):
                self.out(f"created Azure Monitor's secure-webhook service principal ({(doc or {}).get('id')})")
                return
        if status in (401, 403):
            raise HookError(f"Microsoft Graph refused ({status}) to read or create Azure Monitor's service principal",
                            "ask an admin for Cloud Application Administrator (or Application.ReadWrite.All), or "
                            f"have one run `az ad sp create --id {AZURE_MONITOR_APP_ID}`; or opt out with "
                            "`azd env set HEALER_CREATE_ENTRA_APP false` and register the app by hand (docs/deploy.md)")
        raise HookError(f"Microsoft Graph answered {status} for Azure Monitor's service principal",
                        "retry `azd provision`; if it persists, see docs/deploy.md, 'Enabling the secure webhook'")

    def run(self, event: str) -> int:
        decision = decide(event, self.env)
        self.out(f"{event}: {decision.reason}")
        if decision.action == "ensure-monitor-sp":
            self.ensure_monitor_sp()
        elif decision.action == "wire":
            self.wait_until_ready()
            self.wire()
        elif decision.action == "wire-if-deployed":
            if missing_functions(self.deployed_functions()):
                self.out("the code is not deployed yet: the postdeploy hook wires after `azd deploy`")
            else:
                self.wire()
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in EVENTS:
        print(f"usage: healer_hooks.py {'|'.join(EVENTS)}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    hook = Hook(env, timeout=float(env.get("HEALER_HOOK_TIMEOUT_SECONDS") or 600),
                interval=float(env.get("HEALER_HOOK_POLL_SECONDS") or 5))
    try:
        return hook.run(argv[0])
    except HookError as exc:
        hook.out(f"FAILED: {exc.what}")
        hook.out(f"what to do: {exc.fix}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The local stand-in for "Azure" that tests, the drill and the benchmarks share.

`LocalAzure.start(workdir)` starts Azurite, a managed-identity endpoint and the ARM Microsoft.Web stand-in
(HTTPS with a throwaway CA), each its own process on 127.0.0.1, and gives the app settings that point Healer at
them. `stop()` stops them all by PID. Later healers add their stand-ins here.
"""
from __future__ import annotations

import datetime as dt
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standins.arm_web import ArmWebControl
from standins.harness import Azurite, Server, TestCA, free_port, make_test_ca, start_azurite, start_process

SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"


def site_id(resource_group: str, name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/Microsoft.Web/sites/{name}"


@dataclass
class LocalAzure:
    workdir: Path
    ca: TestCA
    azurite: Azurite
    identity: Server
    arm: Server
    secret: str
    servers: list[Server] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, *, retry_after: float = 0.05) -> "LocalAzure":
        ca = make_test_ca(workdir / "tls")
        secret = secrets.token_hex(24)  # never starts with "-" (it is passed as a CLI argument)
        started: list[Server] = []
        try:
            azurite = start_azurite(workdir)
            started.append(azurite.server)
            ip = free_port()
            identity = start_process("identity", [sys.executable, "-m", "standins.identity", "--port", str(ip),
                                                  "--secret", secret], {"http": ip}, workdir)
            started.append(identity)
            ap = free_port()
            arm = start_process("arm", [sys.executable, "-m", "standins.arm_web", "--port", str(ap), "--cert",
                                        str(ca.cert_path), "--key", str(ca.key_path), "--token-secret", secret,
                                        "--retry-after", str(retry_after)], {"https": ap}, workdir)
            started.append(arm)
        except Exception:
            for s in started:
                s.stop()
            raise
        return cls(workdir, ca, azurite, identity, arm, secret, started)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    @property
    def arm_url(self) -> str:
        return f"https://127.0.0.1:{self.arm.ports['https']}"

    def arm_control(self) -> ArmWebControl:
        return ArmWebControl(self.arm_url, str(self.ca.ca_path))

    def env(self) -> dict[str, str]:
        """App settings (and the process environment Azure gives a Function) pointing Healer at the stand-ins."""
        return {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.identity.ports['http']}/msi/token",
            "IDENTITY_HEADER": self.secret,
            "HEALER_ARM_ENDPOINT": self.arm_url,
            "HEALER_ARM_POLL_SECONDS": "0.05",
            **self.ca.env,
        }


# ---------------------------------------------------------------------------------------------- scenarios

def seed_bad_release(ctl: ArmWebControl, arm_url: str, resource_group: str, name: str, *, good: str = "v41",
                     bad: str = "v42", slot: str = "staging", sticky: tuple[str, ...] = ("SLOT_NAME",)) -> dict[str, Any]:
    """The classic incident: a good build runs in production, the pipeline deploys a bad build to staging and
    swaps it in. Returns the swap time. The pipeline's swap goes through the real ARM API like any other client."""
    ctl.seed_app(resource_group, name, slots={
        "production": {"app_settings": {"SLOT_NAME": "production", "FEATURE_X": "on"}, "state": "Running"},
        slot: {"app_settings": {"SLOT_NAME": slot}, "state": "Running"},
    }, sticky_app_settings=list(sticky), subscription_id=SUBSCRIPTION)
    ctl.deploy(resource_group, name, "production", build_id=good)
    ctl.deploy(resource_group, name, slot, build_id=bad)
    pipeline_swap(arm_url, resource_group, name, slot)
    state = ctl.app(resource_group, name)
    return {"swappedAt": dt.datetime.now(dt.timezone.utc), "state": state}


def pipeline_swap(arm_url: str, resource_group: str, name: str, slot: str) -> None:
    """What a release pipeline does: swap the slot into production with the SDK and wait."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.web import WebSiteManagementClient
    from azure.mgmt.web.models import CsmSlotEntity
    client = WebSiteManagementClient(ManagedIdentityCredential(), SUBSCRIPTION, base_url=arm_url,
                                     credential_scopes=["https://management.azure.com/.default"], polling_interval=0.05)
    client.web_apps.begin_swap_slot_with_production(resource_group, name,
                                                    CsmSlotEntity(target_slot=slot, preserve_vnet=True)).result()


def build_of(ctl: ArmWebControl, resource_group: str, name: str, slot: str = "production") -> str | None:
    state = ctl.app(resource_group, name)
    return state["slots"][slot]["app_settings"].get("BUILD_ID")

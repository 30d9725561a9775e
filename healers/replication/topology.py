"""The registry's topology from ARM: its replicas, their status, and whether regional endpoints are enabled.

Pure part (`Topology`, `Replica`, `TopologyView`, `required_without_replica`, `view_for`): no I/O, no clock.
Shell part (`TopologyCache`): reads `Registries - Get` and `Replications - List` with azure-mgmt-containerregistry
(lazy-imported) and caches each registry's topology for a TTL; when ARM cannot be read the last good topology is
used (and, with none, the configured static regions). A replica is `online` when its provisioningState is
Succeeded and its status.displayStatus is Ready; anything else is `degraded`.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Literal
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict

log = logging.getLogger("healer.replication")
DegradedMode = Literal["exclude", "wait"]
RESOURCE_ID_RE = re.compile(r"/subscriptions/([0-9A-Fa-f-]{36})/resourceGroups/([-\w._()]{1,90})/providers/"
                            r"Microsoft\.ContainerRegistry/registries/([A-Za-z0-9]{5,50})", re.IGNORECASE)


class Replica(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    provisioning_state: str | None = None
    display_status: str | None = None

    @property
    def online(self) -> bool:
        return (self.provisioning_state or "").lower() == "succeeded" and (self.display_status or "").lower() == "ready"

    @property
    def status(self) -> str:
        return "online" if self.online else (f"degraded ({self.display_status or '?'}, "
                                             f"provisioning {self.provisioning_state or '?'})")


class Topology(BaseModel):
    model_config = ConfigDict(frozen=True)

    registry: str
    home_region: str
    replicas: dict[str, Replica]
    regional_endpoints: bool | None = None     # None: the API version read does not say
    fetched_at: float


class TopologyView(BaseModel):
    """What `core.decide` needs: per required region online / degraded / absent, the per-registry degraded mode,
    and the regional endpoints flag."""
    model_config = ConfigDict(frozen=True)

    regions: dict[str, str]                    # region -> "online" | "degraded (...)" | "absent"
    degraded: DegradedMode = "wait"
    regional_endpoints: bool | None = None


def normalize_region(location: str) -> str:
    """ARM locations come as "East US" or "eastus": Healer's region names are the lower-case compact form."""
    return re.sub(r"[^a-z0-9]", "", (location or "").lower())


def required_without_replica(required: tuple[str, ...], topology: Topology) -> list[str]:
    """Configured required regions the registry has no replica in (a configuration error)."""
    return [r for r in required if r not in topology.replicas]


def view_for(required: tuple[str, ...] | list[str], topology: Topology, degraded: DegradedMode) -> TopologyView:
    regions = {r: (topology.replicas[r].status if r in topology.replicas else "absent") for r in required}
    return TopologyView(regions=regions, degraded=degraded, regional_endpoints=topology.regional_endpoints)


def parse_resource_id(resource_id: str) -> tuple[str, str, str]:
    m = RESOURCE_ID_RE.fullmatch(resource_id.strip())
    if not m:
        raise ValueError("not a Microsoft.ContainerRegistry/registries resource id")
    return m.group(1), m.group(2), m.group(3)


# ---------------------------------------------------------------------------------------------- shell

def fetch_topology(client: Any, resource_id: str, now: float) -> Topology:
    """Read the registry and its replications through `ContainerRegistryManagementClient`."""
    _, group, name = parse_resource_id(resource_id)
    registry = client.registries.get(group, name)
    # the SDK's models are mappings over the JSON received: a property newer than its models is still readable
    props = _mapping(registry.get("properties"))
    flag = props.get("regionalEndpoints")
    replicas: dict[str, Replica] = {}
    for i, rep in enumerate(client.replications.list(group, name)):
        if i >= 100:
            break
        region = normalize_region(rep.location)
        p = _mapping(rep.get("properties"))
        status = _mapping(p.get("status"))
        replicas[region] = Replica(region=region, provisioning_state=_text(p.get("provisioningState")),
                                   display_status=_text(status.get("displayStatus")))
    home = normalize_region(registry.location)
    if home not in replicas:   # the home region always serves the registry
        replicas[home] = Replica(region=home, provisioning_state="Succeeded", display_status="Ready")
    return Topology(registry=name.lower(), home_region=home, replicas=replicas,
                    regional_endpoints=None if flag is None else str(flag).lower() == "enabled", fetched_at=now)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return str(value)[:100] if isinstance(value, str) and value else None


class TopologyCache:
    """One topology per registry resource id, refreshed after `ttl` seconds; the last good one survives ARM errors."""

    def __init__(self, client_factory: Callable[[str], Any], ttl: float, clock: Callable[[], float] = time.time):
        self._factory = client_factory
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, Topology] = {}
        self.fetches = 0

    def get(self, resource_id: str) -> Topology | None:
        now = self._clock()
        key = resource_id.lower()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit.fetched_at < self._ttl:
            return hit
        try:
            sub, _, _ = parse_resource_id(resource_id)
            fresh = fetch_topology(self._factory(sub), resource_id, now)
        except Exception as exc:  # ARM down, no role: keep waiting on what was known
            log.warning("reading the topology of %s failed (%s); using %s", resource_id, type(exc).__name__,
                        "the last one read" if hit else "the configured regions")
            return hit
        self.fetches += 1
        with self._lock:
            self._cache[key] = fresh
        return fresh

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


# ---------------------------------------------------------------------------------------------- per process (shell)
# `settings` is shared.config.Settings and `config` the replication healer's ReplicationConfig (shell.load_config).

_topologies_lock = threading.Lock()
_topologies: dict[Any, Any] = {}


def topology_for(settings: Any, config: Any, registry: str) -> Topology | None:
    """The registry's topology (cached for the TTL), or None when it has no resourceId or ARM was never readable."""
    entry = config.topology.get(registry)
    if entry is None:
        return None
    endpoint, audience = settings.require("HEALER_ARM_ENDPOINT"), settings.require("HEALER_ARM_AUDIENCE")
    key = (endpoint, audience, config.topology_ttl_seconds, settings.get("AZURE_CLIENT_ID"))
    with _topologies_lock:
        if key not in _topologies:

            def client(subscription: str):
                from azure.mgmt.containerregistry import ContainerRegistryManagementClient
                from shared.identity import credential
                return ContainerRegistryManagementClient(credential(settings.get("AZURE_CLIENT_ID")), subscription,
                                                         base_url=endpoint,
                                                         credential_scopes=[audience.rstrip("/") + "/.default"])
            _topologies[key] = TopologyCache(_per_subscription(client), config.topology_ttl_seconds)
        cache = _topologies[key]
    return cache.get(entry.resource_id)


def _per_subscription(factory: Callable[[str], Any]) -> Callable[[str], Any]:
    """One management client per subscription."""
    clients: dict[str, Any] = {}

    def get(subscription: str) -> Any:
        if subscription not in clients:
            clients[subscription] = factory(subscription)
        return clients[subscription]
    return get


def topology_view(settings: Any, config: Any, record: Any) -> TopologyView | None:
    topo = topology_for(settings, config, record.registry)
    if topo is None:
        return None
    return view_for(record.required_regions, topo, config.topology[record.registry].degraded)


def check_topology(settings: Any, config: Any, registry: str) -> None:
    """A configured required region the registry has no replica in is a configuration error (raised, named)."""
    from shared.config import ConfigError
    topo = topology_for(settings, config, registry)
    if topo is None:
        return
    lacking = required_without_replica(config.registries[registry], topo)
    if lacking:
        raise ConfigError(f"setting HEALER_REPLICATION_REGISTRIES: {registry} requires {', '.join(lacking)} but the "
                          f"registry has no replica there (replicas: {', '.join(sorted(topo.replicas))})")

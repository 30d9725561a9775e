"""Drill: replica probe states through the Functions host stand-in — throttling, lagging layers, regional
endpoints disabled.

Three real docker-registry instances play the regions; three registry names are configured on them:
- `throttlereg`: its westus replica sits behind a front on loopback answering 429 (Retry-After: 1) for 6 s, longer
  than the wait's 4 s deadline: the image must be reported ready (throttled time is not counted), not timed out;
- `layersreg`: a multi-arch image index whose layers reach westus 1.5 s and northeurope 3 s after the manifests (the
  layers are unlinked on those replicas and pushed back later): not ready until they arrive. This wait is opened by
  the "pipeline" with POST /api/replication/waits, no Event Grid delivery at all;
- `dnsreg`: regional endpoints not enabled, so no `dnsreg.<region>.geo.azurecr.io` resolves (hosts under
  `.invalid`): the wait fails fast, named, instead of a 30-minute timeout.
"""
from __future__ import annotations

import contextlib
import json
import ssl
import time
import uuid

import httpx

from drill.host import start_healer
from drill.replication import _deliver, acr_event, start_topic
from drill.timeline import Timeline
from standins.stack import LocalAzure

REGIONS = ("eastus", "westus", "northeurope")


def _endpoints(registry: str, urls: dict[str, str]) -> dict[str, str]:
    return {f"{registry}.{r}.geo.azurecr.io": u for r, u in urls.items()}


def run(stack: LocalAzure) -> Timeline:
    from standins.registries import Replicator, push_image, push_index, start_registries
    from standins.registry_front import set_rules, start_front

    tl = Timeline("replication probes: throttled then ready, layers lagging, regional endpoints disabled")
    cleanup = contextlib.ExitStack()
    try:
        fleet = start_registries("drillprobe", REGIONS, stack.workdir / "drill-probe-registries")
        cleanup.callback(fleet.stop)
        front, front_url = start_front(fleet.url("westus"), stack.workdir, "drill-front-westus")
        cleanup.callback(front.stop)
        topic, topic_url = start_topic(stack)
        cleanup.callback(topic.stop)
        replicator = Replicator(fleet)
        cleanup.callback(replicator.stop)
        urls = {r: fleet.url(r) for r in REGIONS}
        endpoints = {**_endpoints("throttlereg", {**urls, "westus": front_url}), **_endpoints("layersreg", urls),
                     **_endpoints("dnsreg", {r: f"http://dnsreg-{r}.invalid" for r in REGIONS}),
                     "layersreg.azurecr.io": urls["eastus"]}
        settings = {
            "HEALER_TABLE_PREFIX": "drillp" + uuid.uuid4().hex[:6],
            "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [   # publishing passes the gate
                {"action": "replication.publish", "resource": "*", "effect": "allow"}]}),
            "HEALER_REPLICATION_REGISTRIES": json.dumps({r: list(REGIONS) for r in ("throttlereg", "layersreg",
                                                                                   "dnsreg")}),
            "HEALER_REPLICATION_ENDPOINTS": json.dumps(endpoints),
            "HEALER_REPLICATION_DEADLINE_SECONDS": "4",
            "HEALER_REPLICATION_FAIL_FAST_SECONDS": "3",
            "HEALER_REPLICATION_BACKOFF": json.dumps({"baseSeconds": 0.5, "factor": 1.5, "maxSeconds": 1,
                                                      "minSeconds": 0.5, "jitter": 0.3}),
            "HEALER_REPLICATION_TOPIC_ENDPOINT": f"{topic_url}/api/events",
        }
        healer = start_healer(stack, settings, name="healer-replication-probes")
        cleanup.callback(healer.stop)
        control = httpx.Client(base_url=topic_url, verify=ssl.create_default_context(cafile=str(stack.ca.ca_path)))
        cleanup.callback(control.close)
        hook = httpx.Client(base_url=healer.url.rsplit("/api", 1)[0], timeout=30)
        cleanup.callback(hook.close)
        api = healer.client()
        cleanup.callback(api.close)
    except BaseException:
        cleanup.close()
        raise
    try:
        east = fleet.url("eastus")
        # 1. throttled, then ready
        a = push_image(east, "shop/web", "v1", seed=f"probe-a-{uuid.uuid4()}")
        replicator.copy_now("eastus", ["westus", "northeurope"], "shop/web", "v1")
        set_rules(front_url, {"status": 429, "retryAfter": "1", "seconds": 6})
        t_a = time.monotonic()
        _deliver(hook, healer.key, [acr_event("throttlereg", "shop/web", a.digest, tag="v1")])
        tl.add("registry", "throttlereg: shop/web:v1 on every replica; westus answers 429 (Retry-After: 1) for 6 s, "
                           "the wait's deadline is 4 s")

        # 2. layers lagging behind the manifests, opened by the pipeline itself
        b = push_index(east, "shop/multi", "v2", seeds=[f"probe-b-{uuid.uuid4()}", f"probe-c-{uuid.uuid4()}"])
        layers = replicator.copy_lagging_layers("eastus", ["westus", "northeurope"], "shop/multi", "v2",
                                                {"westus": 1.5, "northeurope": 3.0})
        t_b = time.monotonic()
        opened = api.post("/replication/waits", json={"registry": "layersreg", "repository": "shop/multi",
                                                       "tag": "v2"})
        tl.add("pipeline", f"layersreg: pushed a 2-platform index shop/multi:v2; its {len(layers)} layers reach "
                           f"westus in 1.5 s, northeurope in 3 s; POST /replication/waits → {opened.status_code} "
                           f"{opened.json().get('intake')}")
        tl.check(opened.status_code == 202 and opened.json().get("digest") == b.digest,
                 "the pipeline opened the wait itself (tag resolved to the index digest), no Event Grid needed")
        seen_incomplete = False
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline and not seen_incomplete:
            view = api.get("/replication/status", params={"registry": "layersreg", "repository": "shop/multi",
                                                          "digest": b.digest}).json()
            seen_incomplete = view.get("regions", {}).get("northeurope", {}).get("state") == "incomplete"
            if not seen_incomplete:
                time.sleep(0.3)
        tl.check(seen_incomplete, "while its layers lag, the status API reports northeurope 'incomplete', not ready")

        # 3. regional endpoints disabled
        c = push_image(east, "shop/api", "v3", seed=f"probe-d-{uuid.uuid4()}")
        t_c = time.monotonic()
        _deliver(hook, healer.key, [acr_event("dnsreg", "shop/api", c.digest, tag="v3")])
        tl.add("registry", "dnsreg: regional endpoints not enabled (no dnsreg.<region>.geo.azurecr.io resolves)")

        done: dict[str, float] = {}
        events: list[dict] = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len(events) < 3:
            events = control.get("/_standin/events").json()["events"]
            for ev in events:
                done.setdefault(ev["data"]["registry"] if "registry" in ev["data"] else "?", time.monotonic())
            time.sleep(0.2)
        by_repo = {ev["data"]["repository"]: ev for ev in events}
        for ev in events:
            d = ev["data"]
            tl.add("topic", f"{ev['eventType']} {d['repository']}: probes {d.get('probeStates')}, "
                            f"{d.get('requests')} requests" + (f"; failure: {d['failure']}" if d.get("failure") else "")
                            + "".join(f"; {r}: {v['lastError']}" for r, v in d.get("regions", {}).items()
                                      if v.get("lastError")))
        web = by_repo.get("shop/web", {})
        west = web.get("data", {}).get("regions", {}).get("westus", {})
        tl.check(web.get("eventType") == "Healer.ImageReplicated" and west.get("probeCounts", {}).get("throttled", 0) >= 2,
                 f"throttled then ready: ready, not timed out (westus throttled {west.get('throttledSeconds')} s, "
                 f"{west.get('probeCounts')}), {done.get('throttlereg', 0) - t_a:.1f} s")
        multi = by_repo.get("shop/multi", {})
        lag = multi.get("data", {}).get("regions", {}).get("northeurope", {}).get("lagSeconds") or 0
        tl.check(multi.get("eventType") == "Healer.ImageReplicated" and lag >= 3.0,
                 f"layers lagging: ready only once northeurope served its layers (lag {lag} s >= 3 s; "
                 f"{done.get('layersreg', 0) - t_b:.1f} s)")
        dns = by_repo.get("shop/api", {})
        took = done.get("dnsreg", float("inf")) - t_c
        tl.check(dns.get("eventType") == "Healer.ImageReplicationFailed"
                 and dns["data"]["failure"].startswith("regional endpoints are not enabled for dnsreg") and took < 60,
                 f"regional endpoints disabled: a named failure in {took:.1f} s (deadline would be 30 min in Azure)")
        tl.check(len(events) == 3 and len({e["id"] for e in events}) == 3, "one outcome event per wait")
        tl.check(not replicator.errors, f"replication jobs ran cleanly {replicator.errors[:1]}")
    finally:
        cleanup.close()
    return tl

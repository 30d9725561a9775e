"""Drill: geo-replicated registry pushes through the Functions host stand-in.

Three real docker-registry instances play the regions of registry `drillreg`; a replicator thread copies images to
the lagging ones on a schedule. Healer runs in the Functions host stand-in and receives ACR events through the
host's Event Grid webhook (`/runtime/webhooks/eventgrid`), checks on its queue, and publishes outcome events with
its managed identity (Entra token from the identity stand-in) to a stand-in Event Grid topic.

Scenarios: a push with two lagging replicas (ready), a push that never reaches one region (timed out), a tag
overwritten during replication (race for the first push; the overwrite itself is ready once its replicas move the
tag, though one of them still names the earlier push for a while: lag, not a race), a delete (ready when every
replica answers 404), duplicated and reordered deliveries (one outcome each; a stale push after its delete is
ignored).
"""
from __future__ import annotations

import datetime as dt
import contextlib
import json
import ssl
import sys
import time
import uuid
from typing import Any

import httpx

from drill.host import start_healer
from drill.timeline import Timeline
from standins.harness import free_port, start_process
from standins.stack import LocalAzure

REGISTRY = "drillreg"
REGIONS = ("eastus", "westus", "northeurope")
SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"
PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"


def acr_event(registry: str, repository: str, digest: str, *, tag: str | None = None, action: str = "push",
              location: str = "eastus", event_id: str | None = None, at: dt.datetime | None = None,
              media_type: str = "application/vnd.docker.distribution.manifest.v2+json") -> dict[str, Any]:
    """An ACR ImagePushed / ImageDeleted event in the Event Grid schema, as the registry's system topic sends it."""
    at = at or dt.datetime.now(dt.timezone.utc)
    target: dict[str, Any] = {"mediaType": media_type, "digest": digest, "repository": repository}
    if action == "push":
        target.update(size=524, length=524)
        if tag:
            target["tag"] = tag
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/registries/providers/"
                 f"Microsoft.ContainerRegistry/registries/{registry}",
        "subject": f"{repository}:{tag}" if tag else repository,
        "eventType": PUSHED if action == "push" else DELETED,
        "eventTime": at.isoformat().replace("+00:00", "Z"),
        "data": {"id": str(uuid.uuid4()), "timestamp": at.isoformat().replace("+00:00", "Z"), "action": action,
                 "location": location, "target": target,
                 "request": {"id": str(uuid.uuid4()), "host": f"{registry}.azurecr.io",
                             "method": "PUT" if action == "push" else "DELETE", "useragent": "docker/24.0"}},
        "dataVersion": "1.0", "metadataVersion": "1",
    }


def start_topic(stack: LocalAzure, key: str = "drill-topic-key") -> tuple[Any, str]:
    """The stand-in Event Grid topic over HTTPS with the stack's test CA. Returns (server, base URL)."""
    port = free_port()
    server = start_process("eventgrid-topic", [sys.executable, "-m", "standins.eventgrid_topic", "--port", str(port),
                                               "--cert", str(stack.ca.cert_path), "--key", str(stack.ca.key_path),
                                               "--topic-key", key], {"https": port}, stack.workdir)
    return server, f"https://127.0.0.1:{port}"


def _deliver(client: httpx.Client, key: str, events: list[dict]) -> int:
    resp = client.post("/runtime/webhooks/eventgrid", params={"functionName": "replication_events", "code": key},
                       json=events, headers={"aeg-event-type": "Notification"})
    return resp.status_code


def run(stack: LocalAzure) -> Timeline:
    from standins.registries import Replicator, push_image, start_registries

    tl = Timeline("replication: geo-replicated pushes, lag, timeout, tag race, delete")
    cleanup = contextlib.ExitStack()  # whatever started is stopped, even if a later start fails
    try:
        fleet = start_registries(REGISTRY, REGIONS, stack.workdir / "drill-registries")
        cleanup.callback(fleet.stop)
        topic, topic_url = start_topic(stack)
        cleanup.callback(topic.stop)
        replicator = Replicator(fleet)
        cleanup.callback(replicator.stop)
        settings = {
            "HEALER_TABLE_PREFIX": "drill" + uuid.uuid4().hex[:6],
            "HEALER_REPLICATION_REGISTRIES": json.dumps({REGISTRY: list(REGIONS)}),
            "HEALER_REPLICATION_ENDPOINTS": json.dumps(fleet.endpoint_map()),
            "HEALER_REPLICATION_DEADLINE_SECONDS": "8",
            "HEALER_REPLICATION_BACKOFF": json.dumps({"baseSeconds": 1, "factor": 1.5, "maxSeconds": 2,
                                                      "minSeconds": 0.5, "jitter": 0.3}),
            "HEALER_REPLICATION_TOPIC_ENDPOINT": f"{topic_url}/api/events",   # no key: Entra token via the identity
            "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [   # publishing passes the gate
                {"action": "replication.publish", "resource": "*", "effect": "allow"}]}),
        }
        healer = start_healer(stack, settings, name="healer-replication")
        cleanup.callback(healer.stop)
        control = httpx.Client(base_url=topic_url, verify=ssl.create_default_context(cafile=str(stack.ca.ca_path)))
        cleanup.callback(control.close)
        hook = httpx.Client(base_url=healer.url.rsplit("/api", 1)[0], timeout=30)
        cleanup.callback(hook.close)
    except BaseException:
        cleanup.close()
        raise
    try:
        east = fleet.url("eastus")
        # 1. ready: two lagging replicas; ACR also emits a delivery per replica, and Event Grid repeats one.
        a = push_image(east, "shop/web", "v1", seed=f"drill-a-{uuid.uuid4()}")
        replicator.schedule_copy("eastus", "shop/web", "v1", {"westus": 1.5, "northeurope": 3.0})
        first = acr_event(REGISTRY, "shop/web", a.digest, tag="v1")
        status = [_deliver(hook, healer.key, [first]), _deliver(hook, healer.key, [first]),
                  _deliver(hook, healer.key, [acr_event(REGISTRY, "shop/web", a.digest, tag="v1", location="westus")])]
        tl.add("registry", f"pushed shop/web:v1 ({a.digest[:19]}…) to eastus; westus in 1.5 s, northeurope in 3 s; "
                           f"3 deliveries (one duplicate, one per-replica) → HTTP {status}")
        tl.check(all(s == 202 for s in status), "the host accepted every delivery with 202")

        # 2. timed out: northeurope never gets it.
        b = push_image(east, "shop/api", "v7", seed=f"drill-b-{uuid.uuid4()}")
        replicator.schedule_copy("eastus", "shop/api", "v7", {"westus": 0.5})
        _deliver(hook, healer.key, [acr_event(REGISTRY, "shop/api", b.digest, tag="v7")])
        tl.add("registry", "pushed shop/api:v7; only westus ever replicates it")

        # 3. tag race: v2 overwritten in eastus while westus/northeurope are still catching up with the first push.
        c1_at = dt.datetime.now(dt.timezone.utc)
        c1 = push_image(east, "shop/worker", "v2", seed=f"drill-c1-{uuid.uuid4()}")
        replicator.copy_now("eastus", ["westus"], "shop/worker", "v2")
        c2 = push_image(east, "shop/worker", "v2", seed=f"drill-c2-{uuid.uuid4()}")
        replicator.copy_now("eastus", ["northeurope"], "shop/worker", c1.digest)
        replicator.copy_now("eastus", ["westus"], "shop/worker", c2.digest)    # westus: new manifest, old tag
        replicator.schedule_copy("eastus", "shop/worker", "v2", {"westus": 2.0, "northeurope": 2.5})
        _deliver(hook, healer.key, [acr_event(REGISTRY, "shop/worker", c1.digest, tag="v2", at=c1_at)])
        _deliver(hook, healer.key, [acr_event(REGISTRY, "shop/worker", c2.digest, tag="v2",
                                              at=c1_at + dt.timedelta(seconds=1))])
        tl.add("registry", f"pushed shop/worker:v2 ({c1.digest[:19]}…), then overwrote v2 with {c2.digest[:19]}… "
                           f"in eastus during replication; westus serves the overwrite but moves the tag 2 s later")

        # 4. delete, with the (older) push delivered after the delete: reordered.
        d = push_image(east, "shop/old", "v0", seed=f"drill-d-{uuid.uuid4()}")
        replicator.copy_now("eastus", ["westus", "northeurope"], "shop/old", "v0")
        pushed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        from standins.registries import delete_manifest
        delete_manifest(east, "shop/old", d.digest)
        replicator.schedule_delete("shop/old", d.digest, {"westus": 1.0, "northeurope": 2.0})
        delete_ev = acr_event(REGISTRY, "shop/old", d.digest, action="delete")
        late_push = acr_event(REGISTRY, "shop/old", d.digest, tag="v0", at=pushed_at)
        status = [_deliver(hook, healer.key, [delete_ev]), _deliver(hook, healer.key, [late_push]),
                  _deliver(hook, healer.key, [delete_ev])]
        tl.add("registry", f"deleted shop/old@{d.digest[:19]}… in eastus (others follow in 1-2 s); the older push "
                           f"event arrives after the delete, and the delete twice → HTTP {status}")

        # 5. noise: another registry, a malformed digest, an unrelated event type; and a handshake.
        bad = acr_event(REGISTRY, "shop/web", "sha256:nothex")
        other = acr_event("otherreg", "x/y", a.digest, tag="v1")
        chart = dict(acr_event(REGISTRY, "shop/web", a.digest), eventType="Microsoft.ContainerRegistry.ChartPushed")
        noise = [_deliver(hook, healer.key, [ev]) for ev in (bad, other, chart)]
        hs = hook.post("/runtime/webhooks/eventgrid", params={"functionName": "replication_events",
                                                              "code": healer.key},
                       headers={"aeg-event-type": "SubscriptionValidation"},
                       json=[{"id": "v1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                              "subject": "", "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1",
                              "data": {"validationCode": "drill-code-123"}}])
        tl.add("eventgrid", f"malformed digest / unwatched registry / ChartPushed → HTTP {noise}; subscription "
                            f"validation → {hs.status_code} {hs.text}")
        tl.check(hs.status_code == 200 and hs.json() == {"validationResponse": "drill-code-123"},
                 "subscription validation handshake answered with the code")

        expected = 5
        deadline = time.monotonic() + 40
        events: list[dict] = []
        while time.monotonic() < deadline:
            events = control.get("/_standin/events").json()["events"]
            if len(events) >= expected:
                break
            time.sleep(0.25)
        by_subject: dict[str, list[dict]] = {}
        for ev in events:
            by_subject.setdefault(ev["data"]["repository"], []).append(ev)
            regions = ev["data"].get("regions", {})
            lag = ", ".join(f"{r} {v['lagSeconds']}s" for r, v in regions.items() if v.get("lagSeconds") is not None)
            tl.add("topic", f"{ev['eventType']} {ev['data']['repository']} ({ev['data']['action']}) "
                            f"lag: {lag or '-'}; missing: {ev['data'].get('missingRegions')}")
        types = {repo: [e["eventType"] for e in evs] for repo, evs in by_subject.items()}
        tl.check(types.get("shop/web") == ["Healer.ImageReplicated"], "shop/web:v1 ready, exactly one event")
        web = (by_subject.get("shop/web") or [{}])[0].get("data", {})
        lags = {r: v["lagSeconds"] for r, v in web.get("regions", {}).items()}
        tl.check(bool(lags) and lags["northeurope"] >= 2.5 and lags["northeurope"] < 8,
                 f"northeurope first seen after its ~3 s lag, within a backoff step ({lags.get('northeurope')} s)")
        tl.check(types.get("shop/api") == ["Healer.ImageReplicationTimedOut"]
                 and by_subject["shop/api"][0]["data"]["missingRegions"] == ["northeurope"],
                 "shop/api:v7 timed out naming northeurope")
        worker = {e["data"]["digest"]: e for e in by_subject.get("shop/worker", [])}
        race = worker.get(c1.digest, {})
        tl.check(race.get("eventType") == "Healer.TagRaceDetected"
                 and race["data"]["tagConflicts"][0]["resolvedDigest"] == c2.digest,
                 "shop/worker:v2 overwrite reported as a tag race naming the new digest")
        tl.check(worker.get(c2.digest, {}).get("eventType") == "Healer.ImageReplicated"
                 and "tagConflicts" not in worker[c2.digest]["data"] and len(worker) == 2,
                 "the overwrite itself ready once its tag moved (westus naming the earlier push was lag, not a race)")
        tl.check(types.get("shop/old") == ["Healer.ImageReplicated"]
                 and by_subject["shop/old"][0]["data"]["action"] == "delete",
                 "shop/old delete confirmed once every replica answers 404")
        tl.check(len(events) == expected and len({e["id"] for e in events}) == expected,
                 f"{len(events)} outcome events with distinct ids (one per wait)")
        tl.check(all(r["schema"] == "eventgrid" for r in control.get("/_standin/events").json()["requests"]),
                 "published in the Event Grid schema; no topic key configured, so with Healer's Entra token")

        with healer.client() as api:
            st = api.get("/replication/status", params={"registry": REGISTRY, "repository": "shop/web", "tag": "v1"})
            tl.add("pipeline", f"GET /replication/status?tag=v1 → {st.status_code} {st.json().get('status')}")
            tl.check(st.status_code == 200 and st.json()["status"] == "ready"
                     and st.json()["digest"] == a.digest, "status endpoint by tag says ready for the pushed digest")
            day = dt.datetime.now(dt.timezone.utc).date().isoformat()
            records = api.get("/audit", params={"healer": "replication", "limit": 500, "day": day}).json()["records"]
        outcomes = [r["outcome"] for r in records]
        reasons = " | ".join(r["reason"] for r in records)
        tl.add("healer", "audit: " + ", ".join(f"{o}×{outcomes.count(o)}" for o in sorted(set(outcomes))))
        tl.check(outcomes.count("acted") == expected, "five outcomes published (audited 'acted')")
        tl.check("malformed digest" in reasons and "not configured" in reasons and "ChartPushed" in reasons,
                 "malformed digest, unwatched registry and ignored event type audited")
        tl.check("older push delivered after a newer action" in reasons, "reordered push after delete kept as evidence")
        tl.check(outcomes.count("duplicate") >= 2, "duplicated deliveries recorded as duplicates, not new waits")
        tl.check(not replicator.errors, f"replication jobs ran cleanly {replicator.errors[:1]}")
    finally:
        cleanup.close()
    return tl

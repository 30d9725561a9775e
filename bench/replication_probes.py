"""Replication probe benchmarks (run by bench/replication.py), each beside its baseline from the same run:

4. Pullable vs manifest-only: real docker-registry replicas, multi-arch image indexes whose layers reach two
   replicas seconds after their manifests. The same wait is decided twice on the same timeline: with blob checks
   (Healer) and manifest-only (the previous probe): registry requests per wait per replica, and how often each
   said "ready" before the replica could serve every layer.
5. Lag under per-replica throttling: westus behind a front answering 429 (Retry-After: 1) for longer than the wait's
   deadline; Healer's throttled state vs the previous classification (429 = a generic error, Retry-After ignored):
   outcomes (ready vs timed out), lag from the replica serving again to the decision, 429s drawn.
6. Time to a named failure with regional endpoints off (hosts that never resolve), production backoff and the
   default 15 s confirmation, on a simulated clock (DNS answers at once; the clock only skips the waits): Healer vs
   the previous behaviour (a DNS error is a generic error: the 30-minute deadline).
"""
from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

REGIONS = ("eastus", "westus", "northeurope")


def _policy(deadline: float, **kw):
    from healers.replication.core import BackoffPolicy, ReplicationPolicy
    return ReplicationPolicy(required_regions={"benchreg": REGIONS}, deadline_seconds=deadline,
                             backoff=BackoffPolicy(base_seconds=0.25, factor=1.5, max_seconds=1.0, min_seconds=0.1,
                                                   jitter=0.3), **kw)


def _event(repository: str, digest: str, tag: str = "v1"):
    import datetime as dt
    from healers.replication.events import AcrImageEvent
    return AcrImageEvent(event_id=str(uuid.uuid4()), event_type="x", action="push", schema_name="eventgrid",
                         registry="benchreg", login_server=None, repository=repository, tag=tag, digest=digest,
                         media_type=None, location=None, request_id=None,
                         event_time=dt.datetime.now(dt.timezone.utc))


class Previous:
    """The previous probe classification, for the baselines: 429 and DNS failures were generic errors, Retry-After
    was ignored (and blobs were not checked: run with verify_blobs=False where that is measured)."""

    def __init__(self, prober: Any) -> None:
        self.prober = prober

    def observe_all(self, record, regions):
        out = []
        for o in self.prober.observe_all(record, regions):
            if o.manifest in ("throttled", "unresolvable", "forbidden", "incomplete"):
                o = o.model_copy(update={"manifest": "error" if o.manifest != "forbidden" else "unauthorized",
                                         "retry_after": None})
            out.append(o)
        return out


def _step(prober, record, policy, now):
    from healers.replication.core import decide, regions_to_probe
    return decide(record, prober.observe_all(record, regions_to_probe(record, now)), policy, now)


def bench_blob_cost(workdir, n: int) -> dict[str, Any]:
    from healers.replication.core import intake
    from healers.replication.registry_client import RegistryProber
    from standins.registries import Replicator, push_index, start_registries

    fleet = start_registries("benchreg", REGIONS, workdir / "bench-probe-registries")
    replicator = Replicator(fleet)
    full, manifest_only = RegistryProber(fleet.endpoint_map()), RegistryProber(fleet.endpoint_map(),
                                                                               verify_blobs=False)
    early = {"blobs": 0, "manifest": 0}
    serving: dict[str, list[int]] = {"blobs": [], "manifest": []}   # requests for the replica serving it at once
    try:
        for i in range(n):
            repo = f"multi/app{i}"
            image = push_index(fleet.url("eastus"), repo, "v1", seeds=[f"b{i}-{uuid.uuid4()}", f"c{i}-{uuid.uuid4()}"])
            replicator.copy_lagging_layers("eastus", ["westus", "northeurope"], repo, "v1",
                                           {"westus": 1.0, "northeurope": 2.0})
            served_at = time.monotonic() + 2.0       # northeurope's layers are pushed back then (and take a moment)
            pol = _policy(30)
            recs = {k: intake(None, _event(repo, image.digest), pol, time.time()).record for k in early}
            probers = {"blobs": full, "manifest": manifest_only}
            due = {k: 0.0 for k in early}          # each wait re-checked after its own decided delay
            while due:
                for k in sorted(due):
                    if time.monotonic() < due[k]:
                        continue
                    d = _step(probers[k], recs[k], pol, time.time())
                    recs[k] = d.record
                    if d.action != "recheck":
                        serving[k].append(d.record.probe_requests.get("eastus", 0))
                        del due[k]
                        if d.action == "publish_ready" and time.monotonic() < served_at:
                            early[k] += 1
                    else:
                        due[k] = time.monotonic() + (d.delay_seconds or 0.1)
                time.sleep(0.02)
            replicator.wait_idle(30)
    finally:
        full.close()
        manifest_only.close()
        replicator.stop()
        fleet.stop()
    per = n * len(REGIONS)
    return {"n": n, "blobs_per_replica": full.total_requests / per,
            "manifest_per_replica": manifest_only.total_requests / per, "early": early,
            "blob_heads_per_replica": full.blob_requests / per,
            "serving": {k: statistics.mean(v) for k, v in serving.items()}}


def bench_throttling(workdir, n: int) -> dict[str, Any]:
    from healers.replication.core import intake
    from healers.replication.registry_client import RegistryProber, regional_host
    from standins.registries import Replicator, push_image, start_registries
    from standins.registry_front import set_rules, start_front, stats

    fleet = start_registries("benchreg", REGIONS, workdir / "bench-throttle-registries")
    server, front = start_front(fleet.url("westus"), workdir, "bench-front")
    endpoints = {**fleet.endpoint_map(), regional_host("benchreg", "westus"): front}
    variants = {"healer": RegistryProber(endpoints), "previous": Previous(RegistryProber(endpoints))}
    out: dict[str, dict[str, list]] = {k: {"outcomes": [], "lags": []} for k in variants}
    throttled_for, deadline = 4.0, 2.5
    hits = {k: 0 for k in variants}
    replicator = Replicator(fleet)
    try:
        for i in range(n):
            for name, prober in variants.items():   # one after the other: each sees the same throttling window
                repo = f"thr/app{i}-{name}"
                image = push_image(fleet.url("eastus"), repo, "v1", seed=f"t{i}-{uuid.uuid4()}")
                replicator.copy_now("eastus", ["westus", "northeurope"], repo, "v1")
                before = stats(front).get("byStatus", {}).get("429", 0)
                set_rules(front, {"status": 429, "retryAfter": "1", "seconds": throttled_for})
                serving_at = time.time() + throttled_for
                pol = _policy(deadline, max_throttled_seconds=60)
                rec = intake(None, _event(repo, image.digest), pol, time.time()).record
                while True:
                    d = _step(prober, rec, pol, time.time())
                    rec = d.record
                    if d.action != "recheck":
                        break
                    time.sleep(d.delay_seconds or 0.1)   # the queue visibility delay the decision asked for
                out[name]["outcomes"].append(d.action.replace("publish_", ""))
                if d.action == "publish_ready":
                    out[name]["lags"].append(time.time() - serving_at)
                hits[name] += stats(front).get("byStatus", {}).get("429", 0) - before
                set_rules(front)
    finally:
        replicator.stop()
        server.stop()
        fleet.stop()
    return {"n": n, "throttled_for": throttled_for, "deadline": deadline, "hits": hits, **out}


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def bench_named_failure() -> dict[str, Any]:
    """Production policy (deadline 30 min, default backoff, 15 s confirmation) on a simulated clock."""
    from healers.replication.core import ReplicationPolicy, intake
    from healers.replication.registry_client import RegistryProber

    results = {}
    for name in ("healer", "previous"):
        clock = _Clock()
        prober = RegistryProber({f"benchreg.{r}.geo.azurecr.io": f"http://benchreg-{r}.invalid" for r in REGIONS},
                                clock=clock, timeout=3.0)
        probe = prober if name == "healer" else Previous(prober)
        pol = ReplicationPolicy(required_regions={"benchreg": REGIONS})      # production defaults
        start = clock.now
        rec = intake(None, _event("noregional/app", "sha256:" + "d" * 64), pol, clock.now).record
        checks = 0
        while True:
            d = _step(probe, rec, pol, clock.now)
            checks += 1
            if d.action != "recheck":
                break
            rec = d.record
            clock.now += d.delay_seconds
        results[name] = {"seconds": clock.now - start, "action": d.action, "reason": d.reason[:90],
                         "checks": checks, "requests": prober.total_requests}
        prober.close()
    return results


def report(blob: dict[str, Any], thr: dict[str, Any], named: dict[str, Any]) -> bool:
    print(f"\n4.  pullable vs manifest-only — REAL WIRE (docker-registry), n={blob['n']} two-platform image indexes, "
          f"layers reach westus 1 s / northeurope 2 s after the manifests")
    print(f"    {'measure':<52}{'Healer':>14}{'baseline':>14}")
    print(f"    {'registry requests per wait per replica':<52}{blob['blobs_per_replica']:>14.1f}"
          f"{blob['manifest_per_replica']:>14.1f}   manifest-only probe (previous); "
          f"{blob['blob_heads_per_replica']:.1f} of Healer's are blob HEADs")
    print(f"    {'  of which, the replica serving it from the start':<52}{blob['serving']['blobs']:>14.1f}"
          f"{blob['serving']['manifest']:>14.1f}   one probe: index, 2 children, 4 blobs, tag")
    print(f"    {'said ready before every layer was served':<52}{blob['early']['blobs']:>14}"
          f"{blob['early']['manifest']:>14}   of {blob['n']} waits")
    h, p = thr["healer"], thr["previous"]
    count = lambda xs, v: sum(1 for x in xs if x == v)   # noqa: E731
    print(f"\n5.  lag under per-replica throttling — REAL WIRE, westus behind a front answering 429 (Retry-After: 1) "
          f"for {thr['throttled_for']:.0f} s, wait deadline {thr['deadline']:.1f} s; n={thr['n']} each")
    print(f"    {'ready / timed out':<52}{count(h['outcomes'], 'ready'):>7} / {count(h['outcomes'], 'timed_out'):<4}"
          f"{count(p['outcomes'], 'ready'):>9} / {count(p['outcomes'], 'timed_out'):<4}"
          f" previous: 429 a generic error, Retry-After ignored")
    lag = f"{statistics.median(h['lags']):.2f} s" if h["lags"] else "-"
    print(f"    {'replica serving again -> ready decision, p50':<52}{lag:>14}{'never':>14}")
    print(f"    {'429 answers drawn from the throttled replica':<52}{thr['hits']['healer']:>14}"
          f"{thr['hits']['previous']:>14}")
    hn, pn = named["healer"], named["previous"]
    print("\n6.  regional endpoints off (no regional host resolves) — production backoff and deadline, simulated clock")
    print(f"    {'time to the outcome':<52}{hn['seconds']:>12.0f} s{pn['seconds']:>12.0f} s   goal < 60 s")
    print(f"    {'outcome':<52}{hn['action'].replace('publish_', ''):>14}{pn['action'].replace('publish_', ''):>14}")
    print(f"    {'checks / registry requests':<52}{hn['checks']:>7} / {hn['requests']:<5}{pn['checks']:>7} / "
          f"{pn['requests']}")
    print(f"    Healer's reason: {hn['reason']}…")
    return (blob["early"]["blobs"] == 0 and count(h["outcomes"], "ready") == thr["n"]
            and hn["action"] == "publish_failed" and hn["seconds"] < 60)

"""Real OCI registries for tests, the drill and the benchmarks: one Debian `docker-registry` (CNCF distribution
2.8) per "region" on 127.0.0.1, each with its own config and storage, started and stopped by PID via the harness.

Pushing, "replicating" (copying blobs + manifest from one instance to others, now or on a per-replica delay
schedule run by a background thread) and deleting all go through the registry HTTP API (OCI distribution spec).
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import httpx

from standins.harness import Server, free_port, start_process

REGISTRY_BINARY = "/usr/bin/docker-registry"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json", DOCKER_MANIFEST,
])
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- processes

@dataclass
class RegistryInstance:
    name: str            # the region it plays, e.g. "eastus"
    port: int
    storage: Path
    server: Server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


@dataclass
class RegistryFleet:
    registry: str                                   # ACR name the fleet plays, e.g. "myreg"
    instances: dict[str, RegistryInstance] = field(default_factory=dict)

    def __getitem__(self, region: str) -> RegistryInstance:
        return self.instances[region]

    def url(self, region: str) -> str:
        return self.instances[region].base_url

    def endpoint_map(self) -> dict[str, str]:
        """{"<registry>.<region>.geo.azurecr.io": "http://127.0.0.1:<port>"} for every instance."""
        return {f"{self.registry}.{r}.geo.azurecr.io": i.base_url for r, i in self.instances.items()}

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.stop()


def registry_config(port: int, storage: Path, notify_url: str | None = None) -> dict:
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "healer-local-standin",
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if notify_url:
        # Gotcha (distribution 2.8): `ignore.actions` is only honoured when `ignore.mediatypes` is set too.
        config["notifications"] = {
            "events": {"includereferences": True},
            "endpoints": [{
                "name": "healer", "url": notify_url, "timeout": "2s", "threshold": 5, "backoff": "1s",
                "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
            }],
        }
    return config


def start_registry(region: str, workdir: Path, notify_url: str | None = None) -> RegistryInstance:
    port = free_port()
    home = workdir / f"registry-{region}"
    storage = home / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config_path = home / "config.yml"
    config_path.write_text(json.dumps(registry_config(port, storage, notify_url), indent=2))  # JSON is YAML
    server = start_process(f"registry-{region}", [REGISTRY_BINARY, "serve", str(config_path)],
                           {"http": port}, workdir)
    return RegistryInstance(region, port, storage, server)


def start_registries(registry: str, regions: Sequence[str], workdir: Path,
                     notify_url: str | None = None) -> RegistryFleet:
    fleet = RegistryFleet(registry)
    try:
        for region in regions:
            fleet.instances[region] = start_registry(region, workdir, notify_url)
    except Exception:
        fleet.stop()
        raise
    return fleet


# ---------------------------------------------------------------------------------------------- HTTP API

class RegistryApiError(RuntimeError):
    pass


def _check(resp: httpx.Response, *expected: int) -> httpx.Response:
    if resp.status_code not in expected:
        raise RegistryApiError(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: "
                               f"{resp.text[:300]}")
    return resp


def push_blob(client: httpx.Client, base_url: str, repository: str, data: bytes) -> str:
    digest = sha256_digest(data)
    if client.head(f"{base_url}/v2/{repository}/blobs/{digest}").status_code == 200:
        return digest
    start = _check(client.post(f"{base_url}/v2/{repository}/blobs/uploads/"), 202)
    location = start.headers["location"]
    if location.startswith("/"):
        location = base_url + location
    sep = "&" if "?" in location else "?"
    _check(client.put(f"{location}{sep}digest={digest}", content=data,
                      headers={"Content-Type": "application/octet-stream"}), 201)
    return digest


def push_manifest(client: httpx.Client, base_url: str, repository: str, reference: str, body: bytes,
                  media_type: str) -> str:
    resp = _check(client.put(f"{base_url}/v2/{repository}/manifests/{reference}", content=body,
                             headers={"Content-Type": media_type}), 201)
    digest = resp.headers.get("docker-content-digest") or sha256_digest(body)
    if digest != sha256_digest(body):
        raise RegistryApiError(f"registry stored {digest}, expected {sha256_digest(body)}")
    return digest


@dataclass(frozen=True)
class PushedImage:
    repository: str
    tag: str | None
    digest: str
    manifest: bytes
    media_type: str


def make_image(seed: str, layer_size: int = 256) -> tuple[bytes, bytes, bytes]:
    """(config, layer, manifest) of a tiny image, all determined by `seed`."""
    layer = (hashlib.sha256(seed.encode()).digest() * (layer_size // 32 + 1))[:layer_size]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"seed": seed}},
                         "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]}},
                        sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [{"mediaType": DOCKER_LAYER, "size": len(layer), "digest": sha256_digest(layer)}],
    }, indent=3).encode()
    return config, layer, manifest


def push_image(base_url: str, repository: str, tag: str | None = None, *, seed: str,
               client: httpx.Client | None = None) -> PushedImage:
    """Push blobs then the manifest (by tag if given, else by digest); returns what was pushed."""
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        config, layer, manifest = make_image(seed)
        push_blob(client, base_url, repository, config)
        push_blob(client, base_url, repository, layer)
        digest = push_manifest(client, base_url, repository, tag or sha256_digest(manifest), manifest,
                               DOCKER_MANIFEST)
        return PushedImage(repository, tag, digest, manifest, DOCKER_MANIFEST)
    finally:
        if own:
            client.close()


OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def push_index(base_url: str, repository: str, tag: str | None = None, *, seeds: Sequence[str],
               client: httpx.Client | None = None) -> PushedImage:
    """A multi-arch image: one image per seed (pushed by digest), then an OCI image index naming them all."""
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        children = []
        for i, seed in enumerate(seeds):
            child = push_image(base_url, repository, None, seed=seed, client=client)
            children.append({"mediaType": DOCKER_MANIFEST, "size": len(child.manifest), "digest": child.digest,
                             "platform": {"architecture": ["amd64", "arm64", "s390x", "ppc64le"][i % 4],
                                          "os": "linux"}})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, indent=2).encode()
        digest = push_manifest(client, base_url, repository, tag or sha256_digest(index), index, OCI_INDEX)
        return PushedImage(repository, tag, digest, index, OCI_INDEX)
    finally:
        if own:
            client.close()


def image_blobs(base_url: str, repository: str, reference: str, client: httpx.Client | None = None) -> list[str]:
    """Every blob (configs and layers) a manifest or an index's children reference, as the registry serves them."""
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        resp = _check(client.get(f"{base_url}/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT}), 200)
        doc = json.loads(resp.content)
        if resp.headers["content-type"].split(";")[0].strip() in INDEX_TYPES:
            return [b for child in doc.get("manifests", [])
                    for b in image_blobs(base_url, repository, child["digest"], client)]
        return [blob["digest"] for blob in [doc["config"], *doc.get("layers", [])]]
    finally:
        if own:
            client.close()


def image_configs(base_url: str, repository: str, reference: str, client: httpx.Client) -> list[str]:
    resp = _check(client.get(f"{base_url}/v2/{repository}/manifests/{reference}",
                             headers={"Accept": MANIFEST_ACCEPT}), 200)
    doc = json.loads(resp.content)
    if resp.headers["content-type"].split(";")[0].strip() in INDEX_TYPES:
        return [c for child in doc.get("manifests", []) for c in image_configs(base_url, repository,
                                                                              child["digest"], client)]
    return [doc["config"]["digest"]]


def delete_blobs(base_url: str, repository: str, digests: Iterable[str], client: httpx.Client | None = None) -> int:
    """Unlink blobs from a repository (DELETE /v2/<repo>/blobs/<digest>; needs storage.delete.enabled): the
    manifests stay and are served, the blobs answer 404 "blob unknown" until pushed again — a replica whose
    layers lag behind its manifest. Returns how many were deleted."""
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        return sum(_check(client.delete(f"{base_url}/v2/{repository}/blobs/{d}"), 202, 404).status_code == 202
                   for d in dict.fromkeys(digests))
    finally:
        if own:
            client.close()


def copy_image(src_url: str, dst_url: str, repository: str, reference: str,
               client: httpx.Client | None = None) -> str:
    """Copy a manifest (by tag or digest), its blobs and (for an index) its child manifests; returns the digest.

    Pushing by tag stores the manifest and moves the tag in one request, as a replica catching up would.
    """
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        resp = _check(client.get(f"{src_url}/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT}), 200)
        body, media_type = resp.content, resp.headers["content-type"].split(";")[0].strip()
        doc = json.loads(body)
        if media_type in INDEX_TYPES:
            for child in doc.get("manifests", []):
                copy_image(src_url, dst_url, repository, child["digest"], client)
        else:
            for blob in [doc["config"], *doc.get("layers", [])]:
                if client.head(f"{dst_url}/v2/{repository}/blobs/{blob['digest']}").status_code == 200:
                    continue
                data = _check(client.get(f"{src_url}/v2/{repository}/blobs/{blob['digest']}",
                                         follow_redirects=True), 200).content
                push_blob(client, dst_url, repository, data)
        return push_manifest(client, dst_url, repository, reference, body, media_type)
    finally:
        if own:
            client.close()


def delete_manifest(base_url: str, repository: str, digest: str, client: httpx.Client | None = None) -> bool:
    """DELETE by digest (needs storage.delete.enabled); False when it was not there."""
    own = client is None
    client = client or httpx.Client(timeout=10.0)
    try:
        resp = _check(client.delete(f"{base_url}/v2/{repository}/manifests/{digest}"), 202, 404)
        return resp.status_code == 202
    finally:
        if own:
            client.close()


# ---------------------------------------------------------------------------------------------- replication

@dataclass(order=True)
class _Job:
    due: float
    seq: int
    run: Callable[[], object] = field(compare=False)
    label: str = field(compare=False)


class Replicator:
    """Runs copy/delete jobs at their due times on one background thread in the calling process.

    `schedule_copy(src, repo, ref, {"westus": 2.0, "northeurope": 5.0})` makes westus serve the image two
    seconds from now and northeurope five; a region left out never gets it (a replica that never catches up).
    """

    def __init__(self, fleet: RegistryFleet, clock: Callable[[], float] = time.monotonic) -> None:
        self.fleet = fleet
        self._clock = clock
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False
        self.done: list[tuple[str, float]] = []      # (label, time completed on `clock`)
        self.errors: list[tuple[str, str]] = []
        self._client = httpx.Client(timeout=10.0)
        self._thread = threading.Thread(target=self._loop, name="registry-replicator", daemon=True)
        self._thread.start()

    def copy_now(self, src: str, dsts: Iterable[str], repository: str, reference: str) -> None:
        for dst in dsts:
            copy_image(self.fleet.url(src), self.fleet.url(dst), repository, reference, self._client)

    def schedule_copy(self, src: str, repository: str, reference: str, delays: Mapping[str, float]) -> None:
        for dst, delay in delays.items():
            self._add(delay, f"copy {repository}:{reference} {src}->{dst}",
                      lambda dst=dst: copy_image(self.fleet.url(src), self.fleet.url(dst), repository, reference,
                                                 self._client))

    def copy_lagging_layers(self, src: str, dsts: Iterable[str], repository: str, reference: str,
                            layers_after: Mapping[str, float]) -> list[str]:
        """Copy the image now, but take its layers (not the configs) away again on each replica in
        `layers_after` and push them back that many seconds from now: the manifest (and for an index every
        child) is served at once, the layers only later. Returns the layer digests that lag."""
        src_url = self.fleet.url(src)
        for dst in dsts:
            copy_image(src_url, self.fleet.url(dst), repository, reference, self._client)
        configs = set(image_configs(src_url, repository, reference, self._client))
        layers = [b for b in image_blobs(src_url, repository, reference, self._client) if b not in configs]
        for dst, delay in layers_after.items():
            delete_blobs(self.fleet.url(dst), repository, layers, self._client)
            self._add(delay, f"layers of {repository}:{reference} {src}->{dst}",
                      lambda dst=dst: copy_image(src_url, self.fleet.url(dst), repository, reference, self._client))
        return layers

    def schedule_delete(self, repository: str, digest: str, delays: Mapping[str, float]) -> None:
        for region, delay in delays.items():
            self._add(delay, f"delete {repository}@{digest} in {region}",
                      lambda region=region: delete_manifest(self.fleet.url(region), repository, digest,
                                                            self._client))

    def _add(self, delay: float, label: str, run: Callable[[], object]) -> None:
        with self._cond:
            heapq.heappush(self._jobs, _Job(self._clock() + max(0.0, delay), next(self._seq), run, label))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._jobs) + self._running

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._jobs)} replication jobs still pending")
                self._cond.wait(left)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._jobs or self._jobs[0].due > self._clock()):
                    self._cond.wait(None if not self._jobs else max(0.0, self._jobs[0].due - self._clock()))
                if self._stopped:
                    return
                job = heapq.heappop(self._jobs)
                self._running += 1
            try:
                job.run()
                result = ("ok", job.label)
            except Exception as exc:  # kept for the test to assert on; the loop must go on
                result = ("error", f"{job.label}: {exc!r}")
            with self._cond:
                self._running -= 1
                if result[0] == "ok":
                    self.done.append((job.label, self._clock()))
                else:
                    self.errors.append((job.label, result[1]))
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._client.close()

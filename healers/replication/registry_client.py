"""Probe regional registry endpoints: is the image *pullable* there? (OCI distribution spec, end-3 / end-2.)

For a push, per replica: `GET /v2/<repo>/manifests/<digest>` (200 with the matching `Docker-Content-Digest`), every
child manifest of an image index, and `HEAD /v2/<repo>/blobs/<digest>` for every referenced blob (config and
layers) — bounded, and skipping what the wait already confirmed on that replica; then which digest each tag
resolves to. For a delete, `HEAD` of the manifest (404 wanted). Each probe ends in one state (see
`probe_states`): 429 is `throttled` with its Retry-After (from the registry or its token endpoint), 403
`forbidden`, a DNS failure `unresolvable`, manifest there but a blob or child not yet `incomplete`.

Regional hosts are `<registry>.<region>.geo.azurecr.io`; `endpoint_map` maps a host to the base URL actually
used (e.g. {"myreg.eastus.geo.azurecr.io": "http://127.0.0.1:5001"}), otherwise `https://<host>`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

import httpx

from .acr_auth import AcrAuthError, AcrTokenProvider, is_dns_failure, parse_retry_after, parse_www_authenticate, pull_scope
from .core import RegionObservation, WaitRecord
from .probe_states import FORBIDDEN_HINT

# Without the schema-2 / OCI types in Accept, distribution 2.x may answer a tag with a converted schema-1
# manifest, whose digest differs from the pushed one.
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
INDEX_TYPES = frozenset({"application/vnd.oci.image.index.v1+json",
                         "application/vnd.docker.distribution.manifest.list.v2+json"})
MAX_MANIFEST_BYTES = 4 * 1024 * 1024     # the registry's own manifest size limit
MAX_CHILDREN = 64                         # child manifests checked per index
MAX_BLOBS = 256                           # blobs listed per manifest
BLOB_BUDGET = 256                         # blob HEADs per replica per probe; the rest are asked by later probes

ProbeStatus = Literal["present", "absent", "throttled", "forbidden", "unresolvable", "unauthorized", "error"]


@dataclass(frozen=True)
class ManifestProbe:
    status: ProbeStatus
    http_status: int | None
    digest: str | None        # Docker-Content-Digest as served
    detail: str | None = None
    retry_after: float | None = None
    body: bytes | None = field(default=None, repr=False)   # GET only
    media_type: str | None = None


def regional_host(registry: str, region: str) -> str:
    return f"{registry}.{region}.geo.azurecr.io"


def base_url_for(host: str, endpoint_map: Mapping[str, str]) -> str:
    return (endpoint_map.get(host) or endpoint_map.get(host.lower()) or f"https://{host}").rstrip("/")


class RegistryProber:
    """Counts manifest and tag requests in `requests` and blob HEADs in `blob_requests` (the probe-cost figure).

    `verify_blobs=False` checks manifests only (the pre-pullability behaviour, kept for the bench baseline)."""

    def __init__(self, endpoint_map: Mapping[str, str], *, auth: AcrTokenProvider | None = None,
                 client: httpx.Client | None = None, timeout: float = 5.0,
                 clock: Callable[[], float] = time.time, verify_blobs: bool = True) -> None:
        self._map = {k.lower(): v for k, v in endpoint_map.items()}
        self._auth = auth
        self._client = client or httpx.Client(timeout=timeout)
        self._clock = clock
        self.verify_blobs = verify_blobs
        self.requests = 0
        self.blob_requests = 0

    def close(self) -> None:
        self._client.close()

    @property
    def total_requests(self) -> int:
        return self.requests + self.blob_requests

    # ------------------------------------------------------------------ single requests
    def head_manifest(self, host: str, repository: str, reference: str,
                      expected_digest: str | None = None) -> ManifestProbe:
        return self._manifest("HEAD", host, repository, reference, expected_digest)

    def get_manifest(self, host: str, repository: str, digest: str) -> ManifestProbe:
        """GET by digest: the body (bounded) is what lists child manifests and blobs."""
        return self._manifest("GET", host, repository, digest, digest)

    def head_blob(self, host: str, repository: str, digest: str) -> ManifestProbe:
        got = self._send("HEAD", host, repository, f"blobs/{digest}", counter="blob_requests")
        if isinstance(got, ManifestProbe):
            return got
        if got.status_code == 200:
            return ManifestProbe("present", 200, digest)
        return _classify(got, digest, digest)

    def _manifest(self, method: str, host: str, repository: str, reference: str,
                  expected: str | None) -> ManifestProbe:
        got = self._send(method, host, repository, f"manifests/{quote(reference, safe=':')}")
        if isinstance(got, ManifestProbe):
            return got
        probe = _classify(got, reference, expected)
        if method == "GET" and probe.status == "present":
            if len(got.content) > MAX_MANIFEST_BYTES:
                return ManifestProbe("error", got.status_code, None, "manifest larger than 4 MiB")
            media = (got.headers.get("content-type") or "").split(";")[0].strip()
            return ManifestProbe("present", probe.http_status, probe.digest, body=got.content, media_type=media)
        return probe

    def _send(self, method: str, host: str, repository: str, path: str,
              counter: str = "requests") -> httpx.Response | ManifestProbe:
        """One registry request following the 401 Bearer challenge once; a failure becomes the probe's state."""
        url = f"{base_url_for(host, self._map)}/v2/{repository}/{path}"
        scope = pull_scope(repository)
        headers = {"Accept": MANIFEST_ACCEPT}
        token = self._auth.cached(host, scope) if self._auth else None
        try:
            resp = self._request(method, url, headers, token, counter)
            if resp.status_code == 401 and self._auth is not None:
                challenge = parse_www_authenticate(resp.headers.get("www-authenticate"))
                if challenge is None:
                    return ManifestProbe("unauthorized", 401, None, "401 without a Bearer challenge")
                if token:
                    self._auth.invalidate(host, scope)
                token = self._auth.token_for_challenge(host, challenge, scope=challenge.scope or scope)
                resp = self._request(method, url, headers, token, counter)
        except AcrAuthError as exc:
            status = {"throttled": 429, "forbidden": 403}.get(exc.kind, 401 if exc.kind == "unauthorized" else None)
            return ManifestProbe(exc.kind, status, None, str(exc), retry_after=exc.retry_after)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            if is_dns_failure(exc):
                return ManifestProbe("unresolvable", None, None, f"{host} does not resolve (DNS)")
            return ManifestProbe("error", None, None, f"network: {type(exc).__name__}")
        return resp

    def _request(self, method: str, url: str, headers: dict[str, str], token: str | None,
                 counter: str) -> httpx.Response:
        setattr(self, counter, getattr(self, counter) + 1)   # every request on the wire, challenged ones twice
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        return self._client.request(method, url, headers=headers)

    # ------------------------------------------------------------------ one region of one wait
    def observe(self, record: WaitRecord, region: str) -> RegionObservation:
        host = regional_host(record.registry, region)
        before = self.total_requests
        confirmed: list[str] = []
        missing: list[str] = []
        pending = record.pending_blobs.get(region) if record.action == "push" else None
        if pending and self.verify_blobs:
            # manifests by digest are immutable: what they reference was listed already, only the lacking blobs
            # are asked for again
            state, detail, retry = self._blobs(host, record, pending, set(), confirmed, missing)
            manifest = ManifestProbe(state, None, record.digest if state == "present" else None, detail,  # type: ignore[arg-type]
                                     retry)
        elif record.action == "push" and self.verify_blobs:
            manifest = self.get_manifest(host, record.repository, record.digest)
            if manifest.status == "present":
                state, detail, retry = self._pullable(host, record, region, manifest, confirmed, missing)
                manifest = ManifestProbe(state, manifest.http_status, manifest.digest, detail, retry)  # type: ignore[arg-type]
        else:
            manifest = self.head_manifest(host, record.repository, record.digest, record.digest)
        tags: dict[str, str | None] = {}
        details = [manifest.detail] if manifest.detail else []
        if record.action == "push" and manifest.status == "present":
            for tag in record.tags:
                probe = self.head_manifest(host, record.repository, tag)
                if probe.status == "present":
                    tags[tag] = probe.digest
                elif probe.status == "absent":
                    tags[tag] = None
                else:
                    details.append(f"tag {tag}: {probe.status} {probe.detail or ''}".strip())
        return RegionObservation(region=region, manifest=manifest.status, tags=tags,
                                 detail="; ".join(details)[:500] or None, observed_at=self._clock(),
                                 retry_after=manifest.retry_after, requests=self.total_requests - before,
                                 confirmed=tuple(confirmed), missing=tuple(missing))

    def _pullable(self, host: str, record: WaitRecord, region: str, top: ManifestProbe, confirmed: list[str],
                  missing: list[str]) -> tuple[str, str | None, float | None]:
        """Every child manifest of an index and every blob they (or the manifest) reference is served here.
        Digests already confirmed on this replica for this wait are skipped; what is confirmed now is added to
        `confirmed`. Returns (state, detail, retry_after)."""
        known = set(record.confirmed.get(region, []))
        try:
            doc = json.loads(top.body or b"{}")
        except ValueError:
            return "error", "manifest is not JSON", None
        if not isinstance(doc, dict):
            return "error", "manifest is not a JSON object", None
        manifests = [(record.digest, doc)]
        if top.media_type in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
            manifests = []
            for child in _descriptors(doc.get("manifests"))[:MAX_CHILDREN]:
                if child in known:
                    continue
                got = self.get_manifest(host, record.repository, child)
                if got.status != "present":
                    state = "incomplete" if got.status == "absent" else got.status
                    return state, f"child manifest {child}: {got.status} {got.detail or ''}".strip(), got.retry_after
                try:
                    manifests.append((child, json.loads(got.body or b"{}")))
                except ValueError:
                    return "error", f"child manifest {child} is not JSON", None
        blobs: list[str] = []
        for digest, body in manifests:
            refs = _descriptors([body.get("config")] + list(body.get("layers") or [])) if isinstance(body, dict) else []
            blobs += [b for b in refs[:MAX_BLOBS] if b not in blobs]
            if digest != record.digest:
                confirmed.append(digest)   # the child manifest is served; its blobs are tracked one by one
        return self._blobs(host, record, blobs, known, confirmed, missing)

    def _blobs(self, host: str, record: WaitRecord, blobs: list[str], known: set[str], confirmed: list[str],
               missing: list[str]) -> tuple[str, str | None, float | None]:
        """HEAD every blob not already confirmed, at most BLOB_BUDGET per probe (the rest wait for the next probe);
        lacking ones go to `missing` (the replica is incomplete)."""
        budget = BLOB_BUDGET
        for blob in blobs:
            if blob in known or blob in confirmed:
                continue
            if budget <= 0:
                missing.append(blob)   # not asked yet: checked by a later probe
                continue
            budget -= 1
            got = self.head_blob(host, record.repository, blob)
            if got.status == "present":
                confirmed.append(blob)
            elif got.status == "absent":
                missing.append(blob)
            else:
                return got.status, f"blob {blob}: {got.detail or got.status}", got.retry_after
        if missing:
            return "incomplete", (f"{len(missing)} blob(s) not yet served (blob unknown): "
                                  + ", ".join(missing[:3])), None
        return "present", None, None

    def observe_all(self, record: WaitRecord, regions: Sequence[str]) -> list[RegionObservation]:
        return [self.observe(record, region) for region in regions]


def _descriptors(items: object) -> list[str]:
    """Digests of OCI descriptors (bounded, validated); anything malformed is skipped."""
    from .events import DIGEST_RE
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        digest = item.get("digest") if isinstance(item, dict) else None
        if isinstance(digest, str) and DIGEST_RE.fullmatch(digest) and digest not in out:
            out.append(digest)
    return out


def _classify(resp: httpx.Response, reference: str, expected: str | None) -> ManifestProbe:
    status = resp.status_code
    served = resp.headers.get("docker-content-digest")
    if served is not None and len(served) > 200:
        return ManifestProbe("error", status, None, "oversized Docker-Content-Digest")
    if status == 200:
        if expected is not None:
            if served is not None and served != expected:
                return ManifestProbe("error", status, served, f"served digest {served} differs from {expected}")
            return ManifestProbe("present", status, served or expected)
        if served is None:
            return ManifestProbe("error", status, None, f"no Docker-Content-Digest for {reference}")
        return ManifestProbe("present", status, served)
    if status == 404:
        return ManifestProbe("absent", status, None)
    if status == 429:
        return ManifestProbe("throttled", status, None, "HTTP 429 (throttled)",
                             retry_after=parse_retry_after(resp.headers.get("retry-after")))
    if status == 403:
        return ManifestProbe("forbidden", status, None, FORBIDDEN_HINT)
    if status == 401:
        return ManifestProbe("unauthorized", status, None, f"HTTP {status}")
    return ManifestProbe("error", status, None, f"HTTP {status}")

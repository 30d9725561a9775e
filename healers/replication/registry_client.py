"""Probe regional registry endpoints: does `HEAD /v2/<repo>/manifests/<digest>` answer 200 with the matching
`Docker-Content-Digest`, and which digest does a tag resolve to? (OCI distribution spec, end-3.)

Regional hosts are `<registry>.<region>.geo.azurecr.io`; `endpoint_map` maps a host to the base URL actually
used (e.g. {"myreg.eastus.geo.azurecr.io": "http://127.0.0.1:5001"}), otherwise `https://<host>`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence
from urllib.parse import quote

import httpx

from .acr_auth import AcrAuthError, AcrTokenProvider, parse_www_authenticate, pull_scope
from .core import RegionObservation, WaitRecord

# Without the schema-2 / OCI types in Accept, distribution 2.x may answer a tag with a converted schema-1
# manifest, whose digest differs from the pushed one.
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])

ProbeStatus = Literal["present", "absent", "unauthorized", "error"]


@dataclass(frozen=True)
class ManifestProbe:
    status: ProbeStatus
    http_status: int | None
    digest: str | None        # Docker-Content-Digest as served
    detail: str | None = None


def regional_host(registry: str, region: str) -> str:
    return f"{registry}.{region}.geo.azurecr.io"


def base_url_for(host: str, endpoint_map: Mapping[str, str]) -> str:
    return (endpoint_map.get(host) or endpoint_map.get(host.lower()) or f"https://{host}").rstrip("/")


class RegistryProber:
    """Counts every registry request in `requests` (for the probe-cost figure)."""

    def __init__(self, endpoint_map: Mapping[str, str], *, auth: AcrTokenProvider | None = None,
                 client: httpx.Client | None = None, timeout: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._map = {k.lower(): v for k, v in endpoint_map.items()}
        self._auth = auth
        self._client = client or httpx.Client(timeout=timeout)
        self._clock = clock
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ single requests
    def head_manifest(self, host: str, repository: str, reference: str,
                      expected_digest: str | None = None) -> ManifestProbe:
        url = f"{base_url_for(host, self._map)}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        scope = pull_scope(repository)
        headers = {"Accept": MANIFEST_ACCEPT}
        token = self._auth.cached(host, scope) if self._auth else None
        try:
            resp = self._head(url, headers, token)
            if resp.status_code == 401 and self._auth is not None:
                challenge = parse_www_authenticate(resp.headers.get("www-authenticate"))
                if challenge is None:
                    return ManifestProbe("unauthorized", 401, None, "401 without a Bearer challenge")
                if token:
                    self._auth.invalidate(host, scope)
                token = self._auth.token_for_challenge(host, challenge, scope=challenge.scope or scope)
                resp = self._head(url, headers, token)
        except AcrAuthError as exc:
            return ManifestProbe("unauthorized", 401, None, str(exc))
        except httpx.HTTPError as exc:
            return ManifestProbe("error", None, None, f"network: {type(exc).__name__}")
        return _classify(resp, reference, expected_digest)

    def _head(self, url: str, headers: dict[str, str], token: str | None) -> httpx.Response:
        self.requests += 1
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        return self._client.head(url, headers=headers)

    # ------------------------------------------------------------------ one region of one wait
    def observe(self, record: WaitRecord, region: str) -> RegionObservation:
        host = regional_host(record.registry, region)
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
                                 detail="; ".join(details)[:500] or None, observed_at=self._clock())

    def observe_all(self, record: WaitRecord, regions: Sequence[str]) -> list[RegionObservation]:
        return [self.observe(record, region) for region in regions]


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
    if status in (401, 403):
        return ManifestProbe("unauthorized", status, None, f"HTTP {status}")
    return ManifestProbe("error", status, None, f"HTTP {status}")

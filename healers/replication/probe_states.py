"""Pure bookkeeping of per-replica probe outcomes: states and their counts, throttling, unresolvable hosts.

A probe of one replica ends in one state (`ProbeState`). Each has its own handling in `core.decide`:
- `ready` / `not-found`: the replica serves the image (every blob too) / does not yet;
- `incomplete`: the manifest is there but some child manifest or blob is not yet ("blob unknown"): lag;
- `throttled` (HTTP 429 from the registry or its token endpoint): the replica is not probed again before its
  `Retry-After` (or a per-replica growing backoff without one), and the time it spends answering 429 is not
  counted toward the wait's deadline: its own deadline moves out by that time, up to `max_throttled_seconds`;
- `forbidden` (403: a registry network rule or a missing permission), `unauthorized` (401 / token refused),
  `error` (anything else): named in the outcome, waited on until the deadline;
- `unresolvable` (the regional host does not resolve): confirmed over `unresolvable_confirm_seconds`, then the
  wait fails fast ("regional endpoints are not enabled for <registry>") instead of timing out much later.

Nothing here does I/O or reads the clock.
"""
from __future__ import annotations

from typing import Literal
from collections.abc import Mapping

ManifestState = Literal["present", "absent", "incomplete", "throttled", "forbidden", "unresolvable",
                        "unauthorized", "error"]
PUBLIC_STATE: dict[str, str] = {"present": "ready", "absent": "not-found", "incomplete": "incomplete",
                                "throttled": "throttled", "forbidden": "forbidden", "unresolvable": "unresolvable",
                                "unauthorized": "unauthorized", "error": "error"}
PROBLEM_STATES = frozenset({"throttled", "forbidden", "unresolvable", "unauthorized", "error"})
MAX_CONFIRMED = 512          # blob / child-manifest digests remembered per replica while it is not yet satisfied

FORBIDDEN_HINT = ("HTTP 403: a registry network rule (firewall, private endpoint, trusted services) or a missing "
                  "AcrPull role blocks Healer")


def throttle_wait(retry_after: float | None, streak: int, *, base: float, cap: float, max_retry_after: float) -> float:
    """Seconds before a throttled replica is probed again: its `Retry-After` when given (bounded), else a
    per-replica doubling backoff from `base` (streak = consecutive 429 answers, >= 1), capped."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), max_retry_after)
    return min(base * 2.0 ** min(max(streak - 1, 0), 30), cap)


def throttled_total(throttled_seconds: Mapping[str, float], throttled_since: Mapping[str, float], region: str,
                    now: float) -> float:
    """Time this replica has spent answering 429 so far (closed streaks plus the open one, if any)."""
    total = float(throttled_seconds.get(region, 0.0))
    since = throttled_since.get(region)
    if since is not None:
        total += max(0.0, now - since)
    return total


def unresolvable_confirmed(span: list[float] | None, confirm_seconds: float) -> bool:
    """`span` = [first, last] observation times of an unbroken run of DNS failures for one replica."""
    return bool(span) and span[-1] - span[0] >= confirm_seconds


def unresolvable_reason(registry: str, regions: list[str], all_regions: list[str]) -> str:
    hosts = ", ".join(f"{registry}.{r}.geo.azurecr.io" for r in regions)
    fix = f"enable them with `az acr update -n {registry} --regional-endpoints enabled` (Azure CLI 2.86.0+)"
    if set(regions) >= set(all_regions):
        return f"regional endpoints are not enabled for {registry}: {hosts} do not resolve; {fix}"
    return (f"regional endpoints are not enabled for {registry}, or it has no replica in "
            f"{', '.join(regions)}: {hosts} do not resolve; {fix}, or check the replica")


def state_totals(state_counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """{state: probes that ended in it} over every replica."""
    out: dict[str, int] = {}
    for counts in state_counts.values():
        for state, n in counts.items():
            out[state] = out.get(state, 0) + int(n)
    return dict(sorted(out.items()))

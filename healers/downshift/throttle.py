"""Which 429 (pure): the AI gateway's own token limit (a quota) or the model deployment's capacity.

Behind Azure API Management's AI gateway a tenant (an APIM subscription) can be throttled twice over:

* `quota`: the gateway's `azure-openai-token-limit` policy answers 429 itself (tokens per minute of that
  subscription used up; no backend call is made, so `BackendResponseCode` is not 429 in the gateway log). A cheaper
  model does not help (the same tokens hit the same limit) and costs quality: Healer does not switch models; it
  records "quota, not capacity" and suggests a limit change.
* `capacity`: the model deployment answered 429 (`BackendResponseCode == 429`): a smaller model's separate
  deployment and quota can relieve it, so Healer downshifts as for any capacity alert.

The alert tells which, by the `throttledBy` split dimension of the gateway log alert (`infra/kql/
gateway-429-by-tenant.kql`: "gateway" or "backend"), or by the rule's custom property `healer.throttledBy`. Without
either (an app-side 429-ratio alert) it is capacity, as before.
"""
from __future__ import annotations

from typing import Literal
from collections.abc import Mapping

Kind = Literal["quota", "capacity"]
DIMENSION = "throttledBy"
PROPERTY = "healer.throttledBy"
QUOTA = frozenset({"gateway", "quota", "token-limit", "apim"})
CAPACITY = frozenset({"backend", "capacity", "model"})


def classify(custom_properties: Mapping[str, str], dimensions: Mapping[str, str]) -> tuple[Kind, str]:
    """(kind, why) of a 429 alert; an unknown or missing marker is capacity (today's behaviour)."""
    for source, value in ((f"custom property {PROPERTY}", custom_properties.get(PROPERTY)),
                          (f"dimension {DIMENSION}", dimensions.get(DIMENSION))):
        text = (value or "").strip().lower()
        if text in QUOTA:
            return "quota", f"{source} = {text}: the AI gateway's own token limit answered 429"
        if text in CAPACITY:
            return "capacity", f"{source} = {text}: the model deployment answered 429"
    return "capacity", "no throttledBy marker: treated as the model's capacity"


def suggestion(tenant: str, app_name: str) -> str:
    """What a human can do about a gateway quota 429 (Healer cannot)."""
    return (f"raise the tokens-per-minute of the azure-openai-token-limit policy for tenant {tenant} of {app_name} "
            "(or move its APIM subscription to a product with a higher limit); a cheaper model would hit the same "
            "limit with the same tokens")

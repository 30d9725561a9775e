"""Allow / ask / deny per action and resource. Deny wins; anything unreadable denies.

Policy document (setting HEALER_POLICY)::

    {"version": 1,
     "default": "deny",                      # or "ask"; never "allow"
     "rules": [
       {"action": "rollback.swap", "resource": "/subscriptions/*/resourceGroups/prod-*/*", "effect": "ask"},
       {"action": "rollback.*",    "resource": "*",                                          "effect": "allow"},
       {"action": "*",             "resource": "*/sites/payments-*",                         "effect": "deny"}]}

Patterns are shell-style globs (`*`, `?`, `[...]`), matched case-insensitively against the full action name and
the full resource id. Among matching rules deny beats ask beats allow; no match takes `default`.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Effect = Literal["allow", "ask", "deny"]
_RANK = {"allow": 0, "ask": 1, "deny": 2}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=200)
    resource: str = Field(min_length=1, max_length=600)
    effect: Effect
    note: str = ""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    default: Literal["ask", "deny"] = "deny"
    rules: list[Rule] = Field(default_factory=list, max_length=500)


class PolicyDecision(BaseModel):
    effect: Effect
    reason: str


def load_policy(document: Any) -> tuple[Policy | None, str]:
    """Parse a policy document; on any problem return (None, why) so the caller fails closed."""
    if document is None:
        return None, "no policy configured (HEALER_POLICY is empty)"
    try:
        return Policy.model_validate(document), "ok"
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"policy invalid at {where or 'document'}: {first['msg']}"


def evaluate(policy: Policy | None, action: str, resource: str, unavailable_reason: str = "") -> PolicyDecision:
    if policy is None:
        return PolicyDecision(effect="deny", reason=f"fail closed: {unavailable_reason or 'policy unavailable'}")
    action_l, resource_l = action.lower(), resource.lower()
    matched = [(i, r) for i, r in enumerate(policy.rules)
               if fnmatch.fnmatchcase(action_l, r.action.lower()) and fnmatch.fnmatchcase(resource_l, r.resource.lower())]
    if not matched:
        return PolicyDecision(effect=policy.default, reason=f"no rule matches {action}; default {policy.default}")
    i, rule = max(matched, key=lambda ir: (_RANK[ir[1].effect], -ir[0]))
    return PolicyDecision(effect=rule.effect,
                          reason=f"rule {i} ({rule.action} on {rule.resource}) says {rule.effect}"
                                 + (f": {rule.note}" if rule.note else ""))

"""Allow / ask / deny per action and resource, with conditions and pre-action hooks. Deny wins; anything
unreadable denies.

Policy document (setting HEALER_POLICY)::

    {"version": 1,
     "default": "deny",                      # or "ask"; never "allow"
     "approvalTtlMinutes": 240,              # how long an "ask" waits for a human (per rule too)
     "rules": [
       {"action": "rollback.swap", "resource": "/subscriptions/*/resourceGroups/prod-*/*", "effect": "ask",
        "approvalTtlMinutes": 60, "approvers": {"roles": ["Healer.ProdApprover"], "groups": ["<object id>"]}},
       {"action": "rollback.*",    "resource": "*",                                          "effect": "allow",
        "hook": {"url": "https://change-gate.example/check", "timeoutSeconds": 3}},
       {"action": "*", "resource": "*/sites/payments-*", "effect": "deny", "note": "change freeze",
        "when": {"from": "2026-12-20T00:00:00Z", "to": "2027-01-04T00:00:00Z"}},
       {"action": "downshift.*", "resource": "*", "effect": "ask", "note": "business hours",
        "when": {"timezone": "Europe/Paris", "days": ["mon", "tue", "wed", "thu", "fri"],
                 "start": "09:00", "end": "18:00"}},
       {"action": "downshift.switch", "resource": "*", "effect": "deny", "note": "never below rung 1",
        "where": {"rung": {"gt": 1}}}]}

Patterns are shell-style globs (`*`, `?`, `[...]`), matched case-insensitively against the full action name and
the canonical resource id. A rule applies when its patterns match AND its conditions hold:

* `when`: a time window, in UTC or a named IANA zone (`timezone`): `days` (mon..sun), a daily `start`-`end`
  (HH:MM; an end before the start wraps past midnight) and/or absolute `from`/`to` instants (a change freeze).
* `where`: bounds on the proposed parameters the gate is given (`gt`, `gte`, `lt`, `lte`); the rule applies when
  every named parameter satisfies its bounds. A parameter the action did not propose makes an allow rule not
  apply and a deny/ask rule apply (fail closed).

Among applying rules deny beats ask beats allow; no rule takes `default`. The winning rule's optional `hook` is
then called (shared.gate): it may only make the effect stricter.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Effect = Literal["allow", "ask", "deny"]
_RANK = {"allow": 0, "ask": 1, "deny": 2}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_APPROVAL_TTL_MINUTES = 240


def stricter(a: Effect, b: Effect) -> Effect:
    return a if _RANK[a] >= _RANK[b] else b


class When(BaseModel):
    """A time window. Every field given must hold."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    timezone: str = Field("UTC", max_length=64)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(None, max_length=7)
    start: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
    from_: dt.datetime | None = Field(None, alias="from")
    to: dt.datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v[:64]!r} (use an IANA name such as 'Europe/Paris')") from None
        return v

    @model_validator(mode="after")
    def _pairs(self) -> When:
        if (self.start is None) != (self.end is None):
            raise ValueError("'start' and 'end' go together")
        if self.from_ and self.to and self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self

    def holds(self, now: dt.datetime) -> bool:
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        for edge, after in ((self.from_, True), (self.to, False)):
            if edge is not None:
                edge = edge if edge.tzinfo else edge.replace(tzinfo=zone)
                if (now < edge) if after else (now >= edge):
                    return False
        if self.days is not None and DAYS[local.weekday()] not in self.days:
            return False
        if self.start is not None and self.end is not None:
            minute = local.hour * 60 + local.minute
            s, e = (int(x[:2]) * 60 + int(x[3:]) for x in (self.start, self.end))
            inside = s <= minute < e if s <= e else (minute >= s or minute < e)
            if not inside:
                return False
        return True


class Bound(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def holds(self, value: float) -> bool:
        return not ((self.gt is not None and not value > self.gt) or (self.gte is not None and not value >= self.gte)
                    or (self.lt is not None and not value < self.lt) or (self.lte is not None and not value <= self.lte))


class Hook(BaseModel):
    """A pre-action hook: POSTed {action, resource, parameters, healer, subject, effect}; answers
    {"decision": "allow"|"ask"|"deny", "reason": "..."} within the timeout, else deny."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    url: str = Field(max_length=2000)
    timeout_seconds: float = Field(3.0, alias="timeoutSeconds", gt=0, le=10)

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        if v.startswith("https://") or re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/", v):
            return v
        raise ValueError("hook url must be https:// (plain http only for 127.0.0.1/localhost stand-ins)")


class Approvers(BaseModel):
    """Who may decide an approval in Entra mode: any of these app roles or group object ids."""
    model_config = ConfigDict(extra="forbid")
    roles: list[str] = Field(default_factory=list, max_length=20)
    groups: list[str] = Field(default_factory=list, max_length=20)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    action: str = Field(min_length=1, max_length=200)
    resource: str = Field(min_length=1, max_length=600)
    effect: Effect
    note: str = ""
    when: When | None = None
    where: dict[str, Bound] | None = Field(None, max_length=20)
    hook: Hook | None = None
    approval_ttl_minutes: int | None = Field(None, alias="approvalTtlMinutes", ge=1, le=10080)
    approvers: Approvers | None = None

    def applies(self, action: str, resource: str, now: dt.datetime, params: dict[str, Any]) -> bool:
        if not (fnmatch.fnmatchcase(action, self.action.lower()) and fnmatch.fnmatchcase(resource,
                                                                                          self.resource.lower())):
            return False
        if self.when is not None and not self.when.holds(now):
            return False
        for name, bound in (self.where or {}).items():
            value = params.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self.effect != "allow"   # cannot check the bound: only a stricter rule may apply
            if not bound.holds(float(value)):
                return False
        return True


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    version: Literal[1] = 1
    default: Literal["ask", "deny"] = "deny"
    approval_ttl_minutes: int = Field(DEFAULT_APPROVAL_TTL_MINUTES, alias="approvalTtlMinutes", ge=1, le=10080)
    rules: list[Rule] = Field(default_factory=list, max_length=500)


class PolicyDecision(BaseModel):
    effect: Effect
    reason: str
    rule: int | None = None
    hook: Hook | None = None
    approval_ttl_minutes: int = DEFAULT_APPROVAL_TTL_MINUTES
    approvers: Approvers | None = None


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


def evaluate(policy: Policy | None, action: str, resource: str, unavailable_reason: str = "", *,
             now: dt.datetime | None = None, params: dict[str, Any] | None = None) -> PolicyDecision:
    """Pure: the effect of `action` on `resource` at `now` with the proposed `params` (the hook is not called)."""
    if policy is None:
        return PolicyDecision(effect="deny", reason=f"fail closed: {unavailable_reason or 'policy unavailable'}")
    now = now or dt.datetime.now(dt.UTC)
    action_l, resource_l, params = action.lower(), resource.strip().lower(), params or {}
    matched = [(i, r) for i, r in enumerate(policy.rules) if r.applies(action_l, resource_l, now, params)]
    if not matched:
        return PolicyDecision(effect=policy.default, reason=f"no rule matches {action}; default {policy.default}",
                              approval_ttl_minutes=policy.approval_ttl_minutes)
    i, rule = max(matched, key=lambda ir: (_RANK[ir[1].effect], -ir[0]))
    return PolicyDecision(effect=rule.effect,
                          reason=f"rule {i} ({rule.action} on {rule.resource}) says {rule.effect}"
                                 + (f": {rule.note}" if rule.note else ""),
                          rule=i, hook=rule.hook if rule.effect != "deny" else None,
                          approval_ttl_minutes=rule.approval_ttl_minutes or policy.approval_ttl_minutes,
                          approvers=rule.approvers)

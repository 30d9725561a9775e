"""Azure resource ids Healer acts on: one canonical form, and strict parsing of App Service ids.

`canonical()` is applied once, before any policy, control, lease or dedupe key uses an id: ARM ids are
case-insensitive, so `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Web/sites/App/`, the same with a
trailing space or newline, with other case in a segment, or as the production slot's id
(`.../sites/app/slots/production`) are all the same app. `app_scope()` also maps any slot id to its app: a kill
switch or a lease on an app holds every slot of it (a swap always involves production).
"""
from __future__ import annotations

import re
from typing import NamedTuple

_SITE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/Microsoft\.Web/sites/(?P<name>[A-Za-z0-9-]{1,60})(?:/slots/(?P<slot>[A-Za-z0-9-]{1,59}))?/?$",
    re.IGNORECASE,
)
# Any ARM resource id (or a subscription / resource group scope): /subscriptions/<guid>[/resourceGroups/<rg>
# [/providers/<Namespace>/<type>/<name>[/<type>/<name>]...]]
_ARM = re.compile(
    r"^/subscriptions/[0-9a-f-]{36}(?:/resourcegroups/[-\w._()]{1,90}"
    r"(?:/providers/[a-z0-9][a-z0-9.]*(?:/[a-z0-9][-\w.]*/[^/\s]{1,260})+)?)?$")
MAX_ID = 1024


class SiteId(NamedTuple):
    subscription: str
    resource_group: str
    name: str
    slot: str | None

    @property
    def app_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Web/sites/{self.name}")


def canonical(resource_id: str) -> str:
    """The one canonical form of an ARM resource id: trimmed (whitespace, trailing slashes), lower case, duplicate
    slashes collapsed, the production slot named as its app. Raises ValueError for anything that is not an ARM id."""
    if not isinstance(resource_id, str) or len(resource_id) > MAX_ID:
        raise ValueError("not an Azure resource id")
    rid = re.sub(r"/{2,}", "/", resource_id.strip().lower()).rstrip("/")
    if rid.endswith("/slots/production") and "/providers/microsoft.web/sites/" in rid:
        rid = rid[: -len("/slots/production")]
    if not _ARM.match(rid):
        raise ValueError(f"not an Azure resource id: {resource_id.strip()[:200]!r}")
    return rid


def app_scope(resource_id: str) -> str:
    """canonical(), with an App Service slot id mapped to its app (controls and leases are per app)."""
    rid = canonical(resource_id)
    m = _SITE.match(rid)
    return parse_site_id(rid).app_id.lower() if m and m["slot"] else rid


def is_resource_id(text: str) -> bool:
    try:
        canonical(text)
        return True
    except ValueError:
        return False


def parse_site_id(resource_id: str) -> SiteId:
    if not isinstance(resource_id, str) or len(resource_id) > 512:
        raise ValueError("not an App Service resource id")
    m = _SITE.match(resource_id.strip())
    if not m:
        raise ValueError(f"not an App Service resource id: {resource_id[:200]!r}")
    return SiteId(m["sub"], m["rg"], m["name"], m["slot"])

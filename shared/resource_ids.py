"""Parsing of Azure resource ids Healer acts on. Strict: an id that does not match is refused."""
from __future__ import annotations

import re
from typing import NamedTuple

_SITE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/Microsoft\.Web/sites/(?P<name>[A-Za-z0-9-]{1,60})(?:/slots/(?P<slot>[A-Za-z0-9-]{1,59}))?/?$",
    re.IGNORECASE,
)


class SiteId(NamedTuple):
    subscription: str
    resource_group: str
    name: str
    slot: str | None

    @property
    def app_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Web/sites/{self.name}")


def parse_site_id(resource_id: str) -> SiteId:
    if not isinstance(resource_id, str) or len(resource_id) > 512:
        raise ValueError("not an App Service resource id")
    m = _SITE.match(resource_id.strip())
    if not m:
        raise ValueError(f"not an App Service resource id: {resource_id[:200]!r}")
    return SiteId(m["sub"], m["rg"], m["name"], m["slot"])

"""The Microsoft.Web api-version Healer sends is the one it pins (shared.webapps.WEB_API_VERSION), on the wire."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.config import Settings
from shared.webapps import WEB_API_VERSION, web_client
from tests.conftest import SHOP

pytestmark = pytest.mark.integration


def test_requests_carry_the_pinned_api_version(healer_env):
    sent: list[str] = []
    client = web_client(Settings(), SHOP.split("/")[2])
    with pytest.raises(ResourceNotFoundError):    # the ARM stand-in checked the api-version, then found no site
        client.web_apps.get(SHOP.split("/")[4], SHOP.split("/")[-1],
                            raw_request_hook=lambda pipeline_request: sent.append(pipeline_request.http_request.url))
    assert parse_qs(urlsplit(sent[0]).query)["api-version"] == [WEB_API_VERSION]

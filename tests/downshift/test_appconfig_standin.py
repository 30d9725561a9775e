"""The App Configuration stand-in, driven by the real azure-appconfiguration client over HTTPS."""
from __future__ import annotations

import httpx
import pytest
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting, ResourceReadOnlyError
from azure.core import MatchConditions
from azure.core.credentials import AccessToken
from azure.core.exceptions import (ClientAuthenticationError, ResourceExistsError, ResourceModifiedError,
                                   ResourceNotFoundError)

from standins.appconfig import start_appconfig
from standins.harness import make_test_ca, scratch_dir
from standins.tokens import mint, normalize_audience

SECRET = "test-only-appconfig-secret-0123456789abcdef"
KEY = "ai:model"


class HS256Credential:
    """A TokenCredential minting HS256 JWTs for whatever scope the client asks for (like Entra would)."""

    def __init__(self, secret: str = SECRET, audience: str | None = None):
        self.secret, self.audience, self.scopes = secret, audience, []

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        audience = self.audience or normalize_audience(scopes[0])
        token, expires_on = mint(self.secret, audience, object_id="healer-test", app_id="healer-test")
        return AccessToken(token, expires_on)


@pytest.fixture(scope="module")
def standin():
    work = scratch_dir("healer-appconfig-")
    ca = make_test_ca(work)
    server = start_appconfig(work, ca, SECRET, page_size=3)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(standin):
    standin.reset()
    return standin


def client(store, credential=None) -> AzureAppConfigurationClient:
    return AzureAppConfigurationClient(store.endpoint, credential or HS256Credential(),
                                       connection_verify=str(store.ca_path))


def test_bearer_token_audience_is_what_the_sdk_asks_for(store):
    cred = HS256Credential()
    c = client(store, cred)
    c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o"))
    assert cred.scopes and cred.scopes[0] == ("https://appconfig.azure.com/.default",)
    assert c.get_configuration_setting(KEY).value == "gpt-4o"


@pytest.mark.parametrize("credential", [HS256Credential(audience="https://management.azure.com/"),
                                        HS256Credential(secret="not-the-secret")])
def test_bad_tokens_are_refused(store, credential):
    with pytest.raises(ClientAuthenticationError):
        client(store, credential).get_configuration_setting(KEY)


def test_no_token_and_no_api_version_are_refused(store):
    r = httpx.get(f"{store.endpoint}/kv/{KEY}?api-version=2023-11-01", verify=str(store.ca_path))
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    token, _ = mint(SECRET, "https://azconfig.io", object_id="o", app_id="a")
    r = httpx.get(f"{store.endpoint}/kv/{KEY}", headers={"Authorization": f"Bearer {token}"},
                  verify=str(store.ca_path))
    assert r.status_code == 400 and r.json()["name"] == "api-version"


def test_stale_etag_gives_412_resource_modified(store):
    c = client(store)
    first = c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o", tags={"managed-by": "healer"}))
    assert first.etag
    read = c.get_configuration_setting(KEY)
    assert read.etag == first.etag
    # Healer writes with the ETag it read: succeeds and the ETag changes.
    read.value = "gpt-4o-mini"
    second = c.set_configuration_setting(read, match_condition=MatchConditions.IfNotModified)
    assert second.value == "gpt-4o-mini" and second.etag != first.etag
    # A write with the old ETag is refused with 412 → ResourceModifiedError, and the value is unchanged.
    stale = ConfigurationSetting(key=KEY, value="gpt-4o", etag=first.etag)
    with pytest.raises(ResourceModifiedError):
        c.set_configuration_setting(stale, match_condition=MatchConditions.IfNotModified)
    assert c.get_configuration_setting(KEY).value == "gpt-4o-mini"
    # ... also when a human changed the value behind Healer's back.
    current = c.get_configuration_setting(KEY)
    store.human_edit(KEY, value="gpt-4.1")
    current.value = "gpt-4o"
    with pytest.raises(ResourceModifiedError):
        c.set_configuration_setting(current, match_condition=MatchConditions.IfNotModified)
    assert c.get_configuration_setting(KEY).value == "gpt-4.1"
    ops = [(r["op"], r["status"]) for r in store.requests()]
    assert ops.count(("PUT", 412)) == 2 and ("HUMAN-EDIT", 200) in ops


def test_conditional_get_add_and_delete(store):
    c = client(store)
    added = c.add_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o"))
    with pytest.raises(ResourceExistsError):  # If-None-Match: * on an existing key → 412
        c.add_configuration_setting(ConfigurationSetting(key=KEY, value="other"))
    # If-None-Match with the current ETag → 304 → the client returns None ("not modified").
    assert c.get_configuration_setting(KEY, etag=added.etag, match_condition=MatchConditions.IfModified) is None
    assert c.get_configuration_setting(KEY, etag="nope", match_condition=MatchConditions.IfModified).value == "gpt-4o"
    with pytest.raises(ResourceModifiedError):
        c.delete_configuration_setting(KEY, etag="stale", match_condition=MatchConditions.IfNotModified)
    deleted = c.delete_configuration_setting(KEY, etag=added.etag, match_condition=MatchConditions.IfNotModified)
    assert deleted.value == "gpt-4o"
    assert c.delete_configuration_setting(KEY) is None  # 204 for a missing key
    with pytest.raises(ResourceNotFoundError):
        c.get_configuration_setting(KEY)


def test_labels_are_separate_key_values_and_tags_round_trip(store):
    c = client(store)
    tags = {"managed-by": "healer", "reason": "budget 85%"}
    c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o"))
    c.set_configuration_setting(ConfigurationSetting(key=KEY, label="tenant-a", value="gpt-4o-mini", tags=tags,
                                                     content_type="text/plain"))
    c.set_configuration_setting(ConfigurationSetting(key=KEY, label="tenant-b", value="gpt-4o"))
    assert c.get_configuration_setting(KEY).value == "gpt-4o"
    a = c.get_configuration_setting(KEY, label="tenant-a")
    assert (a.value, a.label, a.tags, a.content_type) == ("gpt-4o-mini", "tenant-a", tags, "text/plain")
    with pytest.raises(ResourceNotFoundError):
        c.get_configuration_setting(KEY, label="tenant-c")
    # Filters: one label, the null label, a prefix, several exact values, tags.
    assert [s.label for s in c.list_configuration_settings(key_filter=KEY, label_filter="tenant-a")] == ["tenant-a"]
    assert [s.label for s in c.list_configuration_settings(key_filter=KEY, label_filter="\0")] == [None]
    assert {s.label for s in c.list_configuration_settings(label_filter="tenant-*")} == {"tenant-a", "tenant-b"}
    assert {s.label for s in c.list_configuration_settings(label_filter="tenant-b,\0")} == {"tenant-b", None}
    assert [s.label for s in c.list_configuration_settings(tags_filter=["managed-by=healer"])] == ["tenant-a"]
    assert {s.label for s in c.list_configuration_settings(key_filter="ai:*")} == {None, "tenant-a", "tenant-b"}
    assert list(c.list_configuration_settings(key_filter="other")) == []
    assert [s.key for s in c.list_configuration_settings(key_filter="ai:model", label_filter="tenant-a",
                                                         fields=["key"])] == [KEY]


def test_listing_pages_through_next_links(store):
    c = client(store)  # the stand-in was started with a page size of 3
    for i in range(8):
        c.set_configuration_setting(ConfigurationSetting(key=f"app/{i}", label="t", value=str(i)))
    assert [s.value for s in c.list_configuration_settings(key_filter="app/*")] == [str(i) for i in range(8)]


def test_locked_key_values_refuse_writes(store):
    c = client(store)
    setting = c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o"))
    locked = c.set_read_only(setting)
    assert locked.read_only
    with pytest.raises(ResourceReadOnlyError):
        c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o-mini"))
    c.set_read_only(c.get_configuration_setting(KEY), read_only=False)
    assert c.set_configuration_setting(ConfigurationSetting(key=KEY, value="gpt-4o-mini")).value == "gpt-4o-mini"


def test_connection_string_hmac_auth(store):
    c = AzureAppConfigurationClient.from_connection_string(store.connection_string,
                                                           connection_verify=str(store.ca_path))
    c.set_configuration_setting(ConfigurationSetting(key="k/with spaces & ?", label="l", value="v"))
    assert c.get_configuration_setting("k/with spaces & ?", label="l").value == "v"
    wrong = store.connection_string.rsplit("Secret=", 1)[0] + "Secret=" + "A" * 44
    with pytest.raises(ClientAuthenticationError):
        AzureAppConfigurationClient.from_connection_string(
            wrong, connection_verify=str(store.ca_path)).get_configuration_setting("k/with spaces & ?", label="l")


def test_control_api_seeds_and_simulates_a_pin(store):
    store.seed([{"key": KEY, "label": "tenant-a", "value": "gpt-4o", "tags": {"managed-by": "healer"}}])
    store.human_edit(KEY, label="tenant-a", locked=True)
    c = client(store)
    s = c.get_configuration_setting(KEY, label="tenant-a")
    assert s.read_only and s.value == "gpt-4o" and s.tags == {"managed-by": "healer"}
    assert store.dump()[0]["locked"] is True

"""One transport configuration for the Azure SDK clients: no proxy scan unless a proxy is configured, one
connection pool per process, clients cached per process and keyed on the settings that select them."""
from __future__ import annotations

import pytest

from shared import storage, transport
from shared.config import Settings


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    for name in (*transport.PROXY_VARIABLES, *(n.lower() for n in transport.PROXY_VARIABLES)):
        monkeypatch.delenv(name, raising=False)
    transport.reset()
    yield
    transport.reset()


def test_environment_is_not_consulted_per_call_unless_a_proxy_is_set(monkeypatch):
    session = transport.transport().session
    assert session.trust_env is False                    # requests skips its os.environ proxy scan on every call
    assert transport.transport().session is session      # one pool for every client
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    with_proxy = transport.transport().session
    assert with_proxy is not session and with_proxy.trust_env is True   # a proxy setting is honoured, NO_PROXY too


def test_a_custom_ca_bundle_is_still_trusted_without_the_environment_scan(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert transport.transport().connection_config.verify == str(bundle)


@pytest.mark.integration
def test_storage_clients_are_cached_per_setting_and_reset(storage_env, monkeypatch):
    s = Settings()
    q = storage.queue(s, "healer-cache-test")
    assert storage.queue(Settings(), "healer-cache-test") is q
    t = storage.table(s, "cache")
    monkeypatch.setenv("HEALER_TABLE_PREFIX", storage_env["HEALER_TABLE_PREFIX"] + "b")
    assert storage.table(Settings(), "cache") is not t   # another prefix, another table
    q.send_message(b"x")                                  # works over the shared transport
    transport.reset()
    assert storage.queue(Settings(), "healer-cache-test") is not q

"""Servers the rollback tests need beyond the session's LocalAzure: App Configuration and Log Analytics."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def rollback_servers(local_azure, workdir):
    from standins.appconfig import start_appconfig
    from standins.log_analytics import start_log_analytics
    started = []
    try:
        ac = start_appconfig(workdir, local_azure.ca, local_azure.secret)
        started.append(ac)
        la = start_log_analytics(workdir, local_azure.ca, local_azure.secret)
        started.append(la)
        yield {"ac": ac, "la": la}
    finally:
        for s in reversed(started):
            s.stop()


@pytest.fixture
def appconfig(rollback_servers):
    rollback_servers["ac"].reset()
    return rollback_servers["ac"]


@pytest.fixture(scope="session")
def site_app_server(workdir):
    from standins.harness import free_port, start_python_server
    port = free_port()
    server = start_python_server("site-app", "standins.site_app", ["--port", str(port)], port, workdir)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def site_app(site_app_server):
    """The app's own front end: set instances (id -> build) and routes (path -> status/body)."""
    import httpx

    def configure(**state):
        httpx.put(site_app_server + "/_standin/app", json=state, timeout=5).raise_for_status()
    configure(instances={}, routes={}, ignore_affinity=False)
    configure.url = site_app_server
    return configure

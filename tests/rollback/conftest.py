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

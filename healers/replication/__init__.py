"""Replication-consistency healer for geo-replicated Azure Container Registry.

Modules: `events` (parse incoming ACR events), `core` (pure wait/decision logic), `registry_client` (regional
manifest/tag probes), `acr_auth` (ACR token exchange and challenge following), `events_out` (outcome events).
"""

"""Replication-consistency healer for geo-replicated Azure Container Registry.

Modules: `events` (parse incoming ACR events), `core` (pure wait/decision logic), `probe_states` (per-replica probe
states, throttling, DNS), `views` (payloads, stalls, storage forms), `topology` (replicas from ARM), `waits` (waits
on demand), `registry_client` (regional manifest/blob/tag probes), `acr_auth` (ACR token exchange and challenge
following), `events_out` (outcome events).
"""

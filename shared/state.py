"""Durable records in Azure Table storage: insert-if-absent, ETag-guarded replace, and leases.

Each record is one entity whose JSON `data` property holds the payload; a few top-level properties may be added
for filtering. Every write that depends on what was read is guarded by the ETag read, so two Healer instances
never both win.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterator

from shared.config import Settings
from shared.storage import table

_BAD_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class Conflict(Exception):
    """Someone else changed or created the record first (ETag mismatch / entity exists)."""


def safe_key(text: str) -> str:
    """A PartitionKey/RowKey for arbitrary text: readable where possible, unique always."""
    cleaned = _BAD_KEY_CHARS.sub(":", text.lower())
    if len(cleaned) <= 200:
        return cleaned
    return cleaned[:150] + "~" + hashlib.sha256(text.lower().encode()).hexdigest()[:32]


@dataclass
class Record:
    partition: str
    row: str
    data: dict[str, Any]
    etag: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)


class Store:
    """One Healer table."""

    def __init__(self, settings: Settings, name: str):
        self._client = table(settings, name)

    # ------------------------------------------------------------------------------------------ reads
    def get(self, partition: str, row: str) -> Record | None:
        from azure.core.exceptions import ResourceNotFoundError
        try:
            entity = self._client.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        return _to_record(entity)

    def query(self, partition: str, *, limit: int = 100, row_from: str | None = None,
              filters: dict[str, str] | None = None) -> Iterator[Record]:
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": partition}
        if row_from:
            clauses.append("RowKey ge @rk")
            params["rk"] = row_from
        for i, (col, value) in enumerate((filters or {}).items()):
            if not col.isidentifier():
                raise ValueError(f"bad column {col!r}")
            clauses.append(f"{col} eq @f{i}")
            params[f"f{i}"] = value
        entities = self._client.query_entities(" and ".join(clauses), parameters=params, results_per_page=limit)
        for n, entity in enumerate(entities):
            if n >= limit:
                return
            yield _to_record(entity)

    def get_many(self, partition: str, rows: list[str]) -> dict[str, Record]:
        """The records among `rows` (at most 10) of one partition, in one round trip."""
        rows = list(dict.fromkeys(rows))[:10]
        params: dict[str, Any] = {"pk": partition, **{f"r{i}": r for i, r in enumerate(rows)}}
        where = " or ".join(f"RowKey eq @r{i}" for i in range(len(rows)))
        found = self._client.query_entities(f"PartitionKey eq @pk and ( {where} )", parameters=params)  # spaced: the SDK substitutes @names between spaces
        return {rec.row: rec for rec in map(_to_record, found)}

    # ------------------------------------------------------------------------------------------ writes
    def insert(self, record: Record) -> Record:
        """Insert if absent; raises Conflict when the entity already exists."""
        from azure.core.exceptions import ResourceExistsError
        try:
            meta = self._client.create_entity(_to_entity(record))
        except ResourceExistsError as exc:
            raise Conflict(f"{record.partition}/{record.row} exists") from exc
        record.etag = meta.get("etag")
        return record

    def replace(self, record: Record) -> Record:
        """Replace guarded by the record's ETag (insert-if-absent when it has none)."""
        if record.etag is None:
            return self.insert(record)
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode
        try:
            meta = self._client.update_entity(_to_entity(record), mode=UpdateMode.REPLACE, etag=record.etag,
                                              match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Conflict(f"{record.partition}/{record.row} changed") from exc
        record.etag = meta.get("etag")
        return record

    def upsert(self, record: Record) -> Record:
        from azure.data.tables import UpdateMode
        meta = self._client.upsert_entity(_to_entity(record), mode=UpdateMode.REPLACE)
        record.etag = meta.get("etag")
        return record

    def delete(self, partition: str, row: str) -> None:
        self._client.delete_entity(partition, row)

    def purge(self, partition: str, *, older_than: dt.datetime | None = None,
              keep: Callable[[Record], bool] = lambda r: False) -> int:
        """Delete a partition's records last written before `older_than` (all, when None), except those `keep`
        says to keep, in transactions of up to 100. Returns how many were deleted."""
        query, params = "PartitionKey eq @pk", {"pk": partition}
        if older_than is not None:
            query, params = query + " and Timestamp lt @t", {**params, "t": older_than}
        doomed = [e for e in self._client.query_entities(query, parameters=params, select=["PartitionKey", "RowKey",
                                                                                            "data"])
                  if not keep(_to_record(e))]
        for i in range(0, len(doomed), 100):
            self._client.submit_transaction([("delete", e) for e in doomed[i:i + 100]])
        return len(doomed)


def _to_entity(record: Record) -> dict[str, Any]:
    entity = {"PartitionKey": record.partition, "RowKey": record.row,
              "data": json.dumps(record.data, default=_json_default, separators=(",", ":"))}
    entity.update(record.columns)
    return entity


def _to_record(entity: Any) -> Record:
    columns = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "data")}
    etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
    return Record(entity["PartitionKey"], entity["RowKey"], json.loads(entity.get("data") or "{}"), etag, columns)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot store {type(value).__name__}")


# ---------------------------------------------------------------------------------------------- leases

@dataclass
class Lease:
    record: Record
    owner: str


def acquire_lease(store: Store, partition: str, row: str, owner: str, seconds: int,
                  now: dt.datetime) -> Lease | None:
    """Take the record's lease if it is free or expired (or already ours). None when someone else holds it.

    The lease lives in the record itself (`lease.owner`, `lease.until`), so taking it and updating the
    record's state are guarded by the same ETag.
    """
    record = store.get(partition, row) or Record(partition, row, {})
    lease = record.data.get("lease") or {}
    until = lease.get("until")
    if lease.get("owner") not in (None, owner) and until and dt.datetime.fromisoformat(until) > now:
        return None
    record.data["lease"] = {"owner": owner, "until": (now + dt.timedelta(seconds=seconds)).isoformat()}
    try:
        store.replace(record)
    except Conflict:
        return None
    return Lease(record, owner)


def save_under_lease(store: Store, lease: Lease) -> None:
    """Write the leased record (ETag-guarded). Raises Conflict if the lease was lost meanwhile."""
    store.replace(lease.record)


def renew_lease(store: Store, lease: Lease, seconds: int, now: dt.datetime) -> None:
    """Heartbeat: push the lease's expiry out while long work (an ARM long-running operation) goes on."""
    lease.record.data["lease"] = {"owner": lease.owner, "until": (now + dt.timedelta(seconds=seconds)).isoformat()}
    store.replace(lease.record)


def release_lease(store: Store, lease: Lease) -> None:
    lease.record.data["lease"] = None
    try:
        store.replace(lease.record)
    except Conflict:
        pass  # someone took it over after expiry; nothing of ours to release

"""How values are keyed and written in the tables: shard keys, timestamps, wire-format items."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from tap_contract import tables

_deserializer = TypeDeserializer()


def stable_shard(value: str, shards: int) -> int:
    """Deterministic shard in ``0..shards-1`` (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(value.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def merchant_shard_key(merchant_id: str, transaction_id: str, shards: int) -> str:
    return f"{merchant_id}#{stable_shard(transaction_id, shards)}"


def pending_shard_key(transaction_id: str) -> str:
    """The record's partition of the sparse pending index while it is RECEIVED."""
    return f"pending#{stable_shard(transaction_id, tables.PENDING_INDEX_SHARDS)}"


def pending_shards() -> list[str]:
    return [f"pending#{shard}" for shard in range(tables.PENDING_INDEX_SHARDS)]


def iso_millis(moment: datetime) -> str:
    """The table's timestamp format: UTC, millisecond precision, ``Z`` suffix."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def deserialize_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """Turn a wire-format item (as found in cancellation reasons) into plain Python values."""
    if not item:
        return None
    return {name: _deserializer.deserialize(value) for name, value in item.items()}

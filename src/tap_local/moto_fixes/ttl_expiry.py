"""Time to live for moto's tables: delete items whose TTL attribute has passed, as DynamoDB does.

Why this exists: moto 5.2.5 records a table's TTL setting but never deletes an expired item, so a
long local run keeps every short-lived item for ever. Ours has several per transaction (the
one-minute velocity buckets expire three minutes later), and they were a quarter of the emulator's
growth per transaction.

What DynamoDB does (Developer Guide, "Using time to live"): an item whose TTL attribute is a
Number of epoch seconds in the past is deleted by a background process, typically within a few
days and with no guarantee of when; until then reads still return it. Items whose attribute is
missing or not a Number are never deleted. Deleting them promptly, as `delete_expired` does, is
one of the behaviours DynamoDB allows, so code that works here works against AWS. The emulator
runs it from a timer (`tap_local.emulator`); it is not a patch and changes no moto code.

Upstream note (for a moto issue): "moto never expires items by TTL; an opt-in sweep (delete items
whose TTL attribute is a Number <= now, recording stream REMOVE events) would let long-running
local stacks stay bounded."
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table

from tap_local.moto_fixes.table_items import items_by_hash_key, partitions


def expired(item: Item, attribute: str, now: float) -> bool:
    value = item.attrs.get(attribute)
    if value is None or value.type != "N":
        return False  # DynamoDB ignores items whose TTL attribute is missing or not a Number
    try:
        return Decimal(str(value.value)) <= Decimal(str(now))
    except InvalidOperation:
        return False


def _items(table: Table) -> list[Item]:
    """Every item, unsorted (Table.all_items sorts the whole table, which a sweep does not need)."""
    if table.range_key_attr is None:
        return list(items_by_hash_key(table).values())
    return [item for partition in partitions(table).values() for item in partition.values()]


def delete_expired_from(table: Table, now: float) -> int:
    """Delete `table`'s expired items; how many."""
    if table.ttl.get("TimeToLiveStatus") != "ENABLED" or not table.ttl.get("AttributeName"):
        return 0
    attribute = table.ttl["AttributeName"]
    doomed = [item for item in _items(table) if expired(item, attribute, now)]
    for item in doomed:
        table.delete_item(item.hash_key, item.range_key)
        if item.range_key is not None and not table.items.get(item.hash_key):
            table.items.pop(item.hash_key, None)  # no empty partition left behind
    return len(doomed)


def delete_expired(now: float | None = None) -> int:
    """Delete the expired items of every table with TTL enabled, in every account and region this
    process emulates; how many. The caller must keep every request out meanwhile."""
    moment = time.time() if now is None else now
    deleted = 0
    # By account, then region (iter_backends would type each backend as moto's BaseBackend).
    for regions in dynamodb_backends.values():
        for backend in regions.values():
            for table in list(backend.tables.values()):
                deleted += delete_expired_from(table, moment)
    return deleted

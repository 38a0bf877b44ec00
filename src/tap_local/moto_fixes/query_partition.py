"""moto's base-table Query reading one partition, not sorting the whole table.

Why this exists: moto 5.2.5's ``Table.query`` without an index builds its candidates as
``[item for item in self.all_items() if item.hash_key == hash_key]``, and ``all_items`` collects and
sorts every item of the table. A Query for one ``transaction_id`` (what GET /transaction/{id} does)
therefore costs O(n log n) in the items stored: at 100,000 transactions each GET sorts the table.

The correction: while a base-table Query with a partition key runs, ``all_items`` of that table
returns only that partition's items (sorted as moto sorts them). moto filters the candidates by
that very partition key next, so the result is the same list; index queries, scans and every other
caller of ``all_items`` are untouched. `tests/unit/local/test_moto_fixes.py` compares results with
unpatched moto, pagination included.

Upstream note (for a moto issue): "Table.query on the base table filters all_items() (every item,
sorted) by hash key; reading self.items[hash_key] makes a partition query O(partition)."
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table

from tap_local.moto_fixes.patching import Patch, Patches
from tap_local.moto_fixes.table_items import items_by_hash_key, partitions

_partition_scope = threading.local()


def _all_items(self: Table) -> list[Item]:
    scope = getattr(_partition_scope, "partition", None)
    if scope is None or scope[0] is not self:
        return _ALL_ITEMS.original(self)
    if not self.range_key_attr:
        item = items_by_hash_key(self).get(scope[1])
        return [] if item is None else [item]
    partition = partitions(self).get(scope[1])
    if partition is None:
        return []
    return [partition[range_key] for range_key in sorted(partition)]  # each item under its range key


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _QUERY.original(self, hash_key, *args, **kwargs)
    _partition_scope.partition = (self, hash_key)
    try:
        return _QUERY.original(self, hash_key, *args, **kwargs)
    finally:
        _partition_scope.partition = None


_QUERY = Patch(Table, "query", _query)
_ALL_ITEMS = Patch(Table, "all_items", _all_items)
_PATCHES = Patches((_QUERY, _ALL_ITEMS))


def install() -> None:
    _PATCHES.install()


def uninstall() -> None:
    _PATCHES.uninstall()

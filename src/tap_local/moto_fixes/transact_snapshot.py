"""moto's TransactWriteItems with a rollback snapshot of the items it touches, not of whole tables.

Why this exists: moto 5.2.5's ``DynamoDBBackend.transact_write_items`` deep-copies every table a
transaction names, on every call, so that it can put the old table back if the transaction is
cancelled. The cost of each call then grows with everything the table holds: a loop of 2-Put
transactions falls from ~270/s to ~37/s over 1,500 calls while the process grows from 140 MB to
1.4 GB. Our validator and fraud detector each make one transaction per card transaction on the
ever-growing transactions table, so the local pipeline slowed down and swelled with every
transaction it stored (issue 9).

The correction, kept as narrow as possible so that every other line of moto still runs:

* before the call, deep-copy only the items the transaction addresses (one per action: the
  ``Item`` key of a Put, the ``Key`` of the others), or note that they were absent;
* during the call, moto's own whole-table ``copy.deepcopy`` returns the live table (the copy is
  then a no-op, and so is moto's "restore" of it);
* if the call raises, put exactly those items back, delete the ones that did not exist, and drop
  any stream records the call appended, which is what restoring the table copy did. One deliberate
  difference: released moto does not roll back when it refuses an action holding two operations
  (that check sits outside its rollback), and keeps the writes of the actions before it; here
  nothing stays, as in DynamoDB, which writes nothing of a refused transaction.

Nothing else a transaction can change lives on the table: indexes are computed from ``items`` on
read, and moto never changes a table's schema inside a transaction. `tests/unit/local/
test_moto_fixes.py` proves rollback gives the same table as unpatched moto, for
each way a transaction can fail.

Upstream note (for a moto issue): "transact_write_items deep-copies every table it touches on
every call (``original_table_state``), making each call O(table size) in time and allocating a
full table copy per call; snapshotting only the addressed items (at most 100 per transaction)
keeps rollback exact and the cost constant."
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from tap_local.moto_fixes.patching import Patch, Patches
from tap_local.moto_fixes.table_items import items_by_hash_key, partitions

_real_deepcopy = copy.deepcopy
_in_patched_transaction = threading.local()


class _CopyModuleWithoutTableSnapshots:
    """Stands in for the ``copy`` module inside ``moto.dynamodb.models``.

    Only while a patched transaction runs, and only for a ``Table``, ``deepcopy`` returns the
    object itself; every other use of ``copy`` in that module is passed through unchanged.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table) and getattr(_in_patched_transaction, "active", False):
            return value
        return _real_deepcopy(value, memo)


@dataclass
class _SavedItem:
    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    item: Item | None  # a deep copy of the item before the call; None when there was none
    hash_key_existed: bool


@dataclass
class TouchedItemsSnapshot:
    """The items a transaction addresses, as they were before it ran."""

    saved: list[_SavedItem]
    stream_lengths: dict[int, tuple[Table, int]]

    @classmethod
    def take(cls, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> TouchedItemsSnapshot:
        saved: list[_SavedItem] = []
        streams: dict[int, tuple[Table, int]] = {}
        for action in transact_items:
            for operation in action.values():
                table_name = (operation or {}).get("TableName")
                table = backend.tables.get(table_name) if isinstance(table_name, str) else None
                key = _addressed_key(table, operation) if table is not None else None
                if table is None or key is None:
                    continue  # moto refuses this action before it can write anything
                hash_key, range_key = key
                # Before get_item: on a table with a sort key, its lookup creates an empty partition.
                hash_key_existed = hash_key in table.items
                current = table.get_item(hash_key, range_key)
                saved.append(
                    _SavedItem(
                        table,
                        hash_key,
                        range_key,
                        _real_deepcopy(current) if current is not None else None,
                        hash_key_existed,
                    )
                )
                if table.stream_shard is not None:
                    streams[id(table)] = (table, len(table.stream_shard.items))
        return cls(saved, streams)

    def restore(self) -> None:
        # Reversed, so that when one item is addressed twice (moto then refuses the transaction)
        # the state from before the first action is the one that stays.
        for entry in reversed(self.saved):
            if entry.range_key is None:  # a table without a sort key
                by_hash_key = items_by_hash_key(entry.table)
                if entry.item is None:
                    by_hash_key.pop(entry.hash_key, None)
                else:
                    by_hash_key[entry.hash_key] = entry.item
                continue
            items = partitions(entry.table)
            if entry.item is None:
                if entry.hash_key in items:
                    items[entry.hash_key].pop(entry.range_key, None)
                    if not entry.hash_key_existed and not items[entry.hash_key]:
                        del items[entry.hash_key]
            else:
                items[entry.hash_key][entry.range_key] = entry.item
        for table, length in self.stream_lengths.values():
            assert table.stream_shard is not None
            del table.stream_shard.items[length:]


def _addressed_key(table: Table, operation: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    attributes = operation.get("Item") if "Item" in operation else operation.get("Key")
    if not isinstance(attributes, dict) or table.hash_key_attr not in attributes:
        return None
    range_key = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attributes:
            return None
        range_key = DynamoType(attributes[table.range_key_attr])
    return DynamoType(attributes[table.hash_key_attr]), range_key


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    snapshot = TouchedItemsSnapshot.take(self, transact_items)
    _in_patched_transaction.active = True
    try:
        _TRANSACT_WRITE_ITEMS.original(self, transact_items)
    except BaseException:
        snapshot.restore()
        raise
    finally:
        _in_patched_transaction.active = False


_TRANSACT_WRITE_ITEMS = Patch(DynamoDBBackend, "transact_write_items", _transact_write_items)
_PATCHES = Patches(
    (
        _TRANSACT_WRITE_ITEMS,
        # the ``copy`` module as moto.dynamodb.models sees it; see the class docstring
        Patch(dynamodb_models, "copy", _CopyModuleWithoutTableSnapshots()),
    )
)


def install() -> None:
    """Patch moto in this process (idempotent). Call before the first transaction."""
    _PATCHES.install()


def uninstall() -> None:
    """Undo `install` (the rollback tests compare patched and unpatched moto in one process)."""
    _PATCHES.uninstall()

"""moto's stored items sharing their attribute names and short repeated values.

Why this exists: moto 5.2.5 keeps every item as a dict of ``DynamoType`` objects built from the
request's parsed JSON, so each stored item holds its own copy of every attribute name and of
every value, however often the same names (``transaction_id``, ``status``, ...) and values
(``CLEARED``, ``USD``, a merchant id) repeat across items. That was about a fifth of an item's
memory, and a long local run stores several items per transaction.

The correction: after moto builds an ``Item``, its attribute names and its string or number values
of at most ``SHARED_VALUE_MAX_LENGTH`` characters are interned (``sys.intern``), so equal strings
are one object. Values and their types are unchanged (an interned string is an equal ``str``);
longer values, which are mostly unique ids and fingerprints, are left alone, since interning
unique strings only adds an entry to the interpreter's table.

Upstream note (for a moto issue): "Item stores fresh copies of attribute-name strings per item;
interning names (and short values) cuts per-item memory by about 20 % for typical items."
"""

from __future__ import annotations

import sys
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item

from tap_local.moto_fixes.patching import Patch

SHARED_VALUE_MAX_LENGTH = 20
_SCALAR_TYPES = frozenset({"S", "N"})


def _share(value: DynamoType) -> None:
    if (
        value.type in _SCALAR_TYPES
        and type(value.value) is str
        and len(value.value) <= SHARED_VALUE_MAX_LENGTH
    ):
        value.value = sys.intern(value.value)


def _init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    _PATCH.original(self, hash_key, range_key, attrs)
    shared = {}
    for name, value in self.attrs.items():
        _share(value)
        shared[sys.intern(name)] = value
    # dict's own methods: LimitedSizeDict.__setitem__ re-checks the item size, already checked.
    dict.clear(self.attrs)
    dict.update(self.attrs, shared)


_PATCH = Patch(Item, "__init__", _init)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    _PATCH.uninstall()

"""moto's ``Table.items`` with the type of what it holds, for the corrections that read or restore it.

moto 5.2.5 creates it as ``defaultdict(dict)`` under a bare ``# type: ignore``, so its declared type
says nothing reliable: mypy infers a dict of dicts or Any, depending on the order it checks modules
in. What it holds is fixed by the table's key schema (moto's own comment on it: ``[hash: DynamoType]
or [hash: [range: DynamoType]]``), and each function below is for one of the two schemas.
"""

from __future__ import annotations

from typing import cast

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table


def items_by_hash_key(table: Table) -> dict[DynamoType, Item]:
    """A table without a sort key: each hash key's item."""
    return cast("dict[DynamoType, Item]", table.items)


def partitions(table: Table) -> dict[DynamoType, dict[DynamoType, Item]]:
    """A table with a sort key: each hash key's partition, its items by range key."""
    return cast("dict[DynamoType, dict[DynamoType, Item]]", table.items)

"""moto without a reference to every DynamoDB item and SQS message it ever created.

Why this exists: every moto model derives from ``BaseModel``, whose ``__new__`` appends each new
instance to its class's ``instances_tracked`` list, kept until the next ``/moto-api/reset``. The
list only feeds the moto server's dashboard (``/moto-api/data.json``). For DynamoDB's ``Item`` and
SQS's ``Message`` it means nothing moto ever creates is freed: not deleted or expired items, not
the item copies moto makes on every UpdateItem and every transaction, not received and deleted
messages. In the local pipeline that was most of the emulator's growth, about 15 KB per
transaction (`bench/soak.py` measures it; `tests/unit/local/test_moto_fixes.py` proves the
instances are freed).

The correction: instances of those two classes are not tracked; every other model still is, so
the dashboard lists everything but items and messages.

Upstream note (for a moto issue): "BaseModel tracks every instance in instances_tracked for the
dashboard, so high-churn models (dynamodb Item, sqs Message, including transient deep copies) are
never garbage-collected in a long-running server; tracking them weakly (weakref.WeakSet), or not at
all, bounds memory."
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.common_models import BaseModel
from moto.dynamodb.models.dynamo_type import Item
from moto.sqs.models import Message

UNTRACKED: frozenset[type] = frozenset({Item, Message})

_original_new: Callable[..., Any] | None = None


def _new(cls: type, *args: Any, **kwargs: Any) -> Any:
    assert _original_new is not None
    if cls in UNTRACKED:
        return object.__new__(cls)  # what BaseModel.__new__ does, without the append
    return _original_new(cls, *args, **kwargs)


def install() -> None:
    global _original_new
    if _original_new is None:
        _original_new = BaseModel.__new__
        BaseModel.__new__ = _new  # type: ignore[method-assign,assignment]  # the point of this module


def uninstall() -> None:
    global _original_new
    if _original_new is not None:
        BaseModel.__new__ = _original_new  # type: ignore[method-assign]
        _original_new = None

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

from typing import Any

from moto.core.common_models import BaseModel
from moto.dynamodb.models.dynamo_type import Item
from moto.sqs.models import Message

from tap_local.moto_fixes.patching import Patch

UNTRACKED: frozenset[type] = frozenset({Item, Message})


def _new(cls: type, *args: Any, **kwargs: Any) -> Any:
    if cls in UNTRACKED:
        return object.__new__(cls)  # what BaseModel.__new__ does, without the append
    return _PATCH.original(cls, *args, **kwargs)


# getattr(BaseModel, "__new__") is the plain function BaseModel defines (the implicit staticmethod is
# unwrapped), and setattr of a plain function as __new__ works: uninstall puts back that very object.
_PATCH = Patch(BaseModel, "__new__", _new)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    _PATCH.uninstall()

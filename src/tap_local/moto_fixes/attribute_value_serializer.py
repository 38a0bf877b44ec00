"""moto's JSON response serializer writing DynamoDB's scalar attribute values directly.

Why this exists: moto 5.2.5 serializes every response through botocore's output shapes. A DynamoDB
``AttributeValue`` is a structure of ten optional members (S, N, B, SS, NS, BS, M, L, NULL, BOOL),
and for each one the serializer looks the member up under several spellings, so every attribute
of every item returned costs about ten lookups. Responses that carry items (BatchGetItem, Query,
GetItem, UpdateItem's attributes) spent about a third of the local emulator's time there.

The correction: an ``AttributeValue`` holding exactly one scalar member, S/N (str), BOOL/NULL
(bool) or SS/NS (list of str), is written as the same one-member object the serializer would have
built; anything else (B, BS, M, L, or an unexpected shape) goes through moto's serializer as
before. `tests/unit/local/test_moto_fixes.py` compares whole responses both ways.

Upstream note (for a moto issue): "Serializing DynamoDB AttributeValue through the generic
structure path costs ~10 member lookups per attribute; a fast path for single scalar members
(S/N/BOOL/NULL/SS/NS) cuts item-heavy responses' serialization by several times."
"""

from __future__ import annotations

from typing import Any

from moto.core.serialize import BaseJSONSerializer

from tap_local.moto_fixes.patching import Patch

_STRING_MEMBERS = frozenset({"S", "N"})
_BOOL_MEMBERS = frozenset({"BOOL", "NULL"})
_STRING_SET_MEMBERS = frozenset({"SS", "NS"})


def _scalar_attribute_value(value: Any) -> dict[str, Any] | None:
    """The wire form of a one-member scalar AttributeValue, or None when moto must serialize it."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((member, inner),) = value.items()
    if member in _STRING_MEMBERS and type(inner) is str:
        return {member: inner}
    if member in _BOOL_MEMBERS and type(inner) is bool:
        return {member: inner}
    if member in _STRING_SET_MEMBERS and type(inner) is list and all(type(v) is str for v in inner):
        return {member: list(inner)}
    return None


def _serialize_type_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    if key and shape.name == "AttributeValue":
        direct = _scalar_attribute_value(value)
        if direct is not None:
            self._default_serialize(serialized, direct, shape, key)
            return
    _PATCH.original(self, serialized, value, shape, key)


_PATCH = Patch(BaseJSONSerializer, "_serialize_type_structure", _serialize_type_structure)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    _PATCH.uninstall()

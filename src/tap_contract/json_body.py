"""Strict JSON for request bodies: bounded nesting, no duplicate keys.

Python's ``json`` parser recurses once per nesting level, so a body of a few thousand ``[`` raises
``RecursionError`` (not ``ValueError``) and a handler that only expects bad JSON crashes; and it
keeps the *last* of duplicated keys, so a body with ``"amount"`` twice means one thing to whatever
looked at the first and another to the function. Both are refused here, with a message that says
what is wrong, before anything else reads the body. The API's own bodies nest two levels deep
(the request and its card), so :data:`MAX_DEPTH` leaves ample room for honest clients.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class BodyError(ValueError):
    """The body is not one acceptable JSON document; the message says why (never quoting it)."""


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text``, counted without recursion (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise BodyError(f"request body repeats the key {key!r}; each field may appear once")
        document[key] = value
    return document


def parse(body: str | bytes, max_depth: int = MAX_DEPTH, *, unique_keys: bool = True) -> Any:
    """The JSON document in ``body``; :class:`BodyError` when it is not valid, too deep or (with
    ``unique_keys``) repeats a key.

    Bytes are decoded as ``json.loads`` decodes them (UTF-8, -16 or -32, detected).
    """
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise BodyError("request body is not valid JSON") from None
    # Depth never exceeds the number of openers: an honest body (two) skips the per-character scan.
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise BodyError(f"request body nests deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates if unique_keys else None)
    except BodyError:
        raise
    except ValueError:
        raise BodyError("request body is not valid JSON") from None

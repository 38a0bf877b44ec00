"""Watching every AWS request the code makes, through botocore's one choke point.

Used by the tests that count requests per transaction, the least-privilege test that records which
actions each function performs, and the cost benchmark that counts requests and DynamoDB items.
The observer sees each request before it is sent (failed requests count: IAM authorises them
too) and then its response, or ``None`` when the request raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client

# (client, operation, params, response or None when it raised)
Observer = Callable[[Any, str, dict[str, Any], dict[str, Any] | None], None]


@contextmanager
def observing_api_calls(observer: Observer) -> Iterator[None]:
    """Call ``observer`` for every botocore request made inside the block (any client)."""
    original = botocore.client.BaseClient._make_api_call

    def observed(client: Any, operation: str, params: Any) -> Any:
        try:
            response = original(client, operation, params)
        except Exception:
            observer(client, operation, params, None)
            raise
        observer(client, operation, params, response)
        return response

    botocore.client.BaseClient._make_api_call = observed  # type: ignore[method-assign]  # the hook
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def service_operation(client: Any, operation: str) -> str:
    """``"dynamodb.GetItem"``: how the counts name a request."""
    return f"{client.meta.service_model.service_name}.{operation}"

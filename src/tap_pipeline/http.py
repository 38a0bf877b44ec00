"""API Gateway (REST, proxy integration) responses.

Every response is JSON with ``Cache-Control: no-store`` (answers may carry card BIN/last 4 and
must not sit in intermediary caches) and ``nosniff``; every 503 tells the client when to retry.
Bodies are the contract's response models (:mod:`tap_contract.api`), which the OpenAPI document is
generated from.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tap_contract.api import ErrorBody, ErrorCode, FieldError

BASE_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    retry = {"Retry-After": "1"} if status == 503 else {}
    return {
        "statusCode": status,
        "headers": {**BASE_HEADERS, **retry, **(headers or {})},
        "body": json.dumps(body, default=_default, separators=(",", ":")),
    }


def error(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    errors: list[FieldError] | None = None,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """A 4xx/5xx answer: a stable machine ``code`` and a human ``message`` (plus details)."""
    body = ErrorBody(code=code, message=message, errors=errors, transaction_id=transaction_id)
    return response(status, body.to_json())

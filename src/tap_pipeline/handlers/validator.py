"""API handler: ``POST /transaction`` and ``GET /transaction/{transaction_id}`` (REST proxy events).

Routing is two routes, done by hand: it keeps the cold start small and gives full control over the
4xx bodies (one message per bad field, never echoing a submitted value, which may be card data).
This module alone maps the domain's typed outcomes (:mod:`tap_pipeline.intake`) to HTTP statuses.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from pydantic import ValidationError

from tap_contract import json_body

# The main path is imported at init (the package docstring says why).
from tap_contract.api import (
    ID_CHARACTERS,
    ErrorCode,
    FieldError,
    TransactionAccepted,
    TransactionRequest,
    field_errors,
    is_transaction_id,
)
from tap_contract.environment import VALIDATOR
from tap_contract.metrics import INTERNAL_ERROR
from tap_pipeline import http, intake, snapstart
from tap_pipeline.handlers import finish_init
from tap_pipeline.observability import MetricUnit, count_with_dimension, logger, metrics, tracer
from tap_pipeline.settings import validator_settings

MAX_BODY_BYTES = 16 * 1024

# The HTTP status of every refusal the domain can return (intake.REFUSALS; a unit test keeps the two
# equal, so a new refusal cannot fall through to some default status).
REFUSAL_STATUS = {
    ErrorCode.MERCHANT_NOT_FOUND: 422,
    ErrorCode.MERCHANT_INACTIVE: 422,
    ErrorCode.CURRENCY_NOT_ALLOWED: 422,
    ErrorCode.AMOUNT_BELOW_MINIMUM: 422,
    ErrorCode.AMOUNT_ABOVE_MAXIMUM: 422,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 409,
    ErrorCode.ENQUEUE_FAILED: 503,
    ErrorCode.REQUEST_IN_PROGRESS: 503,
}


def _count_rejection(code: str) -> None:
    metrics.add_metric(name="TransactionRejected", unit=MetricUnit.Count, value=1)
    count_with_dimension("TransactionRejectedByReason", "reason", code)


def _reject(
    status: int, code: ErrorCode, message: str, errors: list[FieldError] | None = None
) -> dict[str, Any]:
    _count_rejection(code)
    logger.info("request rejected", extra={"status_code": status, "reason": code})
    return http.error(status, code, message, errors=errors)


def _body(event: dict[str, Any]) -> bytes | None:
    raw = event.get("body")
    if raw is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return b"\x00invalid-base64"
    text: str = raw  # API Gateway's proxy event carries the body as a string
    return text.encode("utf-8", errors="surrogatepass")


def post_transaction(event: dict[str, Any]) -> dict[str, Any]:
    body = _body(event)
    if not body:
        return _reject(400, ErrorCode.MALFORMED_REQUEST, "request body is empty; expected a JSON object")
    if len(body) > MAX_BODY_BYTES:
        return _reject(
            400, ErrorCode.MALFORMED_REQUEST, f"request body is larger than {MAX_BODY_BYTES} bytes"
        )
    try:
        document = json_body.parse(body)
    except json_body.BodyError as exc:
        # Invalid JSON, nesting past json_body.MAX_DEPTH, or a repeated key: the message says which.
        return _reject(400, ErrorCode.MALFORMED_REQUEST, str(exc))
    if not isinstance(document, dict):
        return _reject(400, ErrorCode.MALFORMED_REQUEST, "request body must be a JSON object")
    try:
        request = TransactionRequest.model_validate(document)
    except ValidationError as exc:
        errors = field_errors(exc)
        summary = "; ".join(f"{e.field} {e.message}" for e in errors)
        return _reject(400, ErrorCode.MALFORMED_REQUEST, f"invalid request: {summary}", errors)

    outcome = intake.accept(request)
    if isinstance(outcome, intake.Accepted):
        metrics.add_metric(name="TransactionAccepted", unit=MetricUnit.Count, value=1)
        logger.info("transaction accepted")
        accepted = TransactionAccepted(transaction_id=outcome.transaction_id, status="PENDING")
        location = {"Location": f"/transaction/{outcome.transaction_id}"}
        return http.response(202, accepted.to_json(), location)
    status = REFUSAL_STATUS[outcome.code]
    _count_rejection(outcome.code)
    if outcome.code is ErrorCode.ENQUEUE_FAILED:
        # Not the client's doing: an error of this function for its C6 alarm.
        metrics.add_metric(name=INTERNAL_ERROR, unit=MetricUnit.Count, value=1)
    logger.info("request refused", extra={"status_code": status, "reason": outcome.code})
    return http.error(status, outcome.code, outcome.message, transaction_id=outcome.transaction_id)


def get_transaction(transaction_id: str | None) -> dict[str, Any]:
    metrics.add_metric(name="TransactionLookup", unit=MetricUnit.Count, value=1)
    # API Gateway does not enforce the path pattern: check it here, before the id reaches a log key
    # or a message, and never echo it (a PAN pasted into the URL must not come back or be logged).
    if not transaction_id or not is_transaction_id(transaction_id):
        return http.error(
            400,
            ErrorCode.INVALID_TRANSACTION_ID,
            f"transaction_id must be 1-64 characters of {ID_CHARACTERS}, "
            "starting with a letter or digit, and must not be a card number",
        )
    logger.append_keys(transaction_id=transaction_id)
    view = intake.lookup(transaction_id)
    if view is None:
        return http.error(404, ErrorCode.NOT_FOUND, f"transaction {transaction_id} not found")
    return http.response(200, view.to_json())


# log_event=False explicitly: the raw event holds the PAN and CVV, and POWERTOOLS_LOGGER_LOG_EVENT
# must never be able to switch on logging it.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return route(event)
    except Exception:
        # Retrying is always safe (the transaction id makes POST idempotent), so an unexpected
        # failure (throttling, a timeout, a bug) is a retryable 503, not API Gateway's bare 502.
        logger.exception("unhandled error while serving the request")
        metrics.add_metric(name=INTERNAL_ERROR, unit=MetricUnit.Count, value=1)
        return http.error(
            503, ErrorCode.TEMPORARILY_UNAVAILABLE, "the request could not be completed; retry it"
        )


def route(event: dict[str, Any]) -> dict[str, Any]:
    validator_settings()  # a misconfigured function answers 503 (and logs which variable) first
    method = event.get("httpMethod")
    resource = event.get("resource") or event.get("path") or ""
    if resource == "/transaction" and method == "POST":
        return post_transaction(event)
    if resource.startswith("/transaction/") and method == "GET":
        parameters = event.get("pathParameters") or {}
        return get_transaction(parameters.get("transaction_id") or resource.rsplit("/", 1)[-1])
    metrics.add_metric(name="UnknownRoute", unit=MetricUnit.Count, value=1)
    return http.error(404, ErrorCode.NOT_FOUND, f"no route for {method} {resource}")


# A request as a provider sends it, with a card token (never a card number: the snapshot keeps it).
WARM_REQUEST = {
    "merchant_id": "snapstart-warm-up",
    "currency": "USD",
    "amount": "1.00",
    "card": {"token": "tok_snapstart_warm_up"},
}


def _warm_models() -> None:
    """Before the snapshot: run the request and response models once, valid and invalid, so their
    first-use work is in the snapshot (tap_pipeline.snapstart). No AWS call, nothing stored."""
    TransactionRequest.model_validate(WARM_REQUEST)
    try:
        TransactionRequest.model_validate({})
    except ValidationError as exc:
        field_errors(exc)
    TransactionAccepted(transaction_id="snapstart-warm-up", status="PENDING").to_json()


snapstart.install(VALIDATOR, warmers=(_warm_models,))
finish_init()  # last: the collector is back on, init's objects frozen (tap_pipeline.handlers)

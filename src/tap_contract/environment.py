"""The environment contract: which variables each function reads, and its handler.

The stack sets exactly these variables on each function (a contract test compares them with
what the stack deploys), and :mod:`tap_pipeline.settings` reads them. Names of the functions are
their ``POWERTOOLS_SERVICE_NAME`` values, which also key their metrics and alarms.
"""

from __future__ import annotations

from collections.abc import Mapping

from tap_contract.card_keys import SWITCH_DELAY_VARIABLE

VALIDATOR = "validator"
FRAUD_DETECTOR = "fraud-detector"
FAILED_HANDLER = "failed-handler"
RECONCILER = "reconciler"
KEY_ROTATION = "key-rotation"

HANDLERS: Mapping[str, str] = {
    VALIDATOR: "tap_pipeline.handlers.validator.handler",
    FRAUD_DETECTOR: "tap_pipeline.handlers.fraud_detector.handler",
    FAILED_HANDLER: "tap_pipeline.handlers.failed_handler.handler",
    RECONCILER: "tap_pipeline.handlers.reconciler.handler",
    KEY_ROTATION: "tap_pipeline.handlers.key_rotation.handler",
}
"""Each function's Lambda ``handler`` setting (the code asset holds ``tap_pipeline`` and this package)."""

COMMON_ENVIRONMENT: tuple[str, ...] = (
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
    "ENVIRONMENT_SUFFIX",
    "TRANSACTIONS_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
)

FUNCTION_ENVIRONMENT: Mapping[str, frozenset[str]] = {
    VALIDATOR: frozenset(
        (
            *COMMON_ENVIRONMENT,
            "MERCHANT_CONFIG_TABLE_NAME",
            "TRANSACTION_QUEUE_URL",
            "FRAUD_STATE_TABLE_NAME",
            "CARD_FINGERPRINT_SECRET_ARN",
            "MERCHANT_CACHE_TTL_SECONDS",
            "MERCHANT_INDEX_NAME",
            "MERCHANT_INDEX_SHARDS",
        )
    ),
    FRAUD_DETECTOR: frozenset(
        (
            *COMMON_ENVIRONMENT,
            "MERCHANT_CONFIG_TABLE_NAME",
            "MERCHANT_CACHE_TTL_SECONDS",
            "MERCHANT_INDEX_NAME",
            "MERCHANT_INDEX_SHARDS",
            "FRAUD_STATE_TABLE_NAME",
            "FRAUD_STATE_SHARDS",
            "FRAUD_PROFILE_CACHE_SECONDS",
            "FRAUD_ALERT_TOPIC_ARN",
        )
    ),
    FAILED_HANDLER: frozenset((*COMMON_ENVIRONMENT, "OPS_ALERT_TOPIC_ARN", "FRAUD_ALERT_TOPIC_ARN")),
    RECONCILER: frozenset(
        (
            *COMMON_ENVIRONMENT,
            "TRANSACTION_QUEUE_URL",
            "OPS_ALERT_TOPIC_ARN",
            "STALE_RECEIVED_AFTER_SECONDS",
            "STALE_RECEIVED_FAIL_AFTER_SECONDS",
            "RECONCILER_MAX_REQUEUES",
            "RECONCILER_BATCH_LIMIT",
        )
    ),
    # Invoked by Secrets Manager only; it touches no table, so none of the common table names.
    KEY_ROTATION: frozenset(
        (
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
            "POWERTOOLS_LOG_LEVEL",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
            "CARD_FINGERPRINT_SECRET_ARN",
            SWITCH_DELAY_VARIABLE,
        )
    ),
}
"""Per function (keyed by its ``POWERTOOLS_SERVICE_NAME``): every environment variable it needs."""


def required_environment(function: str) -> frozenset[str]:
    """The environment variable names ``function`` (a key of :data:`HANDLERS`) needs."""
    try:
        return FUNCTION_ENVIRONMENT[function]
    except KeyError:
        known = sorted(FUNCTION_ENVIRONMENT)
        raise ValueError(f"unknown function {function!r}; expected one of {known}") from None

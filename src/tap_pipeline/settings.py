"""Environment configuration for the functions.

The stack (``lib/``) and this package meet only through the variables that
:mod:`tap_contract.environment` declares per function (and ``docs/function-contract.md`` lists); a
contract test compares that declaration with the environment the stack deploys.

Settings are read lazily (first invocation, not import) and a missing or malformed variable raises
:class:`ConfigurationError` naming the variable, so a misconfigured deployment fails loudly on its
first request instead of half-working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or malformed."""


def _text(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set (see docs/function-contract.md)")
    return value


def _positive_int(name: str) -> int:
    raw = _text(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigurationError(f"environment variable {name} must be >= 1, got {value}")
    return value


def _non_negative_int(name: str) -> int:
    raw = _text(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"environment variable {name} must be >= 0, got {value}")
    return value


@dataclass(frozen=True)
class CommonSettings:
    environment_suffix: str
    transactions_table: str
    idempotency_table: str


@dataclass(frozen=True)
class MerchantSettings:
    merchant_table: str
    merchant_cache_ttl_seconds: int
    merchant_index_name: str
    merchant_index_shards: int


@dataclass(frozen=True)
class ValidatorSettings:
    common: CommonSettings
    merchants: MerchantSettings
    transaction_queue_url: str
    card_fingerprint_secret_arn: str
    fraud_state_table: str


@dataclass(frozen=True)
class FraudDetectorSettings:
    common: CommonSettings
    merchants: MerchantSettings
    fraud_state_table: str
    fraud_state_shards: int
    fraud_profile_cache_seconds: int
    fraud_alert_topic_arn: str


@dataclass(frozen=True)
class FailedHandlerSettings:
    common: CommonSettings
    ops_alert_topic_arn: str
    # A FLAGGED transaction whose message dead-lettered may still owe its fraud alert.
    fraud_alert_topic_arn: str


@dataclass(frozen=True)
class ReconcilerSettings:
    common: CommonSettings
    transaction_queue_url: str
    ops_alert_topic_arn: str
    # A record RECEIVED (or last re-enqueued) longer ago than this is stale: its message was lost,
    # never sent, or is far behind.
    stale_after_seconds: int
    # A record still RECEIVED this long after it was received is FAILED (the stack derives it so the
    # queue's own retries of every message sent for it are over first).
    fail_after_seconds: int
    max_requeues: int
    # Records handled per run at most, so one run stays bounded in time and in duplicate messages.
    batch_limit: int


@dataclass(frozen=True)
class KeyRotationSettings:
    """The card-fingerprint key's rotation function: the one secret it may rotate, and how far
    ahead of its writing a new key takes over (see tap_contract.card_keys)."""

    card_fingerprint_secret_arn: str
    switch_delay_seconds: int


def _common() -> CommonSettings:
    return CommonSettings(
        environment_suffix=_text("ENVIRONMENT_SUFFIX"),
        transactions_table=_text("TRANSACTIONS_TABLE_NAME"),
        idempotency_table=_text("IDEMPOTENCY_TABLE_NAME"),
    )


def _merchants() -> MerchantSettings:
    return MerchantSettings(
        merchant_table=_text("MERCHANT_CONFIG_TABLE_NAME"),
        merchant_cache_ttl_seconds=_positive_int("MERCHANT_CACHE_TTL_SECONDS"),
        merchant_index_name=_text("MERCHANT_INDEX_NAME"),
        merchant_index_shards=_positive_int("MERCHANT_INDEX_SHARDS"),
    )


@cache
def validator_settings() -> ValidatorSettings:
    return ValidatorSettings(
        common=_common(),
        merchants=_merchants(),
        transaction_queue_url=_text("TRANSACTION_QUEUE_URL"),
        card_fingerprint_secret_arn=_text("CARD_FINGERPRINT_SECRET_ARN"),
        fraud_state_table=_text("FRAUD_STATE_TABLE_NAME"),
    )


@cache
def fraud_detector_settings() -> FraudDetectorSettings:
    return FraudDetectorSettings(
        common=_common(),
        merchants=_merchants(),
        fraud_state_table=_text("FRAUD_STATE_TABLE_NAME"),
        fraud_state_shards=_positive_int("FRAUD_STATE_SHARDS"),
        fraud_profile_cache_seconds=_positive_int("FRAUD_PROFILE_CACHE_SECONDS"),
        fraud_alert_topic_arn=_text("FRAUD_ALERT_TOPIC_ARN"),
    )


@cache
def failed_handler_settings() -> FailedHandlerSettings:
    return FailedHandlerSettings(
        common=_common(),
        ops_alert_topic_arn=_text("OPS_ALERT_TOPIC_ARN"),
        fraud_alert_topic_arn=_text("FRAUD_ALERT_TOPIC_ARN"),
    )


@cache
def reconciler_settings() -> ReconcilerSettings:
    return ReconcilerSettings(
        common=_common(),
        transaction_queue_url=_text("TRANSACTION_QUEUE_URL"),
        ops_alert_topic_arn=_text("OPS_ALERT_TOPIC_ARN"),
        stale_after_seconds=_positive_int("STALE_RECEIVED_AFTER_SECONDS"),
        fail_after_seconds=_positive_int("STALE_RECEIVED_FAIL_AFTER_SECONDS"),
        max_requeues=_positive_int("RECONCILER_MAX_REQUEUES"),
        batch_limit=_positive_int("RECONCILER_BATCH_LIMIT"),
    )


@cache
def key_rotation_settings() -> KeyRotationSettings:
    from tap_contract.card_keys import SWITCH_DELAY_VARIABLE

    return KeyRotationSettings(
        card_fingerprint_secret_arn=_text("CARD_FINGERPRINT_SECRET_ARN"),
        switch_delay_seconds=_non_negative_int(SWITCH_DELAY_VARIABLE),
    )


@cache
def merchant_settings() -> MerchantSettings:
    """The merchant-table variables the validator and the fraud detector both have."""
    return _merchants()


@cache
def common_settings() -> CommonSettings:
    """The variables every function has (used by code shared by all three, e.g. idempotency)."""
    return _common()


def clear_cache() -> None:
    """Forget the settings read so far (tests change the environment between cases)."""
    for loader in (
        validator_settings,
        fraud_detector_settings,
        failed_handler_settings,
        reconciler_settings,
        key_rotation_settings,
        merchant_settings,
        common_settings,
    ):
        loader.cache_clear()

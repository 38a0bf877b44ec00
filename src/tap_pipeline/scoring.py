"""Scoring one queued transaction (the fraud detector's domain logic).

Per transaction, on the happy path: one strongly consistent ``Query`` of the card's events received
before it (written at intake, see :mod:`tap_pipeline.fraud_state`), the merchant's amount profile
from the container's cache (one ``BatchGetItem`` per merchant and currency per
``FRAUD_PROFILE_CACHE_SECONDS``), one conditional ``UpdateItem`` that records CLEARED/FLAGGED with
the features the rules saw, and a share of one profile ``UpdateItem`` per batch. The status
transition is conditional on RECEIVED, so a redelivered message writes nothing and adds nothing
to the profile. A FLAGGED transaction then publishes its alert through the idempotent publisher,
also on redelivery, so an alert lost to a crash after the write is still sent, and never twice.

Nothing here depends on the order in which messages are processed: card features count only
events earlier by receive time, all written before their messages were queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from tap_contract.api import Status
from tap_contract.messages import TransactionMessage
from tap_pipeline import alerts, rules
from tap_pipeline.amounts import AmountProfile
from tap_pipeline.fraud_state import FraudState, ProfileBuffer, derive_facts
from tap_pipeline.observability import logger, tracer
from tap_pipeline.repository import MerchantDirectory, TransactionStore, iso_millis
from tap_pipeline.settings import fraud_detector_settings

profile_buffer = ProfileBuffer()
"""This invocation's merchant-profile contributions, flushed by the handler after the batch."""

# How far back the merchant history goes when a profile has to be rebuilt from the index.
BASELINE_HISTORY_DAYS = 30
BASELINE_HISTORY_LIMIT = 500


@dataclass(frozen=True)
class Result:
    status: Status
    score: int
    reasons: list[str]
    redelivered: bool = False
    alerted: bool = False


@cache
def merchants() -> MerchantDirectory:
    s = fraud_detector_settings()
    return MerchantDirectory(s.merchants.merchant_table, s.merchants.merchant_cache_ttl_seconds)


@cache
def store() -> TransactionStore:
    s = fraud_detector_settings()
    return TransactionStore(s.common.transactions_table, s.common.idempotency_table)


@cache
def state() -> FraudState:
    s = fraud_detector_settings()
    return FraudState(s.fraud_state_table, s.fraud_state_shards, s.fraud_profile_cache_seconds)


def merchant_profile(message: TransactionMessage) -> AmountProfile:
    """The merchant's amount profile for this currency, from the container's cache when fresh."""
    cached = state().cached_profile(message.merchant_id, message.currency)
    if cached is not None:
        return cached
    profile = state().read_profile(message.merchant_id, message.currency)
    if profile is None:
        profile = repair_profile(message)
    state().remember_profile(message.merchant_id, message.currency, profile)
    return profile


def repair_profile(message: TransactionMessage) -> AmountProfile:
    """Rebuild a missing merchant profile from the merchant's recent history (F13).

    Runs only when no profile item exists for the merchant and currency (new merchant, or the
    aggregates were lost). Reads the merchant's cleared transactions of the last
    ``BASELINE_HISTORY_DAYS`` from ``merchant-index`` across every shard and writes them once as the
    profile's seed item (conditional put, so concurrent repairs cannot double-seed).
    """
    s = fraud_detector_settings()
    since = iso_millis(message.received_at - timedelta(days=BASELINE_HISTORY_DAYS))
    history = store().merchant_history(
        s.merchants.merchant_index_name,
        s.merchants.merchant_index_shards,
        message.merchant_id,
        since,
        BASELINE_HISTORY_LIMIT,
    )
    profile = AmountProfile.of(
        Decimal(item["amount"])
        for item in history
        if item.get("currency") == message.currency
        and item.get("status") == Status.CLEARED.value
        and item["transaction_id"] != message.transaction_id
    )
    written = state().seed_profile(message, profile)
    logger.info(
        "merchant profile seeded from history",
        extra={"samples": profile.count, "written_by_this_call": written},
    )
    return profile


def _ensure_alert(record: dict[str, Any]) -> bool:
    """Publish the transaction's fraud alert unless it was published before (idempotent)."""
    alerts.publish_fraud_alert(alerts.fraud_alert(record), fraud_detector_settings().fraud_alert_topic_arn)
    return True


def assess(message: TransactionMessage) -> tuple[rules.Facts, rules.Assessment]:
    """Features and verdict of one transaction (reads only)."""
    merchant = merchants().get(message.merchant_id)
    if merchant is None:
        logger.warning("merchant configuration missing; scoring with default rules")
    facts = derive_facts(message, state().card_history(message), merchant_profile(message), merchant)
    assessment = rules.evaluate(
        facts,
        merchant.rule_overrides if merchant else None,
        merchant.flag_threshold if merchant else None,
    )
    return facts, assessment


@tracer.capture_method(capture_response=False)
def process(message: TransactionMessage, now: datetime | None = None) -> Result:
    now = now or datetime.now(UTC)
    facts, assessment = assess(message)
    status = Status.FLAGGED if assessment.flagged else Status.CLEARED
    recorded, existing = store().record_verdict(
        message, status, assessment.score, assessment.reasons, iso_millis(now), facts.to_features()
    )
    if not recorded:
        # Already left RECEIVED (a redelivery), or no record: nothing was written.
        return _already_processed(message, existing)

    if assessment.ignored_overrides:
        logger.warning("ignored invalid rule overrides", extra={"rules": list(assessment.ignored_overrides)})
    if status is Status.CLEARED:
        profile_buffer.add(message, facts.amount_deviation)
        return Result(status=status, score=assessment.score, reasons=assessment.reasons)
    _ensure_alert({**store_view(message), "fraud_score": assessment.score, "reasons": assessment.reasons})
    return Result(status=status, score=assessment.score, reasons=assessment.reasons, alerted=True)


def flush_profile() -> None:
    """Write this invocation's merchant-profile contributions (one UpdateItem per merchant/currency)."""
    lost = profile_buffer.flush(state())
    if lost:
        logger.error("merchant profile samples lost", extra={"samples": lost})


def store_view(message: TransactionMessage) -> dict[str, Any]:
    return {
        "transaction_id": message.transaction_id,
        "timestamp": message.timestamp,
        "merchant_id": message.merchant_id,
        "amount": message.amount,
        "currency": message.currency,
        "card_bin": message.card.bin,
        "card_last4": message.card.last4,
        "country": message.country,
    }


def _already_processed(message: TransactionMessage, record: dict[str, Any] | None) -> Result:
    """Redelivery of a message whose transaction already left RECEIVED (or has no record)."""
    if record is None:
        # Nothing to score against: fail so the message ends in the DLQ, where the failed handler
        # records it as FAILED (it is never silently dropped).
        raise LookupError(f"no transaction record for {message.transaction_id} at {message.timestamp}")
    status = Status(record["status"])
    logger.info("message redelivered for an already processed transaction", extra={"status": status.value})
    alerted = False
    if status is Status.FLAGGED:
        # The first attempt may have crashed between recording FLAGGED and publishing.
        alerted = _ensure_alert(record)
    return Result(
        status=status,
        score=int(record.get("fraud_score") or 0),
        reasons=list(record.get("reasons") or []),
        redelivered=True,
        alerted=alerted,
    )


def clear_cache() -> None:
    merchants.cache_clear()
    store.cache_clear()
    state.cache_clear()

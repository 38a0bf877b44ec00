"""Scoring one queued transaction (the fraud detector's domain logic).

Per transaction, on the happy path: one ``BatchGetItem`` of the fraud state, one
``TransactWriteItems`` that records CLEARED/FLAGGED (conditional on RECEIVED) together with the
card-scoped aggregate updates, and a share of one baseline ``UpdateItem`` per batch. Because the
status and the aggregates live in one transaction, a redelivered message either finds the record
still RECEIVED (the first attempt wrote nothing) or fails the condition and writes nothing:
aggregates are never counted twice. A FLAGGED transaction then publishes its alert through the
idempotent publisher, also on redelivery, so an alert lost to a crash after the write is still
sent, and never twice.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from tap_pipeline import alerts, aws, rules
from tap_pipeline.fraud_state import Baseline, BaselineBuffer, FraudState, Snapshot
from tap_pipeline.models import Status, TransactionMessage
from tap_pipeline.observability import logger, tracer
from tap_pipeline.repository import MerchantDirectory, TransactionStore, deserialize_item, iso_millis
from tap_pipeline.settings import fraud_detector_settings

# Re-read-and-rescore attempts when the card's fraud state changes under a transaction (another
# transaction of the same card committed in between); then the message is left to SQS to retry.
STATE_ATTEMPTS = 5

baseline_buffer = BaselineBuffer()
"""This invocation's merchant-baseline contributions, flushed by the handler after the batch."""

# How far back the merchant history goes when a baseline has to be rebuilt from the index.
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
    return FraudState(s.fraud_state_table, s.fraud_state_shards)


def repair_baseline(message: TransactionMessage, snapshot: Snapshot) -> Snapshot:
    """Rebuild a missing merchant baseline from the merchant's recent history (F13).

    Runs only when no baseline aggregate exists for the merchant and currency (new merchant, or the
    aggregates were lost). Reads the merchant's cleared transactions of the last
    ``BASELINE_HISTORY_DAYS`` from ``merchant-index`` across every shard and writes them once as the
    baseline's seed item (conditional put, so concurrent repairs cannot double-seed).
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
    amounts = [
        Decimal(item["amount"])
        for item in history
        if item.get("currency") == message.currency
        and item.get("status") == Status.CLEARED.value
        and item["transaction_id"] != message.transaction_id
    ]
    baseline = Baseline.of(amounts)
    written = state().seed_baseline(message, baseline)
    logger.info(
        "merchant baseline seeded from history",
        extra={"samples": len(amounts), "written_by_this_call": written},
    )
    return Snapshot(
        counts=snapshot.counts, duplicate=snapshot.duplicate, baseline=baseline, baseline_present=True
    )


def _ensure_alert(record: dict[str, Any]) -> bool:
    """Publish the transaction's fraud alert unless it was published before (idempotent)."""
    alerts.publish_fraud_alert(alerts.fraud_alert(record), fraud_detector_settings().fraud_alert_topic_arn)
    return True


class StateContention(Exception):
    """The card's fraud state kept changing under this transaction; SQS will retry it later."""


@tracer.capture_method(capture_response=False)
def process(message: TransactionMessage, now: datetime | None = None) -> Result:
    now = now or datetime.now(UTC)
    merchant = merchants().get(message.merchant_id)
    if merchant is None:
        logger.warning("merchant configuration missing; scoring with default rules")
    for attempt in range(STATE_ATTEMPTS):
        snapshot = state().read(message)
        if not snapshot.baseline_present:
            snapshot = repair_baseline(message, snapshot)
        facts = state().facts(message, snapshot, merchant)
        assessment = rules.evaluate(
            facts,
            merchant.rule_overrides if merchant else None,
            merchant.flag_threshold if merchant else None,
        )
        status = Status.FLAGGED if assessment.flagged else Status.CLEARED
        items = [
            store().final_status_update(
                message, status, assessment.score, assessment.reasons, iso_millis(now)
            ),
            *state().updates(message, snapshot),
        ]
        outcome, record = _commit(items)
        if outcome == "processed":
            return _already_processed(message, record)
        if outcome == "committed":
            break
        logger.info("card fraud state changed concurrently; re-reading", extra={"attempt": attempt + 1})
        time.sleep((0.01 + random.random() * 0.04) * (attempt + 1))  # noqa: S311 - jitter, not crypto
    else:
        raise StateContention(f"fraud state for this card changed {STATE_ATTEMPTS} times while scoring")

    if assessment.ignored_overrides:
        logger.warning("ignored invalid rule overrides", extra={"rules": list(assessment.ignored_overrides)})
    if status is Status.CLEARED:
        baseline_buffer.add(message)
        return Result(status=status, score=assessment.score, reasons=assessment.reasons)
    _ensure_alert({**store_view(message), "fraud_score": assessment.score, "reasons": assessment.reasons})
    return Result(status=status, score=assessment.score, reasons=assessment.reasons, alerted=True)


def _commit(items: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """Run the TransactWriteItems whose first entry is the status transition.

    Returns ``("committed", None)``; ``("processed", record)`` when the transaction already left
    RECEIVED (a redelivery: nothing was written); or ``("stale", None)`` when a card aggregate
    changed since it was read, or another DynamoDB transaction held one of the items
    (TransactionConflict): the caller re-reads and re-scores. Anything else (throttling,
    validation errors) propagates, and the message is retried by SQS.
    """
    client = aws.dynamodb()
    try:
        client.transact_write_items(TransactItems=items)
    except client.exceptions.TransactionCanceledException as exc:
        reasons = exc.response.get("CancellationReasons") or []
        codes = [reason.get("Code") for reason in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            return "processed", deserialize_item(reasons[0].get("Item"))
        if codes and set(codes) <= {"None", "ConditionalCheckFailed", "TransactionConflict"}:
            return "stale", None
        raise
    return "committed", None


def flush_baseline() -> None:
    """Write this invocation's merchant-baseline contributions (one UpdateItem per merchant/currency)."""
    lost = baseline_buffer.flush(state())
    if lost:
        logger.error("merchant baseline samples lost", extra={"samples": lost})


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
        record = store().get_record(message.transaction_id, message.timestamp)
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

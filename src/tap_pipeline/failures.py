"""Dead-lettered transactions (the failed handler's domain logic).

Every message from the transaction DLQ ends recorded somewhere findable, never dropped:

* a valid transaction message whose record is still RECEIVED -> the record becomes FAILED with the
  reason (the detector's last recorded error, else "exceeded maxReceiveCount") and receive count;
* a valid message without a record -> a FAILED record is created from the message;
* a valid message whose record is already final (e.g. a duplicate message that dead-lettered after
  the original was scored) -> left alone, logged and counted; if it is FLAGGED, its fraud alert is
  published here unless it already went out (the same idempotent publisher as the detector's), since
  the detector records FLAGGED before it publishes and may have died or kept failing in between;
* a poison message (not JSON / not a transaction) -> a FAILED item keyed
  ``transaction_id = "sqs-message#{message id}"`` holding a digest and a digit-masked excerpt of the
  body (the raw body is not stored: it could contain anything, including card data).

Each recorded failure sends one ops notice (idempotent on the SQS message id). The status update
itself is idempotent because a redelivery of the same message satisfies its condition again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from pydantic import ValidationError

from tap_pipeline import alerts
from tap_pipeline.models import Status, TransactionMessage
from tap_pipeline.observability import logger
from tap_pipeline.repository import TransactionStore, iso_millis, record_item
from tap_pipeline.settings import failed_handler_settings

DEFAULT_REASON = "exceeded maxReceiveCount on the transaction queue"
POISON_PREFIX = "sqs-message#"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: int
    sent_at: datetime
    source: str


@dataclass(frozen=True)
class Handled:
    outcome: str  # "failed" | "created" | "final" | "poison"
    transaction_id: str
    notified: bool


@cache
def store() -> TransactionStore:
    s = failed_handler_settings()
    return TransactionStore(s.common.transactions_table, s.common.idempotency_table)


def masked_excerpt(body: str, limit: int = 200) -> str:
    """First ``limit`` characters with every digit replaced, so no PAN or CVV can survive."""
    return re.sub(r"[0-9]", "#", body[:limit])


def _notify(letter: DeadLetter, transaction_id: str, reason: str, outcome: str) -> None:
    notice = {
        "kind": "failed_transaction",
        "message_id": letter.message_id,
        "transaction_id": transaction_id,
        "outcome": outcome,
        "reason": reason,
        "receive_count": letter.receive_count,
        "source": letter.source,
    }
    alerts.publish_ops_notice(notice, failed_handler_settings().ops_alert_topic_arn)


def handle(letter: DeadLetter, now: datetime | None = None) -> Handled:
    now = now or datetime.now(UTC)
    try:
        message: TransactionMessage | None = TransactionMessage.model_validate_json(letter.body)
    except ValidationError:
        message = None

    if message is None:
        return _poison(letter, now)

    logger.append_keys(transaction_id=message.transaction_id)
    outcome, record = store().mark_failed(
        message, letter.message_id, DEFAULT_REASON, letter.receive_count, iso_millis(now)
    )
    if outcome == "final":
        status = (record or {}).get("status")
        logger.warning(
            "dead-lettered message for a transaction that is already final; left unchanged",
            extra={"status": status},
        )
        if status == Status.FLAGGED.value and record is not None:
            # Each flagged transaction owes exactly one alert. If this publish fails, the dead
            # letter is retried and finally parked, so the owed alert survives for a redrive.
            topic = failed_handler_settings().fraud_alert_topic_arn
            alerts.publish_fraud_alert(alerts.fraud_alert(record), topic)
            logger.info("fraud alert of the FLAGGED transaction ensured (published unless already sent)")
        return Handled("final", message.transaction_id, notified=False)
    if outcome == "missing":
        item = {
            **record_item(message),
            "status": Status.FAILED.value,
            "failure_reason": f"{DEFAULT_REASON}; no transaction record existed",
            "receive_count": letter.receive_count,
            "failed_at": iso_millis(now),
            "failed_message_id": letter.message_id,
        }
        store().put_failed(item)
        reason = str(item["failure_reason"])
        outcome = "created"
    else:
        reason = str((record or {}).get("failure_reason") or DEFAULT_REASON)
    logger.warning(
        "transaction recorded as FAILED", extra={"reason": reason, "receive_count": letter.receive_count}
    )
    _notify(letter, message.transaction_id, reason, outcome)
    return Handled(outcome, message.transaction_id, notified=True)


def _poison(letter: DeadLetter, now: datetime) -> Handled:
    key = f"{POISON_PREFIX}{letter.message_id}"
    reason = "message body is not a valid transaction message"
    item = {
        "transaction_id": key,
        # Deterministic (the message's send time), so a redelivery hits the same item.
        "timestamp": iso_millis(letter.sent_at),
        "status": Status.FAILED.value,
        "failure_reason": reason,
        "receive_count": letter.receive_count,
        "failed_at": iso_millis(now),
        "failed_message_id": letter.message_id,
        "source": letter.source,
        "body_sha256": hashlib.sha256(letter.body.encode("utf-8", errors="surrogatepass")).hexdigest(),
        "body_length": len(letter.body),
        "body_excerpt": masked_excerpt(letter.body),
    }
    created = store().put_failed(item)
    logger.error("poison message recorded as FAILED", extra={"record_key": key, "first_time": created})
    _notify(letter, key, reason, "poison")
    return Handled("poison", key, notified=True)


def clear_cache() -> None:
    store.cache_clear()

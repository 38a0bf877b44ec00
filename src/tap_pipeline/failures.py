"""Dead-lettered transactions (the failed handler's domain logic).

Every message from the transaction DLQ ends recorded somewhere findable, never dropped:

* a valid transaction message whose record is still RECEIVED -> the record becomes FAILED with the
  reason (the detector's last recorded error, else "exceeded maxReceiveCount") and receive count;
* a valid message without a record -> a FAILED record is created from the message;
* a valid message whose record is already final (e.g. a duplicate message that dead-lettered after
  the original was scored) -> left alone, logged and counted; if it is FLAGGED, its fraud alert is
  published here unless it already went out (the same idempotent publisher as the detector's), since
  the detector records FLAGGED before it publishes and may have died or kept failing in between;
* a message that is not a valid transaction message but names an existing record (its
  ``transaction_id`` and ``timestamp``) -> that record becomes FAILED ("message body is not a valid
  transaction message"), so no transaction stays RECEIVED forever;
* any other poison message (not JSON / not a transaction) -> a FAILED item keyed
  ``transaction_id = "sqs-body#{sha256 of the digit-masked body}"``, ``timestamp = "poison"``,
  holding a digit-masked excerpt of the body (the raw body is not stored: it could contain
  anything, including card data).

Each FAILED record sends one ops notice, idempotent on the record's key (never on the SQS message
id: a redrive gives the same dead letter a new one), so redelivering or replaying a dead letter
changes nothing and sends nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from tap_contract.api import Status
from tap_contract.messages import TransactionMessage
from tap_pipeline import alerts
from tap_pipeline.data import transactions
from tap_pipeline.data.items import iso_millis
from tap_pipeline.data.transactions import FailTransition, record_item
from tap_pipeline.observability import logger
from tap_pipeline.settings import failed_handler_settings

DEFAULT_REASON = "exceeded maxReceiveCount on the transaction queue"
UNREADABLE_REASON = "message body is not a valid transaction message"
POISON_PREFIX = "sqs-body#"
POISON_SORT_KEY = "poison"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: int
    sent_at: datetime
    source: str


class Outcome(StrEnum):
    """What a dead letter did to its transaction (the ops notice's and the metric's ``outcome``)."""

    FAILED = "failed"  # its RECEIVED record is now FAILED
    CREATED = "created"  # no record existed: a FAILED one was written from the message
    FINAL = "final"  # the transaction had already left RECEIVED: unchanged
    POISON = "poison"  # unreadable body naming no record: kept as a FAILED poison item


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    transaction_id: str
    notified: bool


def masked_excerpt(body: str, limit: int = 200) -> str:
    """First ``limit`` characters with every digit replaced, so no PAN or CVV can survive."""
    return re.sub(r"[0-9]", "#", body[:limit])


def _notify(letter: DeadLetter, transaction_id: str, reason: str, outcome: Outcome) -> None:
    notice = {
        "kind": "failed_transaction",
        "message_id": letter.message_id,
        "transaction_id": transaction_id,
        "outcome": outcome.value,
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
        return _unreadable(letter, now)

    logger.append_keys(transaction_id=message.transaction_id)
    transition, record = transactions.store().mark_failed(
        (message.transaction_id, message.timestamp),
        letter.message_id,
        DEFAULT_REASON,
        letter.receive_count,
        iso_millis(now),
    )
    if transition is FailTransition.FINAL:
        return _already_final(letter, message.transaction_id, record or {})
    if transition is FailTransition.MISSING:
        item = {
            **record_item(message),
            "status": Status.FAILED.value,
            "failure_reason": f"{DEFAULT_REASON}; no transaction record existed",
            "receive_count": letter.receive_count,
            "failed_at": iso_millis(now),
            "failed_message_id": letter.message_id,
        }
        transactions.store().put_failed(item)
        reason = str(item["failure_reason"])
        return _recorded_failed(letter, message.transaction_id, reason, Outcome.CREATED)
    reason = str((record or {}).get("failure_reason") or DEFAULT_REASON)
    return _recorded_failed(letter, message.transaction_id, reason, Outcome.FAILED)


def _recorded_failed(letter: DeadLetter, transaction_id: str, reason: str, outcome: Outcome) -> Handled:
    """This dead letter made its transaction FAILED: log it and send the record's one ops notice."""
    logger.warning(
        "transaction recorded as FAILED", extra={"reason": reason, "receive_count": letter.receive_count}
    )
    _notify(letter, transaction_id, reason, outcome)
    return Handled(outcome, transaction_id, notified=True)


def _already_final(letter: DeadLetter, transaction_id: str, record: dict[str, Any]) -> Handled:
    """A dead letter of a transaction that already left RECEIVED: nothing changes, nothing owed is lost.

    Happens for a duplicate delivery that dead-lettered after the original was scored, and for a
    replayed (redriven) dead letter, which SQS gives a new message id. Each final state owes one
    message, sent here unless it already went out (both publishers are idempotent per transaction):
    FLAGGED owes the fraud alert (the detector records FLAGGED before publishing and may have died
    or kept failing in between); FAILED owes the ops notice (an earlier failed-handler attempt may
    have recorded FAILED and then failed to publish before its message was parked).
    """
    status = record.get("status")
    logger.warning(
        "dead-lettered message for a transaction that is already final; left unchanged",
        extra={"status": status},
    )
    if status == Status.FLAGGED.value:
        alerts.publish_fraud_alert(
            alerts.fraud_alert(record), failed_handler_settings().fraud_alert_topic_arn
        )
        return Handled(Outcome.FINAL, transaction_id, notified=False)
    if status == Status.FAILED.value:
        reason = str(record.get("failure_reason") or DEFAULT_REASON)
        _notify(letter, transaction_id, reason, Outcome.FAILED)
        return Handled(Outcome.FINAL, transaction_id, notified=True)
    return Handled(Outcome.FINAL, transaction_id, notified=False)


def poison_key(body: str) -> str:
    """One record per poison body, whatever its SQS message id (a redrive assigns a new one).

    Digits are masked before hashing: the body may hold a card number, and an unkeyed hash of a
    short body with a PAN in it could be brute-forced. Bodies that differ only in digits share a
    record, which is acceptable for messages that are not transactions at all.
    """
    masked = masked_excerpt(body, limit=len(body))
    return POISON_PREFIX + hashlib.sha256(masked.encode("utf-8", errors="surrogatepass")).hexdigest()


def _record_key(body: str) -> tuple[str, str] | None:
    """The (transaction_id, timestamp) a message that fails the schema still names, if it does."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    transaction_id, timestamp = document.get("transaction_id"), document.get("timestamp")
    if isinstance(transaction_id, str) and isinstance(timestamp, str) and transaction_id and timestamp:
        return transaction_id, timestamp
    return None


def _unreadable(letter: DeadLetter, now: datetime) -> Handled:
    """A body that is not a valid transaction message: fail its record if it names one, else poison.

    A message that names an existing RECEIVED record (e.g. written by another version of the
    validator) must not leave that transaction RECEIVED forever.
    """
    key = _record_key(letter.body)
    if key is None:
        return _poison(letter, now)
    transition, record = transactions.store().mark_failed(
        key, letter.message_id, UNREADABLE_REASON, letter.receive_count, iso_millis(now)
    )
    if transition is FailTransition.MISSING:
        return _poison(letter, now)
    logger.append_keys(transaction_id=key[0])
    if transition is FailTransition.FINAL:
        return _already_final(letter, key[0], record or {})
    reason = str((record or {}).get("failure_reason") or UNREADABLE_REASON)
    return _recorded_failed(letter, key[0], reason, Outcome.FAILED)


def _poison(letter: DeadLetter, now: datetime) -> Handled:
    key = poison_key(letter.body)
    reason = UNREADABLE_REASON
    item = {
        "transaction_id": key,
        "timestamp": POISON_SORT_KEY,  # constant: a replay must hit the same item
        "status": Status.FAILED.value,
        "failure_reason": reason,
        "receive_count": letter.receive_count,
        "failed_at": iso_millis(now),
        "first_sent_at": iso_millis(letter.sent_at),
        "failed_message_id": letter.message_id,
        "source": letter.source,
        "body_length": len(letter.body),
        "body_excerpt": masked_excerpt(letter.body),
    }
    created = transactions.store().put_failed(item)
    logger.error("poison message recorded as FAILED", extra={"record_key": key, "first_time": created})
    _notify(letter, key, reason, Outcome.POISON)
    return Handled(Outcome.POISON, key, notified=True)

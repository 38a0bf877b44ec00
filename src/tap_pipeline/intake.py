"""Accepting a transaction (the validator's domain logic, independent of API Gateway).

Flow for a well-formed request (models already validated shape, card and amount precision):

1. Merchant checks against the cached merchant configuration -> refused with a reason code.
2. The card is replaced by its keyed fingerprint + BIN + last 4 (the PAN and CVV go no further),
   computed with the ring key primary at the receive time, plus, in the hour after a key switch, its
   fingerprints under the keys primary earlier in that hour (:func:`card_snapshot`).
3. One ``TransactWriteItems`` writes the RECEIVED record together with its idempotency guard
   (see :meth:`TransactionStore.create_received` for why the guard makes Powertools idempotency
   unnecessary here) and the card event the fraud detector's card history is made of. A repeat
   of the same transaction id with the same body returns the original answer; with a different
   body it is refused with 409.
4. One ``SendMessage``. If it fails the request is refused (ENQUEUE_FAILED: the API answers 503) and
   the record stays RECEIVED; the client's retry finds the record still RECEIVED and enqueues it
   again. A client that never retries (or a validator that dies between the write and the send)
   leaves the record to the reconciler (:mod:`tap_pipeline.reconcile`), which re-enqueues it once
   it is stale. Re-enqueueing a RECEIVED record is always safe because the fraud detector's status
   transition is conditional, so a duplicate message changes nothing.

The result is typed (:data:`Outcome`: :class:`Accepted` or :class:`Refused` with an
:class:`~tap_contract.api.ErrorCode`); only the handler knows which HTTP status each maps to.

Happy path cost: 2 billable requests (TransactWriteItems + SendMessage); merchant config and the
fingerprint key come from in-memory caches.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any, TypeAlias

from tap_contract import money, queues
from tap_contract.api import CardDisplay, ErrorCode, Status, TransactionRequest, TransactionView
from tap_contract.messages import CardSnapshot, TransactionMessage
from tap_pipeline import card
from tap_pipeline.card import KeyRing
from tap_pipeline.data import merchants, queue, secrets, transactions
from tap_pipeline.data.fraud_state import HOUR, card_event_put
from tap_pipeline.data.items import iso_millis, merchant_shard_key
from tap_pipeline.data.merchants import MerchantConfig
from tap_pipeline.data.transactions import AlreadyExists, ConcurrentRequest, message_from_record
from tap_pipeline.observability import logger
from tap_pipeline.settings import validator_settings


@dataclass(frozen=True)
class Accepted:
    """Recorded and queued (or recorded and queued before: an honest retry)."""

    transaction_id: str


# Every code a Refused can carry: merchant rules, a reused id, a failed enqueue, a concurrent request.
REFUSALS = frozenset(
    {
        ErrorCode.MERCHANT_NOT_FOUND,
        ErrorCode.MERCHANT_INACTIVE,
        ErrorCode.CURRENCY_NOT_ALLOWED,
        ErrorCode.AMOUNT_BELOW_MINIMUM,
        ErrorCode.AMOUNT_ABOVE_MAXIMUM,
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        ErrorCode.ENQUEUE_FAILED,
        ErrorCode.REQUEST_IN_PROGRESS,
    }
)


@dataclass(frozen=True)
class Refused:
    """Not accepted, for ``code``; ``transaction_id`` when a record exists for it (409, 503)."""

    code: ErrorCode
    message: str
    transaction_id: str | None = None

    def __post_init__(self) -> None:
        if self.code not in REFUSALS:
            raise ValueError(f"{self.code} is not a refusal of intake")


Outcome: TypeAlias = Accepted | Refused


class Rejection(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_merchant(merchant: MerchantConfig | None, request: TransactionRequest) -> None:
    """Business rules of P2; raises :class:`Rejection` with a stable reason code."""
    if merchant is None:
        raise Rejection(ErrorCode.MERCHANT_NOT_FOUND, f"merchant {request.merchant_id} is not known")
    if not merchant.active:
        raise Rejection(ErrorCode.MERCHANT_INACTIVE, f"merchant {request.merchant_id} is not active")
    if request.currency not in merchant.allowed_currencies:
        raise Rejection(ErrorCode.CURRENCY_NOT_ALLOWED, f"merchant does not accept {request.currency}")
    amount = money.parse_amount(request.amount, request.currency)
    if amount < merchant.min_amount:
        raise Rejection(
            ErrorCode.AMOUNT_BELOW_MINIMUM, f"amount is below the merchant minimum {merchant.min_amount}"
        )
    if amount > merchant.max_amount:
        raise Rejection(
            ErrorCode.AMOUNT_ABOVE_MAXIMUM, f"amount is above the merchant maximum {merchant.max_amount}"
        )


# The detector's card-history window: fingerprints under keys primary within it travel with the card.
HISTORY_WINDOW = timedelta(seconds=HOUR)


def card_snapshot(request: TransactionRequest, ring: KeyRing, at: datetime) -> CardSnapshot:
    """The card as fingerprinted at receive time ``at`` (primary key, plus the keys primary earlier
    in the history window: only in the hour after a key switch)."""
    if request.card.token is not None:
        return card.snapshot(ring, at, HISTORY_WINDOW, "token", request.card.token)
    number = request.card.number
    assert number is not None  # guaranteed by CardInput's validator
    return card.snapshot(ring, at, HISTORY_WINDOW, "pan", number, bin=number[:6], last4=number[-4:])


def request_hash(request: TransactionRequest, reference: CardSnapshot, key: bytes) -> str:
    """Keyed hash of the request's meaning, to tell an honest retry from a reused id.

    Built from the card *fingerprint* (never the PAN) and keyed with the fingerprint key, so the
    stored value cannot be used to test guesses of card data. The CVV is not part of it.
    """
    canonical = {
        "merchant_id": request.merchant_id,
        "amount": str(money.parse_amount(request.amount, request.currency)),
        "currency": request.currency,
        "card": reference.fingerprint,
        "expiry": request.card.expiry,
        "customer_id": request.customer_id,
        "country": request.country,
        "timestamp": request.timestamp,
    }
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, b"request:" + payload, sha256).hexdigest()


def build_message(
    request: TransactionRequest, reference: CardSnapshot, transaction_id: str, now: datetime
) -> TransactionMessage:
    shards = validator_settings().merchants.merchant_index_shards
    return TransactionMessage(
        transaction_id=transaction_id,
        timestamp=iso_millis(now),
        merchant_id=request.merchant_id,
        merchant_shard=merchant_shard_key(request.merchant_id, transaction_id, shards),
        amount=money.format_amount(money.parse_amount(request.amount, request.currency), request.currency),
        currency=request.currency,
        card=reference,
        customer_id=request.customer_id,
        country=request.country,
        client_timestamp=request.timestamp,
    )


def _enqueue(message: TransactionMessage) -> Outcome:
    try:
        queue.send_transaction(message, validator_settings().transaction_queue_url, queues.ORIGIN_INTAKE)
    except Exception:
        # The RECEIVED record stays; the client's retry (same transaction_id) re-enqueues it.
        logger.exception("enqueue failed; refusing so the client retries")
        return Refused(
            ErrorCode.ENQUEUE_FAILED,
            "transaction recorded but not yet queued; retry with the same transaction_id",
            message.transaction_id,
        )
    return Accepted(message.transaction_id)


def guard_digest(
    request: TransactionRequest, guard: dict[str, Any], ring: KeyRing, at: datetime
) -> str | None:
    """The request's hash as the guard's own key computes it (None: that key left the ring).

    A retry may arrive after a key switch: the guard keeps the version of the key its hash was
    keyed with (``key_version``; guards from before rotation have none and were keyed with the key
    primary at their record's time), and the retry is hashed again with that key and the card's
    fingerprint under it, so an honest retry still matches.
    """
    version = str(guard.get("key_version") or "")
    if version:
        key = ring.by_version(version)
    else:
        key = ring.primary_at(datetime.fromisoformat(str(guard.get("record_timestamp") or at.isoformat())))
    if key is None:
        return None
    reference = card_snapshot(request, KeyRing((key,)), at)
    return request_hash(request, reference, key.key)


def _replay(
    guard: dict[str, Any], request: TransactionRequest, ring: KeyRing, digest: str, version: str, at: datetime
) -> Outcome:
    """Answer a repeated transaction id: original answer, re-enqueue if still RECEIVED, or 409."""
    transaction_id = guard["transaction_id"]
    if str(guard.get("key_version") or "") != version:
        recomputed = guard_digest(request, guard, ring, at)
        if recomputed is None:
            # Keys stay in the ring longer than guards live (tap_pipeline.key_rotation.KEY_RETENTION),
            # so only a hand-edited ring gets here; the retry cannot be verified, so it is refused.
            logger.warning("repeated request keyed with a key no longer in the ring; refusing")
            return Refused(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "transaction_id was used before and can no longer be verified; use a new transaction_id",
                transaction_id,
            )
        digest = recomputed
    if not hmac.compare_digest(str(guard.get("request_hash", "")), digest):
        return Refused(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "transaction_id was already used for a different request",
            transaction_id,
        )
    record = transactions.store().get_record(transaction_id, guard["record_timestamp"])
    if record is not None and record.get("status") == Status.RECEIVED.value:
        logger.info("repeated request for a transaction still RECEIVED; enqueueing it again")
        return _enqueue(message_from_record(record))
    logger.info(
        "repeated request; returning the original answer", extra={"status": record and record["status"]}
    )
    return Accepted(transaction_id)


def accept(request: TransactionRequest, now: datetime | None = None) -> Outcome:
    """Accept (or refuse) one well-formed transaction request."""
    now = now or datetime.now(UTC)
    transaction_id = request.transaction_id or str(uuid.uuid4())
    logger.append_keys(transaction_id=transaction_id, merchant_id=request.merchant_id)
    ring = secrets.key_ring()
    primary = ring.primary_at(now)
    reference = card_snapshot(request, ring, now)
    digest = request_hash(request, reference, primary.key)
    try:
        check_merchant(merchants.directory().get(request.merchant_id), request)
    except Rejection as rejection:
        if request.transaction_id:
            # A retry of a transaction accepted before the merchant's configuration changed still
            # gets its original answer.
            guard = transactions.store().get_guard(request.transaction_id)
            if guard is not None:
                return _replay(guard, request, ring, digest, primary.version, now)
        return Refused(rejection.code, rejection.message)

    message = build_message(request, reference, transaction_id, now)
    # The card event goes in with the record, so the detector's card history is complete for
    # every transaction received before this one, whatever order their messages are processed in.
    try:
        result = transactions.store().create_received(
            message,
            digest,
            int(now.timestamp()),
            also_put=[card_event_put(message)],
            key_version=primary.version,
        )
    except ConcurrentRequest:
        return Refused(
            ErrorCode.REQUEST_IN_PROGRESS, "the same transaction_id is being processed; retry shortly"
        )
    if isinstance(result, AlreadyExists):
        return _replay(result.guard, request, ring, digest, primary.version, now)
    return _enqueue(message)


def lookup(transaction_id: str) -> TransactionView | None:
    """What GET shows of a record: status, score, reasons and the card as BIN + last 4 only.

    Uses ``.get`` throughout: FAILED records of poison messages have no merchant or amount.
    """
    record = transactions.store().find(transaction_id)
    if record is None:
        return None
    amount, currency = record.get("amount"), record.get("currency")
    score = record.get("fraud_score")
    return TransactionView(
        transaction_id=record["transaction_id"],
        status=record["status"],
        timestamp=record.get("timestamp"),
        merchant_id=record.get("merchant_id"),
        amount=money.format_amount(amount, currency) if amount is not None and currency else None,
        currency=currency,
        card=CardDisplay(bin=record.get("card_bin"), last4=record.get("card_last4")),
        fraud_score=int(score) if score is not None else None,
        reasons=[str(reason) for reason in record.get("reasons") or []],
        failure_reason=record.get("failure_reason") or None,
    )

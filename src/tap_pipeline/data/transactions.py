"""Transaction records and their idempotency guards.

Transactions table: hash ``transaction_id``, range ``timestamp`` (server receive time, ISO-8601
UTC, milliseconds, ``Z``). Each record carries ``merchant_shard = "{merchant_id}#{n}"`` for the
``merchant-index`` GSI; ``n`` is a stable hash of the transaction id, so one busy merchant's index
writes spread over ``MERCHANT_INDEX_SHARDS`` partitions instead of one hot key (F13).

While a record is RECEIVED it also carries ``pending_shard`` (``"pending#{n}"``), the key of the
sparse ``pending-index``: every transition out of RECEIVED removes the attribute in the same write,
so the index holds exactly the transactions still waiting for a verdict and the reconciler reads
the stale ones from it with a few Queries instead of a table scan.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

from tap_contract import tables
from tap_contract.api import Status
from tap_contract.messages import TransactionMessage
from tap_pipeline.data import clients
from tap_pipeline.data.items import deserialize_item, pending_shard_key, pending_shards
from tap_pipeline.observability import tracer
from tap_pipeline.settings import common_settings

GUARD_PREFIX = "transaction#"
# ``failed_by`` of a record the reconciler FAILED (the failed handler's records carry a message id).
RECONCILER_FAILED_BY = "reconciler"
# The sparse pending index's keys: present exactly while a record is RECEIVED.
PENDING_ATTRIBUTES = frozenset({tables.PENDING_SHARD, tables.PENDING_SINCE})
# Clients may retry with the same transaction id for this long; afterwards the id may be reused.
GUARD_RETENTION_SECONDS = 30 * 24 * 3600


def record_key(transaction_id: str, timestamp: str) -> dict[str, str]:
    return {tables.TRANSACTION_ID: transaction_id, tables.TIMESTAMP: timestamp}


def guard_id(transaction_id: str) -> str:
    return f"{GUARD_PREFIX}{transaction_id}"


def record_item(message: TransactionMessage) -> dict[str, Any]:
    """The RECEIVED record stored for an accepted transaction (no PAN, no CVV, no token)."""
    item: dict[str, Any] = {
        "transaction_id": message.transaction_id,
        "timestamp": message.timestamp,
        "status": Status.RECEIVED.value,
        "merchant_id": message.merchant_id,
        "merchant_shard": message.merchant_shard,
        tables.PENDING_SHARD: pending_shard_key(message.transaction_id),
        tables.PENDING_SINCE: message.timestamp,
        "amount": Decimal(message.amount),
        "currency": message.currency,
        "card_fingerprint": message.card.fingerprint,
        "card_kind": message.card.kind,
    }
    if message.card.key_version:
        item["card_key_version"] = message.card.key_version
    if message.card.lookback_fingerprints:
        item["card_lookback_fingerprints"] = list(message.card.lookback_fingerprints)
    optional = {
        "card_bin": message.card.bin,
        "card_last4": message.card.last4,
        "customer_id": message.customer_id,
        "country": message.country,
        "client_timestamp": message.client_timestamp,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


def message_from_record(item: dict[str, Any]) -> TransactionMessage:
    """Rebuild the queue message of a stored record (used to re-enqueue after an enqueue failure)."""
    from tap_contract.money import format_amount

    return TransactionMessage(
        transaction_id=item["transaction_id"],
        timestamp=item["timestamp"],
        merchant_id=item["merchant_id"],
        merchant_shard=item["merchant_shard"],
        amount=format_amount(Decimal(item["amount"]), item["currency"]),
        currency=item["currency"],
        card={
            "fingerprint": item["card_fingerprint"],
            "kind": item.get("card_kind", "pan"),
            "bin": item.get("card_bin"),
            "last4": item.get("card_last4"),
            "key_version": item.get("card_key_version", ""),
            "lookback_fingerprints": tuple(item.get("card_lookback_fingerprints") or ()),
        },
        customer_id=item.get("customer_id"),
        country=item.get("country"),
        client_timestamp=item.get("client_timestamp"),
    )


class FailTransition(StrEnum):
    """What :meth:`TransactionStore.mark_failed` did."""

    FAILED = "failed"  # this dead letter recorded FAILED (again, on its own redelivery)
    FINAL = "final"  # already CLEARED/FLAGGED/FAILED by something else: left alone
    MISSING = "missing"  # no record with that key


@dataclass(frozen=True)
class Created:
    """The RECEIVED record and its idempotency guard were written by this request."""


@dataclass(frozen=True)
class AlreadyExists:
    """A request with the same transaction id was accepted before; ``guard`` is its idempotency item."""

    guard: dict[str, Any]


class ConcurrentRequest(Exception):
    """Another request with the same transaction id is being written right now."""


class TransactionStore:
    def __init__(self, table_name: str, idempotency_table: str) -> None:
        self.table_name = table_name
        self.idempotency_table = idempotency_table

    @tracer.capture_method(capture_response=False)
    def create_received(
        self,
        message: TransactionMessage,
        request_hash: str,
        now_epoch: int,
        also_put: list[dict[str, Any]] | None = None,
        key_version: str = "",
    ) -> Created | AlreadyExists:
        """Write the RECEIVED record and its idempotency guard atomically (one TransactWriteItems).

        Why a guard item: the record's key is (transaction_id, receive time), and a retry arrives
        at a different time, so a condition on the record alone cannot see the earlier attempt.
        The guard, keyed by the transaction id alone in the idempotency table, makes "this id was
        accepted" a single conditional write in the same transaction as the record, so it costs
        one request (instead of a Powertools idempotency put + update around the handler) and
        there is no window in which a record exists without its guard or vice versa. The guard
        keeps the keyed request hash (to refuse a reused id with a different body) and the
        record's timestamp (to find the record on a retry), and the version of the card key the
        hash is keyed with (``key_version``), so a retry after a key rotation is hashed the same way.

        ``also_put`` adds unconditional ``Put`` entries (the card event of the fraud state) that
        must exist exactly when the record does.
        """
        guard: dict[str, Any] = {
            "id": guard_id(message.transaction_id),
            "transaction_id": message.transaction_id,
            "record_timestamp": message.timestamp,
            "request_hash": request_hash,
            "expiration": now_epoch + GUARD_RETENTION_SECONDS,
        }
        if key_version:
            guard["key_version"] = key_version
        client = clients.dynamodb()
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.idempotency_table,
                            "Item": guard,
                            "ConditionExpression": "attribute_not_exists(id)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": record_item(message),
                            "ConditionExpression": "attribute_not_exists(transaction_id)",
                        }
                    },
                    *({"Put": put} for put in also_put or ()),
                ]
            )
        except client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            codes = [reason.get("Code") for reason in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                existing = deserialize_item(reasons[0].get("Item")) or self.get_guard(message.transaction_id)
                if existing is None:  # the guard expired between the write and the read
                    raise ConcurrentRequest(message.transaction_id) from exc
                return AlreadyExists(guard=existing)
            if "TransactionConflict" in codes:
                raise ConcurrentRequest(message.transaction_id) from exc
            raise
        return Created()

    @tracer.capture_method(capture_response=False)
    def get_guard(self, transaction_id: str) -> dict[str, Any] | None:
        response = clients.dynamodb().get_item(
            TableName=self.idempotency_table,
            Key={tables.IDEMPOTENCY_ID: guard_id(transaction_id)},
            ConsistentRead=True,
        )
        guard: dict[str, Any] | None = response.get("Item")
        return guard

    @tracer.capture_method(capture_response=False)
    def get_record(self, transaction_id: str, timestamp: str) -> dict[str, Any] | None:
        response = clients.dynamodb().get_item(
            TableName=self.table_name,
            Key=record_key(transaction_id, timestamp),
            ConsistentRead=True,
        )
        record: dict[str, Any] | None = response.get("Item")
        return record

    @tracer.capture_method(capture_response=False)
    def find(self, transaction_id: str) -> dict[str, Any] | None:
        """The newest record with this id (GET /transaction/{id}), or ``None``."""
        response = clients.dynamodb().query(
            TableName=self.table_name,
            KeyConditionExpression="transaction_id = :id",
            ExpressionAttributeValues={":id": transaction_id},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items") or []
        return items[0] if items else None

    @tracer.capture_method(capture_response=False)
    def record_verdict(
        self,
        message: TransactionMessage,
        status: Status,
        score: int,
        reasons: list[str],
        processed_at: str,
        features: dict[str, Any],
    ) -> tuple[bool, dict[str, Any] | None]:
        """RECEIVED -> CLEARED/FLAGGED, only if still RECEIVED. Returns (recorded, record).

        The condition makes the transition happen once: a redelivered message fails it (``False``
        and the record as it stands, or ``None`` when there is no record), and the caller adds
        nothing to the merchant profile. ``features`` are the rules' inputs (no card data), kept so
        a rule change can be backtested on the record.
        """
        key = (message.transaction_id, message.timestamp)
        client = clients.dynamodb()
        try:
            client.update_item(
                TableName=self.table_name,
                Key=record_key(*key),
                UpdateExpression=(
                    "SET #status = :status, fraud_score = :score, reasons = :reasons, processed_at = :at, "
                    "features = :features REMOVE pending_shard, pending_since"
                ),
                ConditionExpression="attribute_exists(transaction_id) AND #status = :received",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": status.value,
                    ":score": score,
                    ":reasons": reasons,
                    ":at": processed_at,
                    ":features": features,
                    ":received": Status.RECEIVED.value,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            return False, self._existing(exc, key)
        return True, None

    def _existing(self, exc: Any, key: tuple[str, str]) -> dict[str, Any] | None:
        """The record a failed condition saw (returned with the error, else read back)."""
        return deserialize_item(exc.response.get("Item")) or self.get_record(*key)

    @tracer.capture_method(capture_response=False)
    def note_processing_error(self, message: TransactionMessage, cause: str, at: str) -> None:
        """Remember the latest processing error on a RECEIVED record (the failed handler reports it)."""
        client = clients.dynamodb()
        # A missing or already-final record has nothing to annotate.
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=self.table_name,
                Key=record_key(message.transaction_id, message.timestamp),
                UpdateExpression="SET last_error = :cause, last_error_at = :at ADD processing_attempts :one",
                ConditionExpression="attribute_exists(transaction_id) AND #status = :received",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cause": cause[:1000],
                    ":at": at,
                    ":one": 1,
                    ":received": Status.RECEIVED.value,
                },
            )

    @tracer.capture_method(capture_response=False)
    def mark_failed(
        self, key: tuple[str, str], message_id: str, reason: str, receive_count: int, at: str
    ) -> tuple[FailTransition, dict[str, Any] | None]:
        """RECEIVED -> FAILED for a dead-lettered message. Returns what happened and the record.

        ``key`` is the record's (transaction_id, timestamp). A redelivery of the same message is
        FAILED again (the call is idempotent).
        """
        client = clients.dynamodb()
        try:
            response = client.update_item(
                TableName=self.table_name,
                Key=record_key(*key),
                UpdateExpression=(
                    "SET #status = :failed, failure_reason = if_not_exists(last_error, :reason), "
                    "receive_count = :count, failed_at = :at, failed_message_id = :mid "
                    "REMOVE pending_shard, pending_since"
                ),
                ConditionExpression=(
                    "attribute_exists(transaction_id) AND "
                    "(#status = :received OR (#status = :failed AND failed_message_id = :mid))"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": Status.FAILED.value,
                    ":received": Status.RECEIVED.value,
                    ":reason": reason,
                    ":count": receive_count,
                    ":at": at,
                    ":mid": message_id,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            old = self._existing(exc, key)
            return (FailTransition.FINAL, old) if old else (FailTransition.MISSING, None)
        return FailTransition.FAILED, response.get("Attributes")

    @tracer.capture_method(capture_response=False)
    def put_failed(self, item: dict[str, Any]) -> bool:
        """Store a FAILED item unless one with its key exists; True when this call created it."""
        client = clients.dynamodb()
        try:
            client.put_item(
                TableName=self.table_name,
                Item={name: value for name, value in item.items() if name not in PENDING_ATTRIBUTES},
                ConditionExpression="attribute_not_exists(transaction_id)",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    @tracer.capture_method(capture_response=False)
    def stale_pending(self, before: str, per_shard: int) -> list[tuple[str, str]]:
        """Keys (transaction_id, timestamp) of RECEIVED records pending since before ``before``.

        One Query per pending-index shard (oldest first, at most ``per_shard`` each, so one busy
        shard cannot starve the others); never a scan. The index is eventually consistent: a
        record that has just left RECEIVED may still be listed, so callers read it back and act
        only through writes conditional on it still being RECEIVED.
        """
        client = clients.dynamodb()
        keys: list[tuple[str, str]] = []
        for shard in pending_shards():
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": tables.PENDING_INDEX_NAME,
                "KeyConditionExpression": "pending_shard = :shard AND pending_since < :before",
                "ExpressionAttributeValues": {":shard": shard, ":before": before},
                "Limit": per_shard,
            }
            keys.extend(
                (item["transaction_id"], item["timestamp"])
                for item in _query_up_to(client, kwargs, per_shard)
            )
        return keys

    @tracer.capture_method(capture_response=False)
    def note_requeued(self, key: tuple[str, str], pending_since: str, at: str) -> bool:
        """Count one re-enqueue of a RECEIVED record and restart its stale clock at ``at``.

        Conditional on the record still being RECEIVED and pending since ``pending_since`` (what the
        caller read), so two runs that raced count once; False when the condition failed.
        """
        return self._update_if_pending(
            key,
            pending_since,
            "SET pending_since = :at, last_requeued_at = :at ADD requeue_count :one",
            {":at": at, ":one": 1},
        )

    @tracer.capture_method(capture_response=False)
    def fail_stale(self, key: tuple[str, str], pending_since: str, reason: str, at: str) -> bool:
        """RECEIVED -> FAILED for a record the reconciler gave up on; False if it moved meanwhile.

        The pending keys stay until the ops notice is out (:meth:`clear_pending`): a run that dies in
        between leaves the record in the index, and the next run sends the notice.
        """
        return self._update_if_pending(
            key,
            pending_since,
            # The detector's last recorded error, when it had one, says more than "not processed".
            "SET #status = :failed, failure_reason = if_not_exists(last_error, :reason), "
            "failed_at = :at, failed_by = :by",
            {":failed": Status.FAILED.value, ":reason": reason, ":at": at, ":by": RECONCILER_FAILED_BY},
        )

    @tracer.capture_method(capture_response=False)
    def move_stale_clock(self, key: tuple[str, str], pending_since: str, to: str) -> bool:
        """Restart a waiting record's stale clock at ``to`` (it is listed again one stale period later)."""
        return self._update_if_pending(key, pending_since, "SET pending_since = :to", {":to": to})

    def _update_if_pending(
        self, key: tuple[str, str], pending_since: str, update: str, values: dict[str, Any]
    ) -> bool:
        """Apply ``update`` only if the record is still RECEIVED and pending since ``pending_since``."""
        client = clients.dynamodb()
        try:
            client.update_item(
                TableName=self.table_name,
                Key=record_key(*key),
                UpdateExpression=update,
                ConditionExpression="#status = :received AND pending_since = :seen",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **values,
                    ":received": Status.RECEIVED.value,
                    ":seen": pending_since,
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    @tracer.capture_method(capture_response=False)
    def clear_pending(self, key: tuple[str, str]) -> None:
        """Take a record the reconciler FAILED (and notified) out of the pending index."""
        client = clients.dynamodb()
        # Only a record the reconciler FAILED: never strip the keys of one still RECEIVED.
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=self.table_name,
                Key=record_key(*key),
                UpdateExpression="REMOVE pending_shard, pending_since",
                ConditionExpression="#status = :failed AND failed_by = :by",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":failed": Status.FAILED.value, ":by": RECONCILER_FAILED_BY},
            )

    @tracer.capture_method(capture_response=False)
    def merchant_history(
        self, index_name: str, shards: int, merchant_id: str, since: str, limit: int = 500
    ) -> list[dict[str, Any]]:
        """A merchant's transactions since ``since`` (ISO), newest first, across every index shard.

        One Query per shard on ``merchant-index`` (hash ``merchant_shard``, range ``timestamp``),
        merged by timestamp. Cost grows with the shard count and ``limit``, not with the total
        history, because each shard query stops after ``limit`` items.
        """
        per_shard: list[list[dict[str, Any]]] = []
        client = clients.dynamodb()
        for shard in range(shards):
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": index_name,
                "KeyConditionExpression": "merchant_shard = :shard AND #ts >= :since",
                "ExpressionAttributeNames": {"#ts": "timestamp"},
                "ExpressionAttributeValues": {":shard": f"{merchant_id}#{shard}", ":since": since},
                "ScanIndexForward": False,
                "Limit": limit,
            }
            per_shard.append(_query_up_to(client, kwargs, limit))
        merged: Iterable[dict[str, Any]] = heapq.merge(
            *per_shard, key=lambda item: item["timestamp"], reverse=True
        )
        return list(merged)[:limit]


def _query_up_to(client: Any, kwargs: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` items of one Query, following pages (a page stops at 1 MB, not at Limit)."""
    items: list[dict[str, Any]] = []
    while len(items) < limit:
        page = client.query(**kwargs)
        items.extend(page.get("Items") or [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    return items[:limit]


@cache
def store() -> TransactionStore:
    """This process's transaction store (every function has the two tables in its environment)."""
    s = common_settings()
    return TransactionStore(s.transactions_table, s.idempotency_table)

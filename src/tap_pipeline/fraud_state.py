"""Fraud-state aggregates in DynamoDB: constant cost per transaction, no hot items.

Every transaction reads a fixed set of items (one ``BatchGetItem``) and updates a fixed set (the
card-scoped ones inside the same ``TransactWriteItems`` as its final status, the merchant baseline
once per batch), however long the history grows:

* card velocity, per card fingerprint, 1-minute and 1-hour windows: two-bucket sliding-window
  approximation. Counts live in the current and previous fixed buckets; the estimate is
  ``current + previous * (1 - elapsed fraction of current bucket)``. Items expire by TTL.
* card testing: the same two-bucket counter per card for small amounts (at most
  ``SMALL_AMOUNT_MINOR_UNITS`` minor units), across all merchants, 1-hour window.
* duplicate: per (card, merchant, currency, amount), the time and id of the last occurrence.
* merchant amount baseline, per merchant and currency: count / sum / sum of squares, updated with
  ``ADD`` (additive, so order does not matter) on one of ``FRAUD_STATE_SHARDS`` shard items, once
  per batch (:class:`BaselineBuffer`). Readers sum all shards, plus an optional ``seed`` item
  written once from the merchant's history (``merchant-index``) when no aggregate exists yet.
  At 1,000 TPS on one merchant, batches of 10 and 16 shards, each shard item takes ~6 writes/s
  (~63/s even with single-message batches); the card-keyed items only see one card's traffic.

Times are the transaction's receive time (server clock), so a redelivered message lands in the
same buckets and a slow queue does not distort the windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tap_pipeline import aws, money
from tap_pipeline.models import TransactionMessage
from tap_pipeline.observability import logger, tracer
from tap_pipeline.repository import MerchantConfig, stable_shard
from tap_pipeline.rules import Facts

MINUTE = 60
HOUR = 3600
SMALL_AMOUNT_MINOR_UNITS = 500
DUPLICATE_ITEM_TTL_SECONDS = 24 * 3600
AGG_SK = "agg"


@dataclass(frozen=True)
class Counter:
    """A two-bucket sliding-window counter for one key."""

    name: str  # "vel60", "vel3600", "small3600"
    window: int

    def pk(self, fingerprint: str) -> str:
        return f"card#{fingerprint}#{self.name}"

    def buckets(self, epoch: float) -> tuple[int, int]:
        current = int(epoch // self.window)
        return current, current - 1

    def estimate(self, current: Decimal, previous: Decimal, epoch: float) -> float:
        """Events in the sliding window ending now, counting this one."""
        elapsed = (epoch % self.window) / self.window
        return float(current) + float(previous) * (1.0 - elapsed) + 1.0


VELOCITY_MINUTE = Counter("vel60", MINUTE)
VELOCITY_HOUR = Counter("vel3600", HOUR)
SMALL_HOUR = Counter("small3600", HOUR)
COUNTERS = (VELOCITY_MINUTE, VELOCITY_HOUR, SMALL_HOUR)


def is_small(message: TransactionMessage) -> bool:
    minor = Decimal(message.amount).scaleb(money.exponent(message.currency))
    return minor <= SMALL_AMOUNT_MINOR_UNITS


def duplicate_pk(message: TransactionMessage) -> str:
    amount = money.format_amount(Decimal(message.amount), message.currency)
    return f"dup#{message.card.fingerprint}#{message.merchant_id}#{message.currency}#{amount}"


def baseline_pk(merchant_id: str, currency: str, shard: int | str) -> str:
    return f"baseline#{merchant_id}#{currency}#{shard}"


@dataclass(frozen=True)
class Baseline:
    count: Decimal
    total: Decimal
    total_squares: Decimal

    @property
    def mean(self) -> Decimal:
        return self.total / self.count if self.count else Decimal(0)

    @property
    def std(self) -> Decimal:
        if self.count < 2:
            return Decimal(0)
        variance = self.total_squares / self.count - self.mean**2
        return variance.sqrt() if variance > 0 else Decimal(0)

    @classmethod
    def of(cls, amounts: list[Decimal]) -> Baseline:
        return cls(Decimal(len(amounts)), sum(amounts, Decimal(0)), sum((a * a for a in amounts), Decimal(0)))


@dataclass(frozen=True)
class Snapshot:
    """The fraud state one transaction sees (before its own updates)."""

    counts: dict[tuple[str, int], Decimal]  # (counter name, bucket) -> count
    duplicate: dict[str, Any] | None
    baseline: Baseline
    baseline_present: bool


class FraudState:
    def __init__(self, table_name: str, shards: int) -> None:
        self.table_name = table_name
        self.shards = shards

    def read_keys(self, message: TransactionMessage) -> list[dict[str, str]]:
        """The fixed key set of one transaction: 6 counter buckets + 1 duplicate + shards + seed."""
        epoch = message.received_at.timestamp()
        keys = []
        for counter in COUNTERS:
            for bucket in counter.buckets(epoch):
                keys.append({"pk": counter.pk(message.card.fingerprint), "sk": str(bucket)})
        keys.append({"pk": duplicate_pk(message), "sk": AGG_SK})
        for shard in [*range(self.shards), "seed"]:
            keys.append({"pk": baseline_pk(message.merchant_id, message.currency, shard), "sk": AGG_SK})
        return keys

    @tracer.capture_method(capture_response=False)
    def read(self, message: TransactionMessage) -> Snapshot:
        """One BatchGetItem (plus retries of unprocessed keys, if DynamoDB returns any)."""
        client = aws.dynamodb()
        pending: dict[str, Any] = {self.table_name: {"Keys": self.read_keys(message)}}
        items: list[dict[str, Any]] = []
        for attempt in range(8):
            response = client.batch_get_item(RequestItems=pending)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError("fraud state read left unprocessed keys after 8 attempts")
        return self._snapshot(message, items)

    def _snapshot(self, message: TransactionMessage, items: list[dict[str, Any]]) -> Snapshot:
        by_key = {(item["pk"], item["sk"]): item for item in items}
        counts: dict[tuple[str, int], Decimal] = {}
        epoch = message.received_at.timestamp()
        for counter in COUNTERS:
            for bucket in counter.buckets(epoch):
                item = by_key.get((counter.pk(message.card.fingerprint), str(bucket)))
                counts[(counter.name, bucket)] = Decimal(item["n"]) if item else Decimal(0)
        parts = [
            by_key.get((baseline_pk(message.merchant_id, message.currency, shard), AGG_SK))
            for shard in [*range(self.shards), "seed"]
        ]
        present = [part for part in parts if part]
        baseline = Baseline(
            count=sum((Decimal(p.get("n", 0)) for p in present), Decimal(0)),
            total=sum((Decimal(p.get("s", 0)) for p in present), Decimal(0)),
            total_squares=sum((Decimal(p.get("ss", 0)) for p in present), Decimal(0)),
        )
        return Snapshot(
            counts=counts,
            duplicate=by_key.get((duplicate_pk(message), AGG_SK)),
            baseline=baseline,
            baseline_present=bool(present),
        )

    @tracer.capture_method(capture_response=False)
    def seed_baseline(self, message: TransactionMessage, baseline: Baseline) -> bool:
        """Write the merchant's seed aggregate once (conditional put); True if this call wrote it."""
        client = aws.dynamodb()
        try:
            client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": baseline_pk(message.merchant_id, message.currency, "seed"),
                    "sk": AGG_SK,
                    "n": baseline.count,
                    "s": baseline.total,
                    "ss": baseline.total_squares,
                    "seeded_at": message.timestamp,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def facts(
        self, message: TransactionMessage, snapshot: Snapshot, merchant: MerchantConfig | None
    ) -> Facts:
        epoch = message.received_at.timestamp()

        def estimate(counter: Counter) -> float:
            current, previous = counter.buckets(epoch)
            return counter.estimate(
                snapshot.counts[(counter.name, current)], snapshot.counts[(counter.name, previous)], epoch
            )

        gap = None
        last = snapshot.duplicate
        if last and last.get("last_transaction_id") != message.transaction_id:
            gap = abs(epoch * 1000 - float(last["last_seen_ms"])) / 1000
        small = is_small(message)
        return Facts(
            transaction_id=message.transaction_id,
            amount=Decimal(message.amount),
            currency=message.currency,
            country=message.country,
            merchant_country=merchant.country if merchant else None,
            merchant_max_amount=merchant.max_amount if merchant else None,
            card_count_minute=estimate(VELOCITY_MINUTE),
            card_count_hour=estimate(VELOCITY_HOUR),
            is_small_amount=small,
            card_small_count_hour=estimate(SMALL_HOUR) if small else 0.0,
            seconds_since_same_card_merchant_amount=gap,
            baseline_count=snapshot.baseline.count,
            baseline_mean=snapshot.baseline.mean,
            baseline_std=snapshot.baseline.std,
        )

    def updates(self, message: TransactionMessage, snapshot: Snapshot) -> list[dict[str, Any]]:
        """TransactWriteItems entries for this transaction's card-scoped aggregates.

        Only card-keyed items go into the transaction: they see one card's traffic, so concurrent
        transactions on the same item are rare. The hot, merchant-keyed baseline is updated outside
        it, see :class:`BaselineBuffer`.

        Every entry is conditional on the item still being what ``snapshot`` saw (optimistic
        concurrency): if another transaction of the same card committed since the read, the
        whole TransactWriteItems is cancelled and the caller re-reads and re-scores. So two
        concurrent uses of one card can never both be scored as if the other did not exist, and
        counts stay exact under any Lambda concurrency, at no cost when there is no contention.
        """
        epoch = message.received_at.timestamp()
        fingerprint = message.card.fingerprint
        counters = [VELOCITY_MINUTE, VELOCITY_HOUR] + ([SMALL_HOUR] if is_small(message) else [])
        entries = []
        for counter in counters:
            bucket = counter.buckets(epoch)[0]
            seen = snapshot.counts[(counter.name, bucket)]
            values: dict[str, Any] = {":one": 1, ":exp": (bucket + 2) * counter.window + 60}
            if seen:
                condition = "n = :seen"
                values[":seen"] = seen
            else:
                condition = "attribute_not_exists(pk)"
            entries.append(
                _update(
                    self.table_name,
                    {"pk": counter.pk(fingerprint), "sk": str(bucket)},
                    "ADD n :one SET expires_at = :exp",
                    values,
                    condition,
                )
            )
        values = {
            ":ms": int(epoch * 1000),
            ":id": message.transaction_id,
            ":exp": int(epoch) + DUPLICATE_ITEM_TTL_SECONDS,
        }
        if snapshot.duplicate:
            condition = "last_transaction_id = :seen"
            values[":seen"] = snapshot.duplicate["last_transaction_id"]
        else:
            condition = "attribute_not_exists(pk)"
        entries.append(
            _update(
                self.table_name,
                {"pk": duplicate_pk(message), "sk": AGG_SK},
                "SET last_seen_ms = :ms, last_transaction_id = :id, expires_at = :exp",
                values,
                condition,
            )
        )
        return entries


class BaselineBuffer:
    """Merchant-baseline contributions of one batch, written with one ``ADD`` per merchant/currency.

    Why not inside each transaction's TransactWriteItems: at 1,000 TPS on one merchant, every
    baseline shard item would be in ~60 concurrent transactions per second and DynamoDB would
    cancel many of them with TransactionConflict. Plain ``UpdateItem ... ADD`` writes never
    conflict with each other, and summing a batch first cuts them to one per merchant and currency
    per batch (a tenth of a request per transaction with batches of 10), landing on a shard chosen
    per batch: ~6 writes/s per shard item at 1,000 TPS with 16 shards.

    Exactly-once is not needed for a statistic, but double counting must not happen: only
    transactions whose conditional status transition succeeded in this invocation are added, so a
    redelivered message never contributes twice. A crash before the flush loses those samples.
    Only CLEARED amounts are added, so fraud does not drag "normal" upwards.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], list[Any]] = {}

    def add(self, message: TransactionMessage) -> None:
        amount = Decimal(message.amount)
        group = self._groups.setdefault(
            (message.merchant_id, message.currency),
            [message.transaction_id, Decimal(0), Decimal(0), Decimal(0)],
        )
        group[1] += 1
        group[2] += amount
        group[3] += amount * amount

    def clear(self) -> None:
        self._groups.clear()

    def pending_updates(self, state: FraudState) -> list[dict[str, Any]]:
        """``UpdateItem`` arguments for everything buffered (one per merchant and currency)."""
        updates = []
        for (merchant_id, currency), (first_id, count, total, squares) in self._groups.items():
            shard = stable_shard(first_id, state.shards)
            updates.append(
                {
                    "TableName": state.table_name,
                    "Key": {"pk": baseline_pk(merchant_id, currency, shard), "sk": AGG_SK},
                    "UpdateExpression": "ADD n :n, s :s, ss :ss",
                    "ExpressionAttributeValues": {":n": count, ":s": total, ":ss": squares},
                }
            )
        return updates

    @tracer.capture_method(capture_response=False)
    def flush(self, state: FraudState) -> int:
        """Write and forget the buffered contributions; returns how many samples were lost."""
        client = aws.dynamodb()
        lost = 0
        for update in self.pending_updates(state):
            try:
                client.update_item(**update)
            except Exception:
                lost += int(update["ExpressionAttributeValues"][":n"])
                logger.exception("merchant baseline update failed; these samples are not counted")
        self.clear()
        return lost


def _update(
    table: str, key: dict[str, str], expression: str, values: dict[str, Any], condition: str
) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
    }


def _backoff(attempt: int) -> None:
    import time

    time.sleep(min(1.0, 0.05 * math.pow(2, attempt)))

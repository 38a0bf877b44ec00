"""Fraud state in DynamoDB: each card's recent transactions and each merchant's amount profile.

This module reads and writes the items; :mod:`tap_pipeline.features` derives the rules' inputs
from them and batches the profile's contributions.

Constant cost per transaction, no hot items, and features that do not depend on the order in
which the detector happens to process messages:

* **Card history.** Every accepted transaction writes one small *card event* item at intake, inside
  the validator's ``TransactWriteItems`` with the RECEIVED record (so it costs no extra request and
  exists exactly when the record does): ``pk = card#<fingerprint>``, ``sk = <receive ms>#<id>``,
  with merchant, currency, amount and a small-amount flag (no card data), expiring after
  :data:`CARD_EVENT_TTL_SECONDS`. The detector reads the events of the card received *before* the
  transaction in the last hour with one strongly consistent ``Query`` (at most
  :data:`CARD_HISTORY_LIMIT` items) and derives velocity, card testing, duplicates and merchant
  spread from them. After a key rotation the card has a new fingerprint; for the hour after the
  switch the message carries the old fingerprints too and the detector reads and merges each
  (:meth:`FraudState.card_history`), so the history neither resets nor counts twice. Because every
  event is written before its transaction is even queued, and
  only events earlier by receive time count, a transaction sees the same history whichever
  messages the detector processed before it: of a duplicate pair the later one is flagged, and the
  seventh use of a card counts six earlier ones, in any processing order.
* **Merchant amount profile** (:mod:`tap_pipeline.amounts`): a histogram of ln(amount) of cleared
  transactions per merchant and currency, sharded over ``FRAUD_STATE_SHARDS`` items updated with
  ``ADD`` once per batch (:class:`tap_pipeline.features.ProfileBuffer`), plus a ``seed`` item built
  once from the merchant's history. A container reads it with one ``BatchGetItem`` and keeps it for
  ``FRAUD_PROFILE_CACHE_SECONDS`` once established (20 amounts), adding its own contributions as it
  writes them, so at volume the read is shared by many transactions.
  Flagged amounts and amounts far above the profile never enter it (it cannot be poisoned by the
  attack it is meant to catch), and its quantiles are robust to what does get in.

Hot items: the card events of one card live in one partition, which only that card's traffic
touches. The profile shards see about 6 writes/s each when one merchant sends 1,000 TPS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from tap_contract import tables
from tap_contract.messages import TransactionMessage
from tap_pipeline import amounts
from tap_pipeline.amounts import AmountProfile, is_small
from tap_pipeline.data import clients
from tap_pipeline.observability import tracer
from tap_pipeline.settings import fraud_detector_settings, validator_settings

MINUTE = 60
HOUR = 3600
SPREAD_WINDOW_SECONDS = 600
# Longest window a feature looks back (an hour), plus slack: DynamoDB's TTL deletion is lazy and
# the Query's key range already ignores older events.
CARD_EVENT_TTL_SECONDS = HOUR + 600
# Events read per transaction: enough to decide every default threshold (20 in an hour is the
# highest); a card with more in the hour is counted as having this many.
CARD_HISTORY_LIMIT = 50
PROFILE_SK = "hist"
PROFILE_CACHE_ENTRIES = 4096


def card_pk(fingerprint: str) -> str:
    return f"card#{fingerprint}"


def event_sk(received_ms: int, transaction_id: str) -> str:
    # Zero-padded milliseconds sort as numbers; the id breaks ties the same way everywhere.
    return f"{received_ms:013d}#{transaction_id}"


def received_ms(message: TransactionMessage) -> int:
    return round(message.received_at.timestamp() * 1000)


def card_event_item(message: TransactionMessage) -> dict[str, Any]:
    """The card event the validator writes with the RECEIVED record (no card data in it)."""
    at = received_ms(message)
    return {
        tables.FRAUD_STATE_PK: card_pk(message.card.fingerprint),
        tables.FRAUD_STATE_SK: event_sk(at, message.transaction_id),
        "merchant_id": message.merchant_id,
        "currency": message.currency,
        "amount": message.amount,
        "small": is_small(message),
        tables.FRAUD_STATE_TTL: at // 1000 + CARD_EVENT_TTL_SECONDS,
    }


def card_event_put(message: TransactionMessage) -> dict[str, Any]:
    """The card event as one ``Put`` of the validator's ``TransactWriteItems`` (with the record)."""
    return {"TableName": validator_settings().fraud_state_table, "Item": card_event_item(message)}


def profile_pk(merchant_id: str, currency: str, shard: int | str) -> str:
    return f"amounts#{merchant_id}#{currency}#{shard}"


def profile_key(merchant_id: str, currency: str, shard: int | str) -> dict[str, str]:
    return {
        tables.FRAUD_STATE_PK: profile_pk(merchant_id, currency, shard),
        tables.FRAUD_STATE_SK: PROFILE_SK,
    }


def profile_add(
    table_name: str, merchant_id: str, currency: str, shard: int | str, bins: dict[int, int]
) -> dict[str, Any]:
    """``UpdateItem`` arguments adding bin counts to one profile shard (``ADD``: order-free)."""
    names = sorted(bins)
    return {
        "TableName": table_name,
        "Key": profile_key(merchant_id, currency, shard),
        "UpdateExpression": "ADD " + ", ".join(f"{amounts.bin_attribute(i)} :b{i}" for i in names),
        "ExpressionAttributeValues": {f":b{i}": bins[i] for i in names},
    }


@dataclass(frozen=True)
class CardEvent:
    received_ms: int
    transaction_id: str
    merchant_id: str
    currency: str
    amount: str
    small: bool

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CardEvent:
        at, _, transaction_id = str(item[tables.FRAUD_STATE_SK]).partition("#")
        return cls(
            received_ms=int(at),
            transaction_id=transaction_id,
            merchant_id=str(item.get("merchant_id", "")),
            currency=str(item.get("currency", "")),
            amount=str(item.get("amount", "")),
            small=bool(item.get("small", False)),
        )


class FraudState:
    def __init__(self, table_name: str, shards: int, profile_cache_seconds: int = 60) -> None:
        self.table_name = table_name
        self.shards = shards
        self.profile_cache_seconds = profile_cache_seconds
        self._profiles: dict[tuple[str, str], tuple[float, AmountProfile]] = {}

    @tracer.capture_method(capture_response=False)
    def card_history(self, message: TransactionMessage) -> list[CardEvent]:
        """The card's events received before this transaction within the hour (newest first).

        One ``Query`` per fingerprint the message carries: its primary one, and in the hour after a
        key switch also the fingerprints under the keys primary earlier in that hour. Each event
        was written once, under the fingerprint primary when it was received, so the union is the
        card's whole hour and no event is counted twice (merged newest first, one per transaction).
        """
        fingerprints = dict.fromkeys((message.card.fingerprint, *message.card.lookback_fingerprints))
        at = received_ms(message)
        own = event_sk(at, message.transaction_id)
        items: dict[str, dict[str, Any]] = {}
        for fingerprint in fingerprints:
            for item in self._card_events(fingerprint, at, own):
                items.setdefault(str(item[tables.FRAUD_STATE_SK]), item)
        newest_first = sorted(items.items(), key=lambda pair: pair[0], reverse=True)
        events = [CardEvent.from_item(item) for sk, item in newest_first if sk != own]
        unique: dict[str, CardEvent] = {}
        for event in events:
            unique.setdefault(event.transaction_id, event)
        return list(unique.values())[:CARD_HISTORY_LIMIT]

    def _card_events(self, fingerprint: str, at: int, own: str) -> list[dict[str, Any]]:
        response = clients.dynamodb().query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :own",
            ExpressionAttributeValues={
                ":pk": card_pk(fingerprint),
                ":from": event_sk(at - HOUR * 1000, ""),
                ":own": own,
            },
            ScanIndexForward=False,
            # +1: the range ends at (and includes) the transaction's own event.
            Limit=CARD_HISTORY_LIMIT + 1,
            ConsistentRead=True,
        )
        items: list[dict[str, Any]] = response.get("Items", [])
        return items

    def profile_keys(self, merchant_id: str, currency: str) -> list[dict[str, str]]:
        return [profile_key(merchant_id, currency, shard) for shard in [*range(self.shards), "seed"]]

    def cached_profile(self, merchant_id: str, currency: str) -> AmountProfile | None:
        hit = self._profiles.get((merchant_id, currency))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def remember_profile(self, merchant_id: str, currency: str, profile: AmountProfile) -> None:
        """Cache an established profile; one with little history is read again next time, so a new
        merchant's first transactions, spread over many containers, establish it without delay
        (a read per transaction only until it holds ``MIN_SAMPLES`` amounts)."""
        if not profile.established:
            return
        if len(self._profiles) >= PROFILE_CACHE_ENTRIES:
            self._profiles.clear()  # bounded; a cold reload costs one read per merchant and currency
        self._profiles[(merchant_id, currency)] = (time.monotonic() + self.profile_cache_seconds, profile)

    def absorb(self, merchant_id: str, currency: str, bins: dict[int, int]) -> None:
        """Add this container's own written contributions to its cached profile (write-through).

        Other containers' contributions arrive with the next read; without this a container would
        not see even its own traffic until then, and a new merchant's profile would stay empty for
        a whole cache period on a quiet system.
        """
        hit = self._profiles.get((merchant_id, currency))
        if hit is not None:
            self._profiles[(merchant_id, currency)] = (hit[0], AmountProfile.merged([hit[1].bins, bins]))

    @tracer.capture_method(capture_response=False)
    def read_profile(self, merchant_id: str, currency: str) -> AmountProfile | None:
        """One BatchGetItem of the shards and the seed; ``None`` when no item exists at all."""
        client = clients.dynamodb()
        pending: dict[str, Any] = {self.table_name: {"Keys": self.profile_keys(merchant_id, currency)}}
        items: list[dict[str, Any]] = []
        for attempt in range(8):
            response = client.batch_get_item(RequestItems=pending)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(min(1.0, 0.05 * math.pow(2, attempt)))
        else:
            raise RuntimeError("merchant profile read left unprocessed keys after 8 attempts")
        if not items:
            return None
        return AmountProfile.merged(amounts.bins_of_item(item) for item in items)

    @tracer.capture_method(capture_response=False)
    def seed_profile(self, message: TransactionMessage, profile: AmountProfile) -> bool:
        """Write the merchant's seed profile once (conditional put); True if this call wrote it."""
        client = clients.dynamodb()
        try:
            client.put_item(
                TableName=self.table_name,
                Item={
                    **profile_key(message.merchant_id, message.currency, "seed"),
                    "seeded_at": message.timestamp,
                    **{amounts.bin_attribute(index): count for index, count in profile.bins.items()},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    @tracer.capture_method(capture_response=False)
    def add_to_profile(self, merchant_id: str, currency: str, shard: int, bins: dict[int, int]) -> None:
        """Add bin counts to one profile shard (one ``UpdateItem``), then to the cached profile."""
        clients.dynamodb().update_item(**profile_add(self.table_name, merchant_id, currency, shard, bins))
        self.absorb(merchant_id, currency, bins)


@cache
def state() -> FraudState:
    """This process's fraud state (the fraud detector's; the validator only writes card events)."""
    s = fraud_detector_settings()
    return FraudState(s.fraud_state_table, s.fraud_state_shards, s.fraud_profile_cache_seconds)

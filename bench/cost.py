"""Cost per accepted transaction, end to end, against moto in-process, for growing history sizes.

History: ``REAL_HISTORY`` transactions go through the real handlers (validator, then the fraud
detector in batches of 10) on distinct cards of the merchant. For each size N the earlier history
of one card at that merchant is then *synthesized*: N RECEIVED->CLEARED records and validator
guard items, spread over the past 30 days, the card's events (one per transaction, the last hour's
within the detector's Query range; TTL has not removed the older ones, which makes the Query's key
range do the work), and the merchant amount profile ADDed with those N amounts -- the same items,
keys (the ``tap_pipeline.data`` key functions) and aggregates the code writes. Measured
transactions then use that card, one message per detector invocation (worst case: no batch to share
the profile write).

Requests are counted per operation by wrapping ``BaseClient._make_api_call`` (only while a handler
runs; the test harness's own SQS drain stands in for the event source mapping and is not counted).
The clocks of the per-container caches stand still while transactions are measured (see
:class:`CacheClocks`), and one extra transaction is measured after jumping past their TTLs, so the
happy path does not depend on moto's speed and the refresh cost is still shown.
Items: GetItem 1 read, BatchGetItem its keys, Query its returned Count, TransactWriteItems its
entries, Put/Update/DeleteItem 1 write.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import Mode
from tap_contract.seed import TEST_MERCHANT_ID
from tap_pipeline.amounts import AmountProfile
from tap_testing.calls import observing_api_calls

REAL_HISTORY = 100
MEASURED_PER_SIZE = 3  # one card: more within a minute would be a velocity pattern, not the happy path
TARGET_REQUESTS = 5
FLATNESS = 0.10


class CallCounter:
    """Counts AWS requests and DynamoDB items while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.requests: Counter[str] = Counter()
        self.reads = 0
        self.writes = 0

    def observe(self, client: Any, operation: str, params: dict[str, Any], response: Any) -> None:
        if self.active and response is not None:
            self.record(client.meta.service_model.service_name, operation, params, response)

    def record(self, service: str, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        self.requests[f"{service}.{operation}"] += 1
        if service != "dynamodb":
            return
        if operation == "GetItem":
            self.reads += 1
        elif operation == "BatchGetItem":
            self.reads += sum(len(t["Keys"]) for t in params["RequestItems"].values())
        elif operation == "Query":
            self.reads += int(response.get("Count", 0))
        elif operation == "TransactWriteItems":
            self.writes += len(params["TransactItems"])
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            self.writes += 1

    def reset(self) -> None:
        self.requests.clear()
        self.reads = self.writes = 0


@dataclass
class SizeResult:
    history: int
    per_txn_requests: list[float] = field(default_factory=list)
    per_txn_reads: list[float] = field(default_factory=list)
    per_txn_writes: list[float] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    synthesize_seconds: float = 0.0


def _fresh_pan(serial: int) -> str:
    from tap_contract.card_numbers import with_check_digit

    body = f"4{serial:014d}"
    return with_check_digit(body)


def _body(pan: str, amount: str) -> dict[str, Any]:
    return {
        "merchant_id": TEST_MERCHANT_ID,
        "amount": amount,
        "currency": "USD",
        "card": {"number": pan, "expiry": "12/39", "cvv": "123"},
        "country": "US",
    }


def _submit(pipe: Any, body: dict[str, Any]) -> str:
    response = pipe.post(body)
    if response["statusCode"] != 202:
        raise RuntimeError(f"not accepted: {response['json']}")
    return response["json"]["transaction_id"]


def _synthesize(pipe: Any, pan: str, count: int, serial_base: int) -> None:
    """Write ``count`` earlier transactions of one card at the merchant, as the code would have."""
    from tap_pipeline import card
    from tap_pipeline.data import secrets

    fingerprint = card.snapshot_of_pan(secrets.fingerprint_key(), pan).fingerprint
    _write_history(pipe, fingerprint, pan, count, serial_base)


def _write_history(pipe: Any, fingerprint: str, pan: str, count: int, serial_base: int) -> None:
    from tap_pipeline.data import fraud_state, items, transactions

    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    step = (now - timedelta(hours=2) - start) / max(count, 1)
    shards = int(os.environ["MERCHANT_INDEX_SHARDS"])
    amounts: list[Decimal] = []
    record_batch, guard_batch = _MotoWriter(pipe.transactions_table), _MotoWriter(pipe.idempotency_table)
    event_batch = _MotoWriter(pipe.fraud_state_table)
    for index in range(count):
        at = start + step * index
        transaction_id = f"hist-{serial_base}-{index}"
        amount = Decimal(f"{20 + index % 30}.00")
        stamp = items.iso_millis(at)
        record_batch.put_item(
            Item={
                "transaction_id": transaction_id,
                "timestamp": stamp,
                "status": "CLEARED",
                "merchant_id": TEST_MERCHANT_ID,
                "merchant_shard": items.merchant_shard_key(TEST_MERCHANT_ID, transaction_id, shards),
                "amount": amount,
                "currency": "USD",
                "card_fingerprint": fingerprint,
                "card_kind": "pan",
                "card_bin": pan[:6],
                "card_last4": pan[-4:],
                "country": "US",
                "fraud_score": 0,
                "reasons": [],
                "processed_at": stamp,
            }
        )
        guard_batch.put_item(
            Item={
                "id": transactions.guard_id(transaction_id),
                "transaction_id": transaction_id,
                "record_timestamp": stamp,
                "request_hash": secrets.token_hex(16),
                "expiration": int(at.timestamp()) + 30 * 86400,
            }
        )
        event = fraud_state.card_event_item(
            _history_message(fingerprint, transaction_id, stamp, f"{amount}", shards)
        )
        event_batch.put_item(Item=event)
        amounts.append(amount)
    profile = AmountProfile.of(amounts)
    pipe.ddb.meta.client.update_item(
        **fraud_state.profile_add(
            pipe.fraud_state_table, TEST_MERCHANT_ID, "USD", serial_base % 16, profile.bins
        )
    )


def _history_message(fingerprint: str, transaction_id: str, stamp: str, amount: str, shards: int) -> Any:
    from tap_contract.messages import CardSnapshot, TransactionMessage
    from tap_pipeline.data import items

    return TransactionMessage(
        transaction_id=transaction_id,
        timestamp=stamp,
        merchant_id=TEST_MERCHANT_ID,
        merchant_shard=items.merchant_shard_key(TEST_MERCHANT_ID, transaction_id, shards),
        amount=amount,
        currency="USD",
        card=CardSnapshot(fingerprint=fingerprint, kind="pan"),
    )


class _MotoWriter:
    """Puts items straight into moto's in-memory table: the same items, without HTTP/botocore
    serialisation per item (10^5 items through the SDK would take minutes on a small machine)."""

    def __init__(self, table: str) -> None:
        from boto3.dynamodb.types import TypeSerializer
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self._backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ["AWS_DEFAULT_REGION"]]
        self._table = table
        self._serialize = TypeSerializer().serialize

    def put_item(self, Item: dict[str, Any]) -> None:
        self._backend.put_item(self._table, {k: self._serialize(v) for k, v in Item.items()})


class CacheClocks:
    """Stops the clocks of the per-container caches while transactions are measured.

    The merchant-config cache (``data.merchants.MerchantDirectory``, 60 s) and the merchant
    amount-profile cache (``data.fraud_state.FraudState``, 60 s) read ``time.monotonic``; the
    card-key cache (Powertools' parameter cache under ``data.secrets``, 300 s) reads ``datetime.now``. Moto
    deep-copies every table a TransactWriteItems touches (its rollback), so with 10^5 items one
    transaction takes seconds here against milliseconds in DynamoDB, and on the real clock the
    caches would expire *between* measured transactions of the largest sizes only: an emulator
    artefact that made the figures depend on moto's speed. With the clocks stopped, every measured
    transaction sees the caches as a container under steady traffic does. What a refresh costs is
    not hidden: :meth:`advance` jumps past the TTLs, and :func:`run` measures that transaction too.
    """

    def __enter__(self) -> CacheClocks:
        from aws_lambda_powertools.utilities.parameters import base

        from tap_pipeline.data import fraud_state, merchants

        self._restore = [
            (merchants, "time", merchants.time),
            (fraud_state, "time", fraud_state.time),
            (base, "datetime", base.datetime),
        ]
        self.offset = 0.0
        monotonic, epoch, clocks = time.monotonic(), time.time(), self

        class _Time:  # the time module, with monotonic() standing still
            def __getattr__(self, name: str) -> Any:
                return getattr(time, name)

            @staticmethod
            def monotonic() -> float:
                return monotonic + clocks.offset

        class _Datetime(datetime):  # datetime, with now() standing still
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]  # same call, frozen clock
                return datetime.fromtimestamp(epoch + clocks.offset, tz)

        merchants.time = _Time()  # type: ignore[assignment]  # a stand-in for the time module
        fraud_state.time = _Time()  # type: ignore[assignment]  # a stand-in for the time module
        base.datetime = _Datetime  # type: ignore[misc]  # Powertools reads datetime.now from here
        return self

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def __exit__(self, *_: object) -> None:
        for module, name, value in self._restore:
            setattr(module, name, value)


def _measure(pipe: Any, counter: CallCounter, result: SizeResult, pan: str, amount: str) -> None:
    """One transaction end to end: POST to the validator, then its message alone to the detector."""
    counter.reset()
    counter.active = True
    transaction_id = _submit(pipe, _body(pan, amount))
    counter.active = False
    messages = pipe.drain(pipe.queue_url)
    counter.active = True
    outcome = pipe.run_detector(messages)
    counter.active = False
    if outcome != {"batchItemFailures": []}:
        raise RuntimeError(f"detector failed: {outcome}")
    result.statuses[pipe.get(transaction_id)["json"].get("status", "?")] += 1
    result.per_txn_requests.append(sum(counter.requests.values()))
    result.per_txn_reads.append(counter.reads)
    result.per_txn_writes.append(counter.writes)
    result.operations.update(counter.requests)


@dataclass
class CostResult:
    sizes: list[SizeResult]
    refresh: SizeResult  # one transaction that found every per-container cache expired
    cache_ttls: dict[str, int]


def run(mode: Mode) -> CostResult:
    from moto import mock_aws

    from tap_pipeline.data import secrets
    from tap_testing import backend

    sizes = [100] if mode.quick else [100, 1_000, 10_000, 100_000]
    counter = CallCounter()
    results = []
    backend.apply_environment()
    with mock_aws():
        pipe = backend.build_pipeline()
        ttls = {
            "merchant config": int(os.environ["MERCHANT_CACHE_TTL_SECONDS"]),
            "merchant profile": int(os.environ["FRAUD_PROFILE_CACHE_SECONDS"]),
            "card key": secrets.KEY_CACHE_SECONDS,
        }
        real = 20 if mode.quick else REAL_HISTORY
        for serial in range(real):
            _submit(pipe, _body(_fresh_pan(serial), f"{20 + serial % 30}.00"))
        messages = pipe.drain(pipe.queue_url)
        for start in range(0, len(messages), 10):
            pipe.run_detector(messages[start : start + 10])
        with observing_api_calls(counter.observe):
            for number, size in enumerate(sizes):
                pan = _fresh_pan(900_000 + number)
                result = SizeResult(size)
                began = time.perf_counter()
                _synthesize(pipe, pan, size, number)
                result.synthesize_seconds = time.perf_counter() - began
                with CacheClocks() as clocks:
                    # Synthesis outlasts the caches; one unmeasured transaction on another card
                    # refreshes them, as steady traffic would, so the measured ones are the happy path.
                    _submit(pipe, _body(_fresh_pan(800_000 + number), "27.00"))
                    pipe.run_detector(pipe.drain(pipe.queue_url))
                    for attempt in range(MEASURED_PER_SIZE):
                        _measure(pipe, counter, result, pan, f"{31 + attempt}.17")
                    if number == 0:
                        refresh = SizeResult(size)
                        clocks.advance(max(ttls.values()) + 1)
                        _measure(pipe, counter, refresh, _fresh_pan(700_000), "29.17")
                results.append(result)
    return CostResult(results, refresh, ttls)


def flat_within(results: list[SizeResult]) -> float:
    """Largest relative difference of median requests/txn from the smallest history's."""
    import statistics

    medians = [statistics.median(r.per_txn_requests) for r in results]
    return max(abs(m - medians[0]) / medians[0] for m in medians)

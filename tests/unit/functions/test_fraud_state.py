"""Fraud-state aggregates: constant key set, sliding windows, write sharding, merchant history (F13)."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_pipeline.fraud_state import (
    HOUR,
    MINUTE,
    SMALL_HOUR,
    VELOCITY_MINUTE,
    Baseline,
    BaselineBuffer,
    FraudState,
    Snapshot,
    is_small,
)
from tap_pipeline.models import CardSnapshot, TransactionMessage
from tap_pipeline.repository import TransactionStore, iso_millis, merchant_shard_key, stable_shard

MERCHANT = "hot-merchant"


def _message(
    transaction_id: str, fingerprint: str = "fp", amount: str = "25.00", currency: str = "USD"
) -> TransactionMessage:
    return TransactionMessage(
        transaction_id=transaction_id,
        timestamp="2025-03-01T12:00:30.000Z",
        merchant_id=MERCHANT,
        merchant_shard=merchant_shard_key(MERCHANT, transaction_id, 16),
        amount=amount,
        currency=currency,
        card=CardSnapshot(fingerprint=fingerprint, kind="pan", bin="411111", last4="1111"),
    )


def _empty() -> Snapshot:
    """The state of a card never seen before."""
    return Snapshot(
        counts=defaultdict(Decimal), duplicate=None, baseline=Baseline.of([]), baseline_present=False
    )


def test_read_key_set_is_fixed_size_and_unique():
    state = FraudState("fraud", shards=16)

    keys = state.read_keys(_message("t-1"))

    # 3 counters x 2 buckets + duplicate + 16 baseline shards + seed: one BatchGetItem (max 100)
    assert len(keys) == 6 + 1 + 16 + 1
    assert len({(k["pk"], k["sk"]) for k in keys}) == len(keys)


@pytest.mark.parametrize("batch_size", [1, 10])
def test_hot_merchant_at_1000_tps_never_concentrates_writes_on_one_item(batch_size):
    """1,000 transactions in one second for one merchant (each from a different card), delivered in
    batches as the event source mapping would: count the writes per fraud-state item and per
    merchant-index key. The busiest must stay far under 500 (DynamoDB allows 1,000 WCU/s/partition)."""
    state = FraudState("fraud", shards=16)
    writes: Counter[tuple[str, str]] = Counter()
    index_keys: Counter[str] = Counter()
    buffer = BaselineBuffer()
    # Seeded: with batches of 10 only 100 baseline writes land on 16 shards, and unseeded ids left
    # some shard without one in about 1 run in 40.
    ids = random.Random(1000 + batch_size)
    for number in range(1000):
        transaction_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        message = _message(transaction_id, fingerprint=uuid.UUID(int=ids.getrandbits(128), version=4).hex)
        for entry in state.updates(message, _empty()):
            key = entry["Update"]["Key"]
            writes[(key["pk"], key["sk"])] += 1
        buffer.add(message)
        index_keys[message.merchant_shard] += 1
        if (number + 1) % batch_size == 0:
            for update in buffer.pending_updates(state):
                writes[(update["Key"]["pk"], update["Key"]["sk"])] += 1
            buffer.clear()

    baseline_writes = {k: n for k, n in writes.items() if k[0].startswith(f"baseline#{MERCHANT}#")}
    assert sum(baseline_writes.values()) == 1000 // batch_size
    assert max(writes.values()) < 125  # ~63 per baseline shard with single-message batches
    assert max(index_keys.values()) < 125
    assert len(baseline_writes) == 16


def test_baseline_buffer_sums_a_batch_into_one_update_per_merchant_and_currency():
    state = FraudState("fraud", shards=16)
    buffer = BaselineBuffer()
    for index, amount in enumerate(("10.00", "20.00", "30.00")):
        buffer.add(_message(f"t-{index}", amount=amount))
    buffer.add(_message("t-eur", amount="5.00", currency="EUR"))

    updates = buffer.pending_updates(state)

    assert len(updates) == 2
    usd = next(u for u in updates if "#USD#" in u["Key"]["pk"])
    assert usd["ExpressionAttributeValues"] == {":n": 3, ":s": Decimal("60.00"), ":ss": Decimal("1400.0000")}


def test_card_scoped_updates_are_conditional_on_the_state_that_was_read():
    state = FraudState("fraud", shards=16)
    message = _message("t-2")
    epoch = message.received_at.timestamp()
    counts: defaultdict[tuple[str, int], Decimal] = defaultdict(Decimal)
    counts[("vel60", VELOCITY_MINUTE.buckets(epoch)[0])] = Decimal(3)
    seen = Snapshot(
        counts=counts,
        duplicate={"last_transaction_id": "t-1", "last_seen_ms": 1},
        baseline=Baseline.of([]),
        baseline_present=True,
    )

    entries = {e["Update"]["Key"]["pk"].split("#")[-1]: e["Update"] for e in state.updates(message, seen)}

    assert entries["vel60"]["ConditionExpression"] == "n = :seen"
    assert entries["vel60"]["ExpressionAttributeValues"][":seen"] == 3
    assert entries["vel3600"]["ConditionExpression"] == "attribute_not_exists(pk)"
    duplicate = next(e for e in entries.values() if e["Key"]["pk"].startswith("dup#"))
    assert duplicate["ExpressionAttributeValues"][":seen"] == "t-1"


def test_card_scoped_updates_never_touch_the_merchant_baseline():
    state = FraudState("fraud", shards=16)

    entries = state.updates(_message("t-1"), _empty())

    assert not any(e["Update"]["Key"]["pk"].startswith("baseline#") for e in entries)


def test_small_amount_threshold_follows_currency_exponent():
    assert is_small(_message("a", amount="5.00"))
    assert not is_small(_message("b", amount="5.01"))
    assert is_small(_message("c", amount="500", currency="JPY"))
    assert not is_small(_message("d", amount="501", currency="JPY"))


def test_small_counter_is_only_written_for_small_amounts():
    state = FraudState("fraud", shards=4)

    big = {e["Update"]["Key"]["pk"] for e in state.updates(_message("a", amount="50.00"), _empty())}
    small = {e["Update"]["Key"]["pk"] for e in state.updates(_message("b", amount="1.00"), _empty())}

    assert SMALL_HOUR.pk("fp") not in big
    assert SMALL_HOUR.pk("fp") in small


def test_two_bucket_estimate_weights_previous_bucket_by_remaining_overlap():
    start = 1_700_000_040  # 0 s into a minute bucket (1_700_000_040 is divisible by 60)
    assert start % MINUTE == 0

    assert VELOCITY_MINUTE.estimate(Decimal(0), Decimal(10), start) == 11.0  # whole previous minute
    assert VELOCITY_MINUTE.estimate(Decimal(0), Decimal(10), start + 45) == 3.5  # last quarter overlaps
    assert VELOCITY_MINUTE.estimate(Decimal(4), Decimal(0), start + 59) == 5.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=HOUR * 3), min_size=1, max_size=60), st.integers(0, HOUR * 3)
)
def test_sliding_estimate_is_bounded_by_the_exact_count_over_two_windows(offsets, now_offset):
    """The approximation never invents events: it lies between the exact count of the last window
    and the exact count of the last two windows (property over random event times)."""
    base = 1_700_000_000
    now = base + now_offset
    events = [base + o for o in offsets if base + o <= now]
    current, previous = VELOCITY_MINUTE.buckets(now)
    counts = Counter(int(t // MINUTE) for t in events)

    estimate = VELOCITY_MINUTE.estimate(Decimal(counts[current]), Decimal(counts[previous]), now) - 1

    exact_window = sum(1 for t in events if now - t < MINUTE)
    exact_two_buckets = counts[current] + counts[previous]
    assert min(exact_window, counts[current]) <= estimate + 1e-9
    assert estimate <= exact_two_buckets + 1e-9


def test_baseline_mean_and_std_from_additive_aggregates():
    amounts = [Decimal(x) for x in ("10", "20", "30", "40")]

    baseline = Baseline.of(amounts)

    assert baseline.mean == 25
    assert abs(baseline.std - Decimal("11.18033988749894848204586834")) < Decimal("1e-20")


def test_stable_shard_is_deterministic_and_in_range():
    assert stable_shard("abc", 16) == stable_shard("abc", 16)
    assert {stable_shard(str(i), 16) for i in range(500)} == set(range(16))


def test_f13_merchant_history_query_covers_every_shard_newest_first(pipeline):
    table = pipeline.ddb.Table(pipeline.transactions_table)
    for index in range(40):
        transaction_id = f"m-{index}"
        table.put_item(
            Item={
                "transaction_id": transaction_id,
                "timestamp": iso_millis(datetime(2025, 3, 1, 12, 0, index, tzinfo=UTC)),
                "merchant_id": MERCHANT,
                "merchant_shard": merchant_shard_key(MERCHANT, transaction_id, 16),
                "status": "CLEARED",
                "amount": Decimal(index),
            }
        )
    table.put_item(
        Item={
            "transaction_id": "other",
            "timestamp": "2025-03-01T12:00:30.000Z",
            "merchant_id": "other",
            "merchant_shard": "other#0",
        }
    )
    store = TransactionStore(pipeline.transactions_table, pipeline.idempotency_table)

    everything = store.merchant_history("merchant-index", 16, MERCHANT, "2025-03-01T00:00:00.000Z")
    recent = store.merchant_history("merchant-index", 16, MERCHANT, "2025-03-01T12:00:30.000Z")
    limited = store.merchant_history("merchant-index", 16, MERCHANT, "2025-03-01T00:00:00.000Z", limit=5)

    assert len({item["merchant_shard"] for item in everything}) > 8  # spread over many shards
    assert [item["transaction_id"] for item in everything] == [f"m-{i}" for i in range(39, -1, -1)]
    assert [item["transaction_id"] for item in recent] == [f"m-{i}" for i in range(39, 29, -1)]
    assert [item["transaction_id"] for item in limited] == [f"m-{i}" for i in range(39, 34, -1)]

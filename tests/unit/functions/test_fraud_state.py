"""Fraud state: card history features, the merchant amount profile, write sharding, history (F13)."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_contract.messages import CardSnapshot, TransactionMessage
from tap_pipeline import amounts, fraud_state
from tap_pipeline.amounts import AmountProfile
from tap_pipeline.fraud_state import (
    CARD_HISTORY_LIMIT,
    CardEvent,
    FraudState,
    ProfileBuffer,
    card_event_item,
    derive_facts,
    is_small,
    received_ms,
)
from tap_pipeline.repository import TransactionStore, iso_millis, merchant_shard_key, stable_shard

MERCHANT = "hot-merchant"
START = datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC)


def _message(
    transaction_id: str,
    fingerprint: str = "fp",
    amount: str = "25.00",
    currency: str = "USD",
    at: datetime = START,
    merchant_id: str = MERCHANT,
) -> TransactionMessage:
    return TransactionMessage(
        transaction_id=transaction_id,
        timestamp=iso_millis(at),
        merchant_id=merchant_id,
        merchant_shard=merchant_shard_key(merchant_id, transaction_id, 16),
        amount=amount,
        currency=currency,
        card=CardSnapshot(fingerprint=fingerprint, kind="pan", bin="411111", last4="1111"),
    )


def _event(message: TransactionMessage) -> CardEvent:
    return CardEvent.from_item(card_event_item(message))


def _facts_with_history(message: TransactionMessage, earlier: list[TransactionMessage]) -> object:
    return derive_facts(message, [_event(m) for m in earlier], AmountProfile(), None)


def test_card_event_holds_no_card_data_and_sorts_by_receive_time_then_id():
    message = _message("t-1")

    item = card_event_item(message)

    assert item["pk"] == "card#fp"
    assert item["sk"] == f"{received_ms(message):013d}#t-1"
    assert set(item) == {"pk", "sk", "merchant_id", "currency", "amount", "small", "expires_at"}
    later = card_event_item(_message("t-0", at=START + timedelta(milliseconds=1)))
    assert later["sk"] > item["sk"]  # time first, id only breaks ties


def test_card_counts_include_the_transaction_and_only_the_windows_history():
    earlier = [
        _message(f"e-{i}", at=START - timedelta(seconds=s)) for i, s in enumerate((5, 30, 59, 61, 3599))
    ]
    facts = _facts_with_history(_message("now"), earlier)

    assert facts.card_count_minute == 4  # 5, 30, 59 s ago and itself
    assert facts.card_count_hour == 6


def test_duplicate_gap_only_for_same_merchant_currency_and_amount():
    earlier = [
        _message("same", at=START - timedelta(seconds=20)),
        _message("other-amount", amount="25.01", at=START - timedelta(seconds=2)),
        _message("other-merchant", merchant_id="elsewhere", at=START - timedelta(seconds=1)),
    ]

    facts = _facts_with_history(_message("now"), earlier)

    assert facts.seconds_since_same_card_merchant_amount == 20.0


def test_small_count_and_merchant_spread():
    earlier = [
        _message(f"s-{i}", amount="1.00", merchant_id=f"m-{i}", at=START - timedelta(seconds=60 * i + 1))
        for i in range(4)
    ] + [_message("old", merchant_id="m-old", at=START - timedelta(seconds=1200))]

    small = _facts_with_history(_message("now", amount="2.00"), earlier)
    large = _facts_with_history(_message("now", amount="200.00"), earlier)

    assert small.card_small_count_hour == 5
    assert large.card_small_count_hour == 0
    assert small.card_merchants_10m == 5  # m-0..m-3 within 10 minutes + this merchant; m-old is older


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7200), min_size=2, max_size=30, unique=True), st.randoms())
def test_features_of_every_transaction_are_the_same_in_any_processing_order(offsets, rnd):
    """The history a transaction sees is fixed by receive times, so scoring order cannot change it."""
    messages = [_message(f"t-{o}", at=START + timedelta(seconds=o)) for o in offsets]
    events = [_event(m) for m in messages]

    def features(order: list[TransactionMessage]) -> dict[str, object]:
        result = {}
        for message in order:
            own = received_ms(message)
            history = [e for e in events if (e.received_ms, e.transaction_id) < (own, message.transaction_id)]
            history = [e for e in history if e.received_ms >= own - 3600 * 1000]
            result[message.transaction_id] = derive_facts(message, history, AmountProfile(), None)
        return result

    shuffled = list(messages)
    rnd.shuffle(shuffled)
    assert features(messages) == features(shuffled)


def test_card_history_query_reads_only_earlier_events_of_the_card(pipeline):
    state = FraudState(pipeline.fraud_state_table, shards=16)
    table = pipeline.ddb.Table(pipeline.fraud_state_table)
    now = _message("now")
    for message in [
        now,
        _message("before", at=START - timedelta(seconds=10)),
        _message("after", at=START + timedelta(seconds=10)),
        _message("too-old", at=START - timedelta(seconds=3601)),
        _message("other-card", fingerprint="fp2", at=START - timedelta(seconds=1)),
        _message("a-same-ms", at=START),  # same millisecond, smaller id: counts as earlier
    ]:
        table.put_item(Item=card_event_item(message))

    history = state.card_history(now)

    assert [event.transaction_id for event in history] == ["a-same-ms", "before"]


def test_card_history_is_bounded(pipeline):
    state = FraudState(pipeline.fraud_state_table, shards=16)
    table = pipeline.ddb.Table(pipeline.fraud_state_table)
    for index in range(CARD_HISTORY_LIMIT + 20):
        table.put_item(
            Item=card_event_item(_message(f"e-{index:03d}", at=START - timedelta(seconds=index + 1)))
        )

    assert len(state.card_history(_message("now"))) == CARD_HISTORY_LIMIT


@pytest.mark.parametrize("batch_size", [1, 10])
def test_hot_merchant_at_1000_tps_never_concentrates_writes_on_one_item(batch_size):
    """1,000 transactions in one second for one merchant (each from a different card), delivered in
    batches as the event source mapping would: count the writes per fraud-state item and per
    merchant-index key. The busiest must stay far under 500 (DynamoDB allows 1,000 WCU/s/partition)."""
    state = FraudState("fraud", shards=16)
    writes: Counter[tuple[str, str]] = Counter()
    index_keys: Counter[str] = Counter()
    buffer = ProfileBuffer()
    # Seeded: with batches of 10 only 100 profile writes land on 16 shards, and unseeded ids left
    # some shard without one in about 1 run in 40.
    ids = random.Random(1000 + batch_size)
    for number in range(1000):
        transaction_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        message = _message(transaction_id, fingerprint=uuid.UUID(int=ids.getrandbits(128), version=4).hex)
        event = card_event_item(message)
        writes[(event["pk"], event["sk"])] += 1
        buffer.add(message, None)
        index_keys[message.merchant_shard] += 1
        if (number + 1) % batch_size == 0:
            for update in buffer.pending_updates(state):
                writes[(update["Key"]["pk"], update["Key"]["sk"])] += 1
            buffer.clear()

    profile_writes = {k: n for k, n in writes.items() if k[0].startswith(f"amounts#{MERCHANT}#")}
    assert sum(profile_writes.values()) == 1000 // batch_size
    assert max(writes.values()) < 125  # ~63 per profile shard with single-message batches
    assert max(index_keys.values()) < 125
    assert len(profile_writes) == 16


def test_profile_buffer_sums_a_batch_into_one_update_per_merchant_and_currency():
    state = FraudState("fraud", shards=16)
    buffer = ProfileBuffer()
    for index, amount in enumerate(("10.00", "10.00", "30.00")):
        buffer.add(_message(f"t-{index}", amount=amount), None)
    buffer.add(_message("t-eur", amount="5.00", currency="EUR"), None)

    updates = buffer.pending_updates(state)

    assert len(updates) == 2
    usd = next(u for u in updates if "#USD#" in u["Key"]["pk"])
    ten, thirty = amounts.bin_of(Decimal(10)), amounts.bin_of(Decimal(30))
    assert usd["ExpressionAttributeValues"] == {f":b{ten}": 2, f":b{thirty}": 1}
    assert usd["UpdateExpression"] == f"ADD h{ten} :b{ten}, h{thirty} :b{thirty}"


def test_profile_buffer_keeps_outliers_out():
    buffer = ProfileBuffer()

    assert buffer.add(_message("ok"), 2.9)
    assert not buffer.add(_message("spike"), amounts.OUTLIER_DEVIATION)
    assert buffer.add(_message("warm-up"), None)  # no established profile yet: nothing to compare


def test_small_amount_threshold_follows_currency_exponent():
    assert is_small(_message("a", amount="5.00"))
    assert not is_small(_message("b", amount="5.01"))
    assert is_small(_message("c", amount="500", currency="JPY"))
    assert not is_small(_message("d", amount="501", currency="JPY"))


def test_profile_median_and_spread_of_a_lognormal_sample():
    rnd = random.Random(7)
    sample = [Decimal(str(round(math.exp(rnd.gauss(math.log(40), 0.9)), 2))) for _ in range(5000)]

    profile = AmountProfile.of(sample)

    assert abs(profile.median_log - math.log(40)) < 0.05
    assert abs(profile.spread_log - 0.9) < 0.05
    assert profile.deviation(Decimal(2000)) > 4  # 50x the median


def test_profile_is_robust_to_a_fifth_of_outliers():
    rnd = random.Random(8)
    normal = [Decimal(str(round(math.exp(rnd.gauss(math.log(40), 0.9)), 2))) for _ in range(800)]
    clean = AmountProfile.of(normal)

    poisoned = AmountProfile.of(normal + [Decimal(4000)] * 200)

    logs = [math.log(a) for a in normal + [Decimal(4000)] * 200]
    mean_shift = sum(logs) / len(logs) - clean.median_log
    assert abs(poisoned.median_log - clean.median_log) < 0.4 < mean_shift  # a mean moves 2-3x more
    assert poisoned.deviation(Decimal(4000)) > 3  # the attack amount is still a spike


def test_profile_with_little_history_scores_nothing():
    profile = AmountProfile.of([Decimal(40)] * (amounts.MIN_SAMPLES - 1))

    assert not profile.established
    assert profile.deviation(Decimal(100000)) is None
    assert AmountProfile.of([Decimal(40)] * amounts.MIN_SAMPLES).deviation(Decimal(80)) is not None


def test_profile_spread_has_a_floor_for_single_price_merchants():
    profile = AmountProfile.of([Decimal("9.99")] * 100)

    assert profile.spread_log == amounts.MIN_SPREAD
    assert profile.deviation(Decimal("19.98")) < 3  # twice the price is not a spike


def test_profile_merges_shards_exactly():
    parts = [{100: 2, 101: 1}, {101: 3}, {}]

    assert AmountProfile.merged(parts).bins == {100: 2, 101: 4}
    assert amounts.bins_of_item({"pk": "x", "sk": "hist", "h101": Decimal(3), "seeded_at": "t"}) == {101: 3}


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


def test_profile_cache_keeps_only_established_profiles_and_adds_its_own_writes(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(fraud_state.time, "monotonic", lambda: clock[0])
    state = FraudState("fraud", shards=16, profile_cache_seconds=60)
    young = AmountProfile.of([Decimal(40)] * (amounts.MIN_SAMPLES - 1))
    grown = AmountProfile.of([Decimal(40)] * amounts.MIN_SAMPLES)

    state.remember_profile(MERCHANT, "USD", young)
    assert state.cached_profile(MERCHANT, "USD") is None  # little history: read again next time
    state.remember_profile(MERCHANT, "USD", grown)
    state.absorb(MERCHANT, "USD", {amounts.bin_of(Decimal(80)): 2})

    clock[0] += 59
    cached = state.cached_profile(MERCHANT, "USD")
    assert cached is not None and cached.count == amounts.MIN_SAMPLES + 2
    clock[0] += 1
    assert state.cached_profile(MERCHANT, "USD") is None  # expired


def test_young_profile_spread_is_shrunk_towards_the_prior_and_old_one_is_not():
    rnd = random.Random(11)

    def sample(n: int) -> AmountProfile:
        return AmountProfile.of(
            [Decimal(str(round(math.exp(rnd.gauss(math.log(9), 0.5)), 2))) for _ in range(n)]
        )

    young, old = sample(25), sample(5000)

    assert young.spread_log > 0.7  # half-way to the prior of 1.0: a 7x amount is not yet a spike
    assert abs(old.spread_log - 0.5) < 0.03

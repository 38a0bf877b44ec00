"""Fraud detector end to end on moto: rules on real state, status, alerts, redelivery, F13, F15, budget."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tap_pipeline import amounts
from tap_pipeline.amounts import AmountProfile
from tap_pipeline.rules import rule_of
from tests.unit.functions.conftest import (
    FUTURE_EXPIRY,
    MASTERCARD,
    TEST_MERCHANT,
    VISA,
    emitted_metrics,
    transaction,
)

OTHER_CARDS = [
    "4012888888881881",
    "4222222222222",
    "5105105105105100",
    "6011111111111117",
    "3566002020360505",
]


def _submit(pipeline: Any, **overrides: Any) -> str:
    response = pipeline.post(transaction(**overrides))
    assert response["statusCode"] == 202, response["json"]
    return response["json"]["transaction_id"]


def _score(pipeline: Any, **overrides: Any) -> dict[str, Any]:
    transaction_id = _submit(pipeline, **overrides)
    result = pipeline.run_detector()
    assert result == {"batchItemFailures": []}
    return pipeline.record(transaction_id)


def _rules_fired(record: dict[str, Any]) -> set[str]:
    return {rule_of(reason) for reason in record.get("reasons", [])}


def test_p4_p5_ordinary_transaction_is_cleared_with_score(pipeline):
    record = _score(pipeline)

    assert record["status"] == "CLEARED"
    assert record["fraud_score"] == 0
    assert record["reasons"] == []
    assert pipeline.published(pipeline.fraud_capture_url) == []


def test_velocity_rule_fires_on_real_card_history(pipeline):
    for cents in range(6):
        _submit(pipeline, amount=f"10.{cents:02d}")
    pipeline.run_detector()

    record = _score(pipeline, amount="10.99")

    assert "velocity_1m" in _rules_fired(record)
    assert record["status"] == "FLAGGED"  # a velocity burst alone flags by default
    assert record["features"]["card_count_minute"] == 7


def test_velocity_from_other_cards_does_not_count(pipeline):
    for index, number in enumerate(OTHER_CARDS):
        _submit(pipeline, amount=f"11.{index:02d}", card={"number": number, "expiry": FUTURE_EXPIRY})
    pipeline.run_detector()

    record = _score(pipeline, amount="12.00")

    assert "velocity_1m" not in _rules_fired(record)


def test_duplicate_is_flagged_with_exactly_one_alert_showing_bin_and_last4_only(pipeline):
    first = _score(pipeline, amount="42.00")
    second = _score(pipeline, amount="42.00")

    assert first["status"] == "CLEARED"
    assert second["status"] == "FLAGGED"
    assert "duplicate" in _rules_fired(second)
    alerts = pipeline.published(pipeline.fraud_capture_url)
    assert len(alerts) == 1
    assert alerts[0]["transaction_id"] == second["transaction_id"]
    assert alerts[0]["card"] == {"bin": "411111", "last4": "1111"}
    assert VISA not in json.dumps(alerts[0])
    assert "fingerprint" not in json.dumps(alerts[0])


def test_card_testing_small_amounts_across_merchants(pipeline):
    for shop in ("shop-a", "shop-b", "shop-c"):
        pipeline.put_merchant(shop, min_amount=Decimal("0.10"))
    amounts = ["1.00", "1.01", "1.02", "1.03"]
    for index, amount in enumerate(amounts):
        _submit(pipeline, merchant_id=("shop-a", "shop-b", "shop-c")[index % 3], amount=amount)
    pipeline.run_detector()

    record = _score(pipeline, merchant_id="shop-b", amount="1.04")

    assert "card_testing" in _rules_fired(record)
    assert record["status"] == "FLAGGED"


def test_card_testing_ignores_normal_amounts(pipeline):
    for cents in range(4):
        _submit(pipeline, amount=f"80.{cents:02d}")
    pipeline.run_detector()

    record = _score(pipeline, amount="80.50")

    assert "card_testing" not in _rules_fired(record)


def test_country_currency_mismatch(pipeline):
    record = _score(pipeline, country="DE", currency="USD")

    assert _rules_fired(record) == {"geo_mismatch"}
    assert record["status"] == "CLEARED"


def test_amount_over_merchant_review_limit_from_rule_overrides(pipeline):
    pipeline.put_merchant("limit-shop", rule_overrides={"amount_over_limit": {"threshold": Decimal(100)}})

    over = _score(pipeline, merchant_id="limit-shop", amount="150.00")
    under = _score(
        pipeline, merchant_id="limit-shop", amount="99.00", card={"number": MASTERCARD, "expiry": "10/38"}
    )

    assert over["status"] == "FLAGGED" and "amount_over_limit" in _rules_fired(over)
    assert under["status"] == "CLEARED"


def test_merchant_flag_threshold_override_flags_weaker_signals(pipeline):
    pipeline.put_merchant("strict-shop", flag_threshold=Decimal(20))

    record = _score(pipeline, merchant_id="strict-shop", country="DE")

    assert record["status"] == "FLAGGED"


def _seed_history(
    pipeline: Any, merchant_id: str, amounts: list[str], status: str = "CLEARED", **extra: Any
) -> None:
    from tap_pipeline.repository import merchant_shard_key

    table = pipeline.ddb.Table(pipeline.transactions_table)
    for index, amount in enumerate(amounts):
        transaction_id = f"hist-{merchant_id}-{status}-{index}"
        table.put_item(
            Item={
                "transaction_id": transaction_id,
                "timestamp": f"2099-01-01T00:00:{index % 60:02d}.{index:03d}Z",
                "status": status,
                "merchant_id": merchant_id,
                "merchant_shard": merchant_shard_key(merchant_id, transaction_id, 16),
                "amount": Decimal(amount),
                "currency": extra.get("currency", "USD"),
                "card_fingerprint": f"fp-{index}",
            }
        )


def test_f13_amount_spike_against_baseline_rebuilt_from_merchant_history(pipeline):
    # 40 past cleared transactions of 20-30 USD, no fraud-state aggregates at all: the detector must
    # rebuild the baseline from merchant-index (all shards) and see the spike.
    _seed_history(pipeline, TEST_MERCHANT, [f"{20 + (i % 11)}.00" for i in range(40)])
    _seed_history(pipeline, TEST_MERCHANT, ["4000.00"] * 5, status="FLAGGED")  # fraud is not "normal"
    _seed_history(pipeline, "someone-else", ["4000.00"] * 5)

    record = _score(pipeline, amount="900.00", transaction_id="spike-1")

    assert "amount_spike" in _rules_fired(record)
    seed = pipeline.ddb.Table(pipeline.fraud_state_table).get_item(
        Key={"pk": f"amounts#{TEST_MERCHANT}#USD#seed", "sk": "hist"}
    )["Item"]
    assert sum(amounts.bins_of_item(seed).values()) == 40
    assert record["features"]["baseline_count"] == 40


def test_f13_baseline_is_seeded_once_then_maintained_by_sharded_adds(pipeline, api_calls):
    _score(pipeline, amount="10.00")
    queries_after_first = api_calls["dynamodb.Query"]
    _score(pipeline, amount="12.00", card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY})

    # one per merchant-index shard, first transaction only; plus one card-history query each
    assert queries_after_first == 16 + 1
    assert api_calls["dynamodb.Query"] == 16 + 2
    items = pipeline.scan(pipeline.fraud_state_table)
    shards = [
        i
        for i in items
        if i["pk"].startswith(f"amounts#{TEST_MERCHANT}#USD#") and not i["pk"].endswith("seed")
    ]
    assert AmountProfile.merged(amounts.bins_of_item(i) for i in shards) == AmountProfile.of(
        [Decimal("10.00"), Decimal("12.00")]
    )


def test_redelivered_message_sends_no_second_alert_and_counts_nothing_twice(pipeline):
    _score(pipeline, amount="42.00")
    transaction_id = _submit(pipeline, amount="42.00")
    messages = pipeline.drain(pipeline.queue_url)

    first = pipeline.run_detector(messages)
    state_after_first = sorted(
        json.dumps(i, default=str, sort_keys=True) for i in pipeline.scan(pipeline.fraud_state_table)
    )
    record_after_first = pipeline.record(transaction_id)
    second = pipeline.run_detector(messages)  # SQS at-least-once: same message again
    third = pipeline.run_detector(messages)

    assert first == second == third == {"batchItemFailures": []}
    assert record_after_first["status"] == "FLAGGED"
    assert pipeline.record(transaction_id) == record_after_first
    state_after_redelivery = sorted(
        json.dumps(i, default=str, sort_keys=True) for i in pipeline.scan(pipeline.fraud_state_table)
    )
    assert state_after_redelivery == state_after_first
    assert [a["transaction_id"] for a in pipeline.published(pipeline.fraud_capture_url)] == [transaction_id]


def test_alert_lost_to_a_crash_is_sent_on_redelivery_exactly_once(pipeline, monkeypatch):
    from tap_pipeline import alerts, aws

    _score(pipeline, amount="42.00")
    transaction_id = _submit(pipeline, amount="42.00")
    messages = pipeline.drain(pipeline.queue_url)
    real_sns = aws.sns()

    class CrashingSns:
        def publish(self, **kwargs: Any) -> Any:
            raise RuntimeError("simulated crash before the alert left")

    monkeypatch.setattr(aws, "sns", lambda: CrashingSns())
    crashed = pipeline.run_detector(messages)
    assert crashed == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert pipeline.record(transaction_id)["status"] == "FLAGGED"

    monkeypatch.setattr(aws, "sns", lambda: real_sns)
    alerts.clear_cache()
    assert pipeline.run_detector(messages) == {"batchItemFailures": []}
    assert pipeline.run_detector(messages) == {"batchItemFailures": []}

    assert [a["transaction_id"] for a in pipeline.published(pipeline.fraud_capture_url)] == [transaction_id]


def test_f15_one_bad_message_does_not_fail_batch(pipeline, logs, capsys):
    _submit(pipeline, transaction_id="good-1", amount="10.00")
    _submit(
        pipeline,
        transaction_id="good-2",
        amount="11.00",
        card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY},
    )
    good = pipeline.drain(pipeline.queue_url)
    poison = {"MessageId": "poison-msg-1", "Body": "{not json", "Attributes": {}}

    result = pipeline.run_detector([good[0], poison, good[1]])

    assert result == {"batchItemFailures": [{"itemIdentifier": "poison-msg-1"}]}
    assert pipeline.record("good-1")["status"] == "CLEARED"
    assert pipeline.record("good-2")["status"] == "CLEARED"
    failure_logs = logs.matching("message processing failed; reporting it as a batch item failure")
    assert len(failure_logs) == 1
    assert failure_logs[0]["message_id"] == "poison-msg-1"
    assert failure_logs[0]["error_type"] == "PoisonMessage"
    assert "not a transaction message" in failure_logs[0]["cause"]
    # Reported, not raised: Lambda's Errors metric never sees it, so the C6 alarm counts these.
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["RecordProcessingFailed"] == 1
    assert metrics["RecordProcessingSucceeded"] == 2


def test_f15_processing_error_is_reported_per_message_and_recorded_on_the_transaction(pipeline, monkeypatch):
    from tap_pipeline import fraud_state

    _submit(pipeline, transaction_id="broken-1")
    messages = pipeline.drain(pipeline.queue_url)

    def failing_read(self: Any, message: Any) -> Any:
        raise ConnectionError("dynamodb unreachable")

    monkeypatch.setattr(fraud_state.FraudState, "card_history", failing_read)
    result = pipeline.run_detector(messages)

    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    record = pipeline.record("broken-1")
    assert record["status"] == "RECEIVED"
    assert record["last_error"] == "ConnectionError: dynamodb unreachable"
    assert record["processing_attempts"] == 1


def test_message_without_a_record_fails_so_it_reaches_the_dlq(pipeline):
    _submit(pipeline, transaction_id="ghost-1")
    messages = pipeline.drain(pipeline.queue_url)
    pipeline.ddb.Table(pipeline.transactions_table).delete_item(
        Key={"transaction_id": "ghost-1", "timestamp": json.loads(messages[0]["Body"])["timestamp"]}
    )

    result = pipeline.run_detector(messages)

    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}


def _deliver_in_batches(pipeline: Any, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):  # the event source mapping delivers up to 10 at a time
        assert pipeline.run_detector(messages[start : start + 10]) == {"batchItemFailures": []}


def _fresh_pan(serial: int) -> str:
    """A distinct Luhn-valid Visa-range PAN per serial number (history must not trip card rules)."""
    from tap_contract.card_numbers import luhn_valid

    body = f"4{serial:014d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def _submit_clean(pipeline: Any, serial: int) -> None:
    """An unremarkable transaction: its own card, an amount in the merchant's usual 20-49 range."""
    _submit(
        pipeline,
        amount=f"{20 + serial % 30}.00",
        card={"number": _fresh_pan(serial), "expiry": FUTURE_EXPIRY},
    )


def _end_to_end_cost(pipeline: Any, api_calls: Counter[str], batch: int, first_serial: int) -> Counter[str]:
    """Billable AWS requests made by the functions for ``batch`` accepted transactions, end to end
    (the event source mapping's own SQS polling is not function code and is not counted)."""
    api_calls.clear()
    for serial in range(first_serial, first_serial + batch):
        _submit_clean(pipeline, serial)
    cost = Counter(api_calls)
    messages = pipeline.drain(pipeline.queue_url)  # stands in for the event source mapping
    api_calls.clear()
    assert pipeline.run_detector(messages) == {"batchItemFailures": []}
    return cost + Counter(api_calls)


@pytest.mark.parametrize("history_size", [0, 40])
def test_happy_path_costs_at_most_5_requests_per_transaction_flat_in_history(
    pipeline, api_calls, history_size
):
    # An established merchant (a new one's profile is re-read per transaction until it has 20
    # amounts); the first transaction warms the caches and seeds the profile from this history.
    _seed_history(pipeline, TEST_MERCHANT, [f"{20 + i % 30}.00" for i in range(40)])
    _score(pipeline, amount="30.00")
    for serial in range(history_size):
        _submit_clean(pipeline, serial)
    _deliver_in_batches(pipeline, pipeline.drain(pipeline.queue_url))

    single = _end_to_end_cost(pipeline, api_calls, batch=1, first_serial=1000)
    batch_of_ten = _end_to_end_cost(pipeline, api_calls, batch=10, first_serial=2000)

    assert single == Counter(
        {
            "dynamodb.TransactWriteItems": 1,  # validator: record + guard + card event
            "sqs.SendMessage": 1,
            "dynamodb.Query": 1,  # the card's earlier events
            "dynamodb.UpdateItem": 2,  # the verdict; the batch's merchant-profile ADD
        }
    )
    assert batch_of_ten == Counter(
        {
            "dynamodb.TransactWriteItems": 10,
            "sqs.SendMessage": 10,
            "dynamodb.Query": 10,
            "dynamodb.UpdateItem": 11,
        }
    )
    assert sum(single.values()) <= 5
    assert sum(batch_of_ten.values()) / 10 <= 4.1
    assert {r["status"] for r in pipeline.records()} == {"CLEARED"}


def test_lost_profile_update_is_logged_and_does_not_fail_or_double_count(pipeline, monkeypatch, logs):
    from tap_pipeline import fraud_state

    _score(pipeline, amount="10.00")  # seeds the baseline
    _submit(
        pipeline,
        transaction_id="lost-1",
        amount="11.00",
        card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY},
    )
    messages = pipeline.drain(pipeline.queue_url)

    def failing_update(*args: Any) -> dict[str, Any]:
        return {"TableName": "no-such-table", "Key": {"pk": "x", "sk": "y"}, "UpdateExpression": "ADD n :n",
                "ExpressionAttributeValues": {":n": 1}}  # fmt: skip

    monkeypatch.setattr(fraud_state, "profile_add", failing_update)
    result = pipeline.run_detector(messages)

    assert result == {"batchItemFailures": []}
    assert pipeline.record("lost-1")["status"] == "CLEARED"
    assert logs.matching("merchant profile samples lost")[0]["samples"] == 1


def test_redelivered_cleared_message_does_not_count_twice_in_velocity_or_profile(pipeline):
    _score(pipeline, amount="10.00")  # seeds the baseline
    _submit(
        pipeline,
        transaction_id="again-1",
        amount="12.00",
        card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY},
    )
    messages = pipeline.drain(pipeline.queue_url)

    pipeline.run_detector(messages)
    before = sorted(
        json.dumps(i, default=str, sort_keys=True) for i in pipeline.scan(pipeline.fraud_state_table)
    )
    pipeline.run_detector(messages)
    after = sorted(
        json.dumps(i, default=str, sort_keys=True) for i in pipeline.scan(pipeline.fraud_state_table)
    )

    assert after == before
    shards = [
        i
        for i in pipeline.scan(pipeline.fraud_state_table)
        if i["pk"].startswith("amounts#") and "seed" not in i["pk"]
    ]
    assert sum(sum(amounts.bins_of_item(i).values()) for i in shards) == 2
    assert pipeline.record("again-1")["status"] == "CLEARED"


def test_of_a_duplicate_pair_the_later_by_receive_time_is_flagged_in_either_processing_order(pipeline):
    """Issue 10: the detector processing the second charge first must not flag the first one."""
    _submit(pipeline, transaction_id="pair-first", amount="42.00")
    _submit(pipeline, transaction_id="pair-second", amount="42.00")
    first, second = pipeline.drain(pipeline.queue_url)

    assert pipeline.run_detector([second]) == {"batchItemFailures": []}
    assert pipeline.run_detector([first]) == {"batchItemFailures": []}

    assert pipeline.record("pair-first")["status"] == "CLEARED"
    later = pipeline.record("pair-second")
    assert later["status"] == "FLAGGED" and _rules_fired(later) == {"duplicate"}
    alerts = pipeline.published(pipeline.fraud_capture_url)
    assert [a["transaction_id"] for a in alerts] == ["pair-second"]


def test_card_event_is_written_with_the_record_and_not_for_a_refused_request(pipeline):
    _submit(pipeline, transaction_id="evented", amount="42.00")
    refused = pipeline.post(transaction(merchant_id="no-such-merchant"))

    assert refused["statusCode"] == 422
    events = [i for i in pipeline.scan(pipeline.fraud_state_table) if i["pk"].startswith("card#")]
    assert [e["sk"].split("#", 1)[1] for e in events] == ["evented"]
    assert events[0]["amount"] == "42.00" and events[0]["merchant_id"] == TEST_MERCHANT
    assert VISA not in json.dumps(events, default=str)


def _snapshot_tables(pipeline: Any) -> dict[str, list[dict[str, Any]]]:
    return {t: pipeline.scan(t) for t in (pipeline.transactions_table, pipeline.fraud_state_table)}


def _restore_tables(pipeline: Any, snapshot: dict[str, list[dict[str, Any]]]) -> None:
    from tests.unit.functions.backend import clear_package_caches

    for table_name, items in snapshot.items():
        table = pipeline.ddb.Table(table_name)
        keys = [k["AttributeName"] for k in table.key_schema]
        for item in pipeline.scan(table_name):
            table.delete_item(Key={k: item[k] for k in keys})
        for item in items:
            table.put_item(Item=item)
    clear_package_caches()  # a fresh detector container for each delivery order


# The merchant profile is a statistic that moves with the merchant's cleared traffic: which of the
# set's own ordinary amounts are already in it when a transaction is scored does depend on order,
# by a sample or two in 200 (the verdicts, compared below, do not).
PROFILE_FEATURES = {"baseline_count", "baseline_median", "amount_deviation"}


def test_verdicts_and_features_are_identical_in_shuffled_delivery_orders(pipeline):
    """Issue 10: the same accepted messages, delivered in several seeded random orders (a standard
    queue has no order) and batch sizes, get identical statuses, scores, rules and card features."""
    import random

    pipeline.put_merchant("shop-b", min_amount=Decimal("0.10"))
    pipeline.put_merchant("shop-c", min_amount=Decimal("0.10"))
    pipeline.put_merchant("shop-d", min_amount=Decimal("0.10"))
    pipeline.put_merchant("shop-e", min_amount=Decimal("0.10"))
    _seed_history(pipeline, TEST_MERCHANT, [f"{20 + (i % 30)}.00" for i in range(200)])
    history = pipeline.drain(pipeline.queue_url)
    assert history == []

    def card(serial: int) -> dict[str, str]:
        return {"number": _fresh_pan(serial), "expiry": FUTURE_EXPIRY}

    for use in range(8):  # velocity burst
        _submit(pipeline, transaction_id=f"vel-{use}", amount=f"{30 + use}.00", card=card(1))
    for use in range(2):  # duplicate pair
        _submit(pipeline, transaction_id=f"dup-{use}", amount="55.00", card=card(2))
    for use in range(6):  # card testing across shops
        shop = (TEST_MERCHANT, "shop-b", "shop-c")[use % 3]
        _submit(pipeline, transaction_id=f"test-{use}", merchant_id=shop, amount=f"1.{use:02d}", card=card(3))
    for use, shop in enumerate((TEST_MERCHANT, "shop-b", "shop-c", "shop-d", "shop-e")):  # spread
        _submit(pipeline, transaction_id=f"spread-{use}", merchant_id=shop, amount=f"2{use}.50", card=card(4))
    _submit(pipeline, transaction_id="spike", amount="2500.00", card=card(5))
    _submit(pipeline, transaction_id="foreign", amount="400.00", country="GB", currency="USD", card=card(6))
    for serial in range(10):
        _submit(
            pipeline, transaction_id=f"normal-{serial}", amount=f"{25 + serial}.00", card=card(100 + serial)
        )
    messages = pipeline.drain(pipeline.queue_url)
    accepted = _snapshot_tables(pipeline)

    def outcome(order: list[dict[str, Any]], batch: int) -> dict[str, tuple[Any, ...]]:
        _restore_tables(pipeline, accepted)
        for start in range(0, len(order), batch):
            assert pipeline.run_detector(order[start : start + batch]) == {"batchItemFailures": []}
        return {
            r["transaction_id"]: (
                r["status"],
                r["fraud_score"],
                tuple(sorted(_rules_fired(r))),
                {k: v for k, v in r["features"].items() if k not in PROFILE_FEATURES},
            )
            for r in pipeline.records()
            if not r["transaction_id"].startswith("hist-")
        }

    baseline = outcome(messages, 10)
    for seed, batch in ((1, 10), (2, 1), (3, 7)):
        shuffled = list(messages)
        random.Random(seed).shuffle(shuffled)
        assert outcome(shuffled, batch) == baseline, f"order seed {seed}"

    flagged = {t for t, (status, *_) in baseline.items() if status == "FLAGGED"}
    assert flagged == {
        *(f"vel-{u}" for u in range(5, 8)),
        "dup-1",
        *(f"test-{u}" for u in range(4, 6)),
        *(f"spread-{u}" for u in range(3, 5)),
        "spike",
        "foreign",
    }

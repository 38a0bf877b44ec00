"""Fraud detector end to end on moto: rules on real state, status, alerts, redelivery, F13, F15, budget."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

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
    return {reason.split(":", 1)[0] for reason in record.get("reasons", [])}


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
    assert record["status"] == "CLEARED"  # weight 40 < 50 by default


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
        Key={"pk": f"baseline#{TEST_MERCHANT}#USD#seed", "sk": "agg"}
    )["Item"]
    assert seed["n"] == 40
    assert seed["s"] == sum(Decimal(20 + (i % 11)) for i in range(40))


def test_f13_baseline_is_seeded_once_then_maintained_by_sharded_adds(pipeline, api_calls):
    _score(pipeline, amount="10.00")
    queries_after_first = api_calls["dynamodb.Query"]
    _score(pipeline, amount="12.00", card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY})

    assert queries_after_first == 16  # one per merchant-index shard, first transaction only
    assert api_calls["dynamodb.Query"] == 16
    items = pipeline.scan(pipeline.fraud_state_table)
    shards = [
        i
        for i in items
        if i["pk"].startswith(f"baseline#{TEST_MERCHANT}#USD#") and not i["pk"].endswith("seed")
    ]
    assert sum(i["n"] for i in shards) == 2
    assert sum(i["s"] for i in shards) == Decimal("22.00")


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

    monkeypatch.setattr(fraud_state.FraudState, "read", failing_read)
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
    from tap_pipeline.card import luhn_valid

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
    _score(pipeline, amount="30.00")  # warm caches, seed the merchant baseline
    for serial in range(history_size):
        _submit_clean(pipeline, serial)
    _deliver_in_batches(pipeline, pipeline.drain(pipeline.queue_url))

    single = _end_to_end_cost(pipeline, api_calls, batch=1, first_serial=1000)
    batch_of_ten = _end_to_end_cost(pipeline, api_calls, batch=10, first_serial=2000)

    assert single == Counter(
        {
            "dynamodb.TransactWriteItems": 2,  # validator: record + guard; detector: status + card aggregates
            "sqs.SendMessage": 1,
            "dynamodb.BatchGetItem": 1,  # all fraud state of the transaction
            "dynamodb.UpdateItem": 1,  # the batch's merchant-baseline ADD
        }
    )
    assert batch_of_ten == Counter(
        {
            "dynamodb.TransactWriteItems": 20,
            "sqs.SendMessage": 10,
            "dynamodb.BatchGetItem": 10,
            "dynamodb.UpdateItem": 1,
        }
    )
    assert sum(single.values()) <= 5
    assert sum(batch_of_ten.values()) / 10 <= 4.1
    assert {r["status"] for r in pipeline.records()} == {"CLEARED"}


class _ConflictOnce:
    """DynamoDB client proxy whose first TransactWriteItems is cancelled by a TransactionConflict."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.conflicts == 0:
            self.conflicts += 1
            reasons = [{"Code": "None"}] + [{"Code": "TransactionConflict"}] * (
                len(kwargs["TransactItems"]) - 1
            )
            raise self._real.exceptions.TransactionCanceledException(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return self._real.transact_write_items(**kwargs)


def test_transaction_conflict_on_a_card_item_is_retried_in_process(pipeline, monkeypatch):
    from tap_pipeline import aws

    _submit(pipeline, transaction_id="conflict-1")
    messages = pipeline.drain(pipeline.queue_url)
    proxy = _ConflictOnce(aws.dynamodb())
    monkeypatch.setattr(aws, "dynamodb", lambda: proxy)

    result = pipeline.run_detector(messages)

    assert result == {"batchItemFailures": []}
    assert proxy.conflicts == 1
    assert pipeline.record("conflict-1")["status"] == "CLEARED"


def test_lost_baseline_update_is_logged_and_does_not_fail_or_double_count(pipeline, monkeypatch, logs):
    from tap_pipeline import fraud_state

    _score(pipeline, amount="10.00")  # seeds the baseline
    _submit(
        pipeline,
        transaction_id="lost-1",
        amount="11.00",
        card={"number": MASTERCARD, "expiry": FUTURE_EXPIRY},
    )
    messages = pipeline.drain(pipeline.queue_url)

    def failing_pending(self: Any, state: Any) -> list[dict[str, Any]]:
        return [{"TableName": "no-such-table", "Key": {"pk": "x", "sk": "y"}, "UpdateExpression": "ADD n :n",
                 "ExpressionAttributeValues": {":n": 1}}]  # fmt: skip

    monkeypatch.setattr(fraud_state.BaselineBuffer, "pending_updates", failing_pending)
    result = pipeline.run_detector(messages)

    assert result == {"batchItemFailures": []}
    assert pipeline.record("lost-1")["status"] == "CLEARED"
    assert logs.matching("merchant baseline samples lost")[0]["samples"] == 1


def test_redelivered_cleared_message_does_not_count_twice_in_velocity_or_baseline(pipeline):
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
    baseline = [
        i
        for i in pipeline.scan(pipeline.fraud_state_table)
        if i["pk"].startswith("baseline#") and "seed" not in i["pk"]
    ]
    assert sum(i["n"] for i in baseline) == 2
    assert pipeline.record("again-1")["status"] == "CLEARED"


def test_concurrent_use_of_one_card_is_never_scored_on_stale_state(pipeline, monkeypatch):
    """Two messages of one card processed "at the same time": B reads the card's state, then A is
    scored and committed, then B tries to commit. B's optimistic conditions fail, it re-reads and is
    scored knowing about A (here: as A's duplicate), so concurrency cannot hide a pattern."""
    from tap_pipeline import fraud_state, scoring
    from tap_pipeline.models import TransactionMessage

    _submit(pipeline, transaction_id="race-a", amount="42.00")
    _submit(pipeline, transaction_id="race-b", amount="42.00")
    first, second = pipeline.drain(pipeline.queue_url)
    message_a = TransactionMessage.model_validate_json(first["Body"])
    real_read = fraud_state.FraudState.read
    reads: list[str] = []

    def interleaving_read(self: Any, message: Any) -> Any:
        snapshot = real_read(self, message)
        reads.append(message.transaction_id)
        if message.transaction_id == "race-b" and reads.count("race-b") == 1:
            scoring.process(message_a)  # A commits between B's read and B's write
        return snapshot

    monkeypatch.setattr(fraud_state.FraudState, "read", interleaving_read)
    assert pipeline.run_detector([second]) == {"batchItemFailures": []}

    assert reads == ["race-b", "race-a", "race-b"]  # B re-read after its stale commit was refused
    assert pipeline.record("race-a")["status"] == "CLEARED"
    b = pipeline.record("race-b")
    assert b["status"] == "FLAGGED" and "duplicate" in _rules_fired(b)
    velocity = [i for i in pipeline.scan(pipeline.fraud_state_table) if i["pk"].endswith("#vel60")]
    assert sum(i["n"] for i in velocity) == 2

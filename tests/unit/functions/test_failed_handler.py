"""Failed-transaction handler (P6): every dead letter is recorded FAILED somewhere findable, never dropped."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from tap_pipeline import failures
from tap_testing.backend import UnreachableSns, transaction
from tap_testing.cards import VISA


def _dead_letter(pipeline: Any, transaction_id: str, receive_count: str = "5") -> dict[str, Any]:
    """Accept a transaction and take its queue message, as if it had exhausted its receives."""
    assert pipeline.post(transaction(transaction_id=transaction_id))["statusCode"] == 202
    message = pipeline.drain(pipeline.queue_url)[0]
    message["Attributes"]["ApproximateReceiveCount"] = receive_count
    return message


def test_p6_dead_lettered_transaction_is_recorded_failed_with_reason_and_count(pipeline):
    message = _dead_letter(pipeline, "dlq-1", receive_count="6")

    result = pipeline.run_failed_handler([message])

    assert result == {"batchItemFailures": []}
    record = pipeline.record("dlq-1")
    assert record["status"] == "FAILED"
    assert record["failure_reason"] == "exceeded maxReceiveCount on the transaction queue"
    assert record["receive_count"] == 6
    assert record["failed_message_id"] == message["MessageId"]
    notices = pipeline.published(pipeline.ops_capture_url)
    assert len(notices) == 1
    assert notices[0]["transaction_id"] == "dlq-1"
    assert notices[0]["outcome"] == "failed"


def test_failure_reason_is_the_detectors_last_recorded_error(pipeline, monkeypatch):
    from tap_pipeline.data import fraud_state

    message = _dead_letter(pipeline, "dlq-2")

    def failing_read(self: Any, message: Any) -> Any:
        raise TimeoutError("fraud state read timed out")

    monkeypatch.setattr(fraud_state.FraudState, "card_history", failing_read)
    pipeline.run_detector([message])
    pipeline.run_failed_handler([message])

    record = pipeline.record("dlq-2")
    assert record["status"] == "FAILED"
    assert record["failure_reason"] == "TimeoutError: fraud state read timed out"


def test_redelivered_dead_letter_is_idempotent_one_record_one_notice(pipeline):
    message = _dead_letter(pipeline, "dlq-3")

    pipeline.run_failed_handler([message])
    first = pipeline.record("dlq-3")
    pipeline.run_failed_handler([message])
    pipeline.run_failed_handler([message])

    assert pipeline.record("dlq-3")["failed_message_id"] == first["failed_message_id"]
    assert len(pipeline.records()) == 1
    assert len(pipeline.published(pipeline.ops_capture_url)) == 1


def test_final_transaction_is_left_unchanged_and_not_notified(pipeline):
    message = _dead_letter(pipeline, "dlq-4")
    pipeline.run_detector([message])  # a duplicate copy of the message dead-lettered after scoring
    cleared = pipeline.record("dlq-4")

    result = pipeline.run_failed_handler([{**message, "MessageId": "another-copy"}])

    assert result == {"batchItemFailures": []}
    assert pipeline.record("dlq-4") == cleared
    assert cleared["status"] == "CLEARED"
    assert pipeline.published(pipeline.ops_capture_url) == []


def test_message_without_record_creates_a_failed_record_from_the_message(pipeline):
    message = _dead_letter(pipeline, "dlq-5")
    body = json.loads(message["Body"])
    pipeline.ddb.Table(pipeline.transactions_table).delete_item(
        Key={"transaction_id": "dlq-5", "timestamp": body["timestamp"]}
    )

    pipeline.run_failed_handler([message])

    record = pipeline.record("dlq-5")
    assert record["status"] == "FAILED"
    assert "no transaction record existed" in record["failure_reason"]
    assert record["card_last4"] == "1111"
    assert pipeline.get("dlq-5")["json"]["status"] == "FAILED"


def test_poison_message_is_recorded_once_per_body_without_its_raw_body_even_when_redriven(pipeline):
    poison = {
        "MessageId": "poison-42",
        "Body": '{"oops": "' + VISA + '", "cvv": "737"',
        "Attributes": {"ApproximateReceiveCount": "5", "SentTimestamp": "1740830400000"},
    }

    redriven = {
        **poison,
        "MessageId": "poison-43",
        "Attributes": {**poison["Attributes"], "SentTimestamp": "1740834000000"},
    }

    result = pipeline.run_failed_handler([poison])
    again = pipeline.run_failed_handler([poison])  # redelivery
    replayed = pipeline.run_failed_handler([redriven])  # a redrive: same body, new message id

    assert result == again == replayed == {"batchItemFailures": []}
    key = failures.poison_key(poison["Body"])
    items = [i for i in pipeline.records() if str(i["transaction_id"]).startswith("sqs-body#")]
    assert [i["transaction_id"] for i in items] == [key]
    record = items[0]
    assert record["status"] == "FAILED"
    assert record["first_sent_at"] == "2025-03-01T12:00:00.000Z"
    assert record["receive_count"] == 5
    stored = json.dumps({k: v for k, v in record.items() if k != "transaction_id"}, default=str)
    assert VISA not in stored
    assert "737" not in stored
    # The key hashes the digit-masked body, never the body itself (an unkeyed hash of a PAN).
    masked = failures.masked_excerpt(poison["Body"], limit=len(poison["Body"]))
    assert key == failures.POISON_PREFIX + hashlib.sha256(masked.encode()).hexdigest()
    notices = pipeline.published(pipeline.ops_capture_url)
    assert [n["transaction_id"] for n in notices] == [key]


def test_replayed_dead_letter_of_failed_transaction_sends_no_second_notice(pipeline):
    message = _dead_letter(pipeline, "dlq-replay")
    assert pipeline.run_failed_handler([message]) == {"batchItemFailures": []}
    replayed = {**message, "MessageId": "redriven-1"}  # a redrive assigns a new message id

    assert pipeline.run_failed_handler([replayed]) == {"batchItemFailures": []}

    assert [n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url)] == ["dlq-replay"]
    assert pipeline.record("dlq-replay")["failed_message_id"] == message["MessageId"]


def test_failed_transaction_whose_notice_failed_gets_it_when_its_parked_letter_is_replayed(
    pipeline, monkeypatch
):
    from tap_pipeline.data import clients

    message = _dead_letter(pipeline, "dlq-owed")
    real_sns = clients.sns()

    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())
    assert pipeline.run_failed_handler([message])["batchItemFailures"]  # FAILED recorded, notice not
    assert pipeline.record("dlq-owed")["status"] == "FAILED"
    monkeypatch.setattr(clients, "sns", lambda: real_sns)

    assert pipeline.run_failed_handler([{**message, "MessageId": "redriven-2"}]) == {"batchItemFailures": []}

    assert [n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url)] == ["dlq-owed"]


def test_own_failure_is_reported_as_batch_item_failure_not_dropped(pipeline, monkeypatch):
    from tap_pipeline.data import clients

    good = _dead_letter(pipeline, "dlq-6")
    other = _dead_letter(pipeline, "dlq-7")
    real_sns = clients.sns()

    class FlakySns:
        def publish(self, **kwargs: Any) -> Any:
            if json.loads(kwargs["Message"])["transaction_id"] == "dlq-7":
                raise ConnectionError("sns endpoint unreachable")
            return real_sns.publish(**kwargs)

    monkeypatch.setattr(clients, "sns", lambda: FlakySns())
    result = pipeline.run_failed_handler([good, other])

    assert result == {"batchItemFailures": [{"itemIdentifier": other["MessageId"]}]}
    # SQS retries the failed one: the record stays FAILED (same message id) and the notice goes out once.
    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    assert pipeline.run_failed_handler([other]) == {"batchItemFailures": []}
    notices = sorted(n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url))
    assert notices == ["dlq-6", "dlq-7"]
    assert pipeline.record("dlq-7")["status"] == "FAILED"


def test_flagged_transaction_whose_alert_kept_failing_gets_its_one_alert_from_the_failed_handler(
    pipeline, monkeypatch
):
    from tap_pipeline.data import clients

    pipeline.post(transaction(transaction_id="dup-a"))
    pipeline.run_detector()
    pipeline.published(pipeline.fraud_capture_url)  # dup-a's own alert (if any) is not under test
    message = _dead_letter(pipeline, "dup-b")  # same card, merchant, amount: FLAGGED as duplicate
    real_sns = clients.sns()

    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())
    for _ in range(5):  # every receive fails to publish the alert; SQS then dead-letters it
        assert pipeline.run_detector([message])["batchItemFailures"]
    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    assert pipeline.published(pipeline.fraud_capture_url) == []

    assert pipeline.run_failed_handler([message]) == {"batchItemFailures": []}
    assert pipeline.run_failed_handler([message]) == {"batchItemFailures": []}  # a replayed dead letter

    assert pipeline.record("dup-b")["status"] == "FLAGGED"
    alerts = pipeline.published(pipeline.fraud_capture_url)
    assert [a["transaction_id"] for a in alerts] == ["dup-b"]
    assert alerts[0]["card"] == {"bin": "411111", "last4": "1111"}  # never more of the card
    assert pipeline.published(pipeline.ops_capture_url) == []  # nothing owed to ops: the alert is out


def test_dead_letter_of_flagged_transaction_whose_alert_went_out_sends_nothing_more(pipeline, monkeypatch):
    message = _dead_letter(pipeline, "dup-c")
    pipeline.put_merchant("test-merchant-001", flag_threshold=Decimal(0))  # anything flags
    # Each function runs under its own Lambda name, as deployed: the alert's idempotency key must
    # not depend on it (Powertools' default key prefix does).
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tap-fraud-detector-unittest")
    assert pipeline.run_detector([message]) == {"batchItemFailures": []}
    assert pipeline.record("dup-c")["status"] == "FLAGGED"
    assert [a["transaction_id"] for a in pipeline.published(pipeline.fraud_capture_url)] == ["dup-c"]

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tap-failed-handler-unittest")
    assert pipeline.run_failed_handler([message]) == {"batchItemFailures": []}  # duplicate delivery

    assert pipeline.published(pipeline.fraud_capture_url) == []
    assert pipeline.published(pipeline.ops_capture_url) == []


def test_flagged_dead_letter_whose_alert_publish_fails_is_retried_not_dropped(pipeline, monkeypatch):
    from tap_pipeline.data import clients

    message = _dead_letter(pipeline, "dup-d")
    pipeline.put_merchant("test-merchant-001", flag_threshold=Decimal(0))
    real_sns = clients.sns()

    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())
    assert pipeline.run_detector([message])["batchItemFailures"]
    assert pipeline.run_failed_handler([message]) == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]}]
    }
    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    assert pipeline.run_failed_handler([message]) == {"batchItemFailures": []}
    assert [a["transaction_id"] for a in pipeline.published(pipeline.fraud_capture_url)] == ["dup-d"]


def test_side_effect_idempotency_outlives_every_queue_a_replayable_message_can_wait_in():
    from lib.components import messaging
    from tap_pipeline import idempotency

    # Transaction DLQ, then parking DLQ, then a redrive: a replay inside that span sends nothing twice.
    assert idempotency.SIDE_EFFECT_WINDOW_SECONDS > 2 * messaging.DLQ_RETENTION_SECONDS


def test_unreadable_message_that_names_a_received_record_fails_that_record_not_a_poison_item(pipeline):
    message = _dead_letter(pipeline, "dlq-unreadable")
    body = json.loads(message["Body"])
    del body["card"]  # e.g. written by another version of the validator
    broken = {**message, "Body": json.dumps(body)}

    assert pipeline.run_failed_handler([broken]) == {"batchItemFailures": []}
    assert pipeline.run_failed_handler([{**broken, "MessageId": "redriven-3"}]) == {"batchItemFailures": []}

    record = pipeline.record("dlq-unreadable")
    assert record["status"] == "FAILED"
    assert record["failure_reason"] == failures.UNREADABLE_REASON
    assert not [i for i in pipeline.records() if str(i["transaction_id"]).startswith(failures.POISON_PREFIX)]
    assert [n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url)] == ["dlq-unreadable"]

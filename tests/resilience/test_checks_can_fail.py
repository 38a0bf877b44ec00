"""Each check can fail: planted losses, duplicates, PANs and CVVs are reported, injected faults are real."""

from __future__ import annotations

import json

import boto3
import pytest

from resilience.card_data import CardScan, scan_texts
from resilience.conservation import PipelineState, check
from tap_contract.card_numbers import luhn_valid
from tap_local.emulator import CREDENTIALS, Emulator
from tap_local.faults import FaultPlan, FaultProxy
from tap_local.redrive import redrive
from tap_local.scenarios import luhn_pan


def _state(**overrides: object) -> PipelineState:
    state = PipelineState(
        transactions=[
            {"transaction_id": "a", "status": "CLEARED"},
            {"transaction_id": "b", "status": "FLAGGED"},
            {"transaction_id": "c", "status": "FAILED", "failure_reason": "scoring failed 5 times"},
        ],
        fraud_alerts=[{"transaction_id": "b"}],
        queued={"tap-transactions-local": 0},
    )
    for name, value in overrides.items():
        setattr(state, name, value)
    return state


def test_a_clean_state_passes():
    report = check({"a", "b", "c"}, _state())
    assert report.ok
    assert (len(report.lost), report.duplicate_count) == (0, 0)


def test_a_missing_transaction_is_reported_lost():
    report = check({"a", "b", "c", "d"}, _state())
    assert report.lost == ["d"]
    assert not report.ok


def test_a_transaction_stuck_in_received_is_lost():
    state = _state()
    state.transactions[0] = {"transaction_id": "a", "status": "RECEIVED"}
    report = check({"a", "b", "c"}, state)
    assert report.lost == ["a"]
    assert report.not_final == ["a"]


def test_a_second_alert_and_a_second_record_are_duplicates():
    state = _state(fraud_alerts=[{"transaction_id": "b"}, {"transaction_id": "b"}])
    state.transactions.append({"transaction_id": "a", "status": "CLEARED"})
    report = check({"a", "b", "c"}, state)
    assert report.duplicate_alerts == ["b"]
    assert report.duplicates == ["a"]
    assert report.duplicate_count == 2


def test_missing_alert_missing_reason_and_leftover_messages_are_reported():
    state = _state(fraud_alerts=[], queued={"tap-transactions-dlq-local": 2})
    state.transactions[2] = {"transaction_id": "c", "status": "FAILED"}
    report = check({"a", "b", "c"}, state)
    assert report.flagged_without_alert == ["b"]
    assert report.failed_without_reason == ["c"]
    assert not report.ok


def test_the_card_scanner_finds_a_planted_pan_and_cvv():
    pan = luhn_pan("4", 16)
    assert luhn_valid(pan)
    sent = {"res-1": (pan, "737")}
    clean = CardScan()
    scan_texts(
        iter([("table item:t", json.dumps({"transaction_id": "res-1", "card_last4": pan[-4:]}))]), sent, clean
    )
    assert clean.ok
    found = CardScan()
    texts = [
        ("log line:validator", f"processing card {pan}"),
        ("queue message:q", json.dumps({"transaction_id": "res-1", "extra": {"code": "737"}})),
        ("email:alerts", json.dumps({"card": {"cvv": "999"}})),
        ("table item:t", "unrelated 4" + luhn_pan("4", 16)[1:]),  # any Luhn-valid card-like run
    ]
    scan_texts(iter(texts), sent, found)
    assert len(found.pans) == 2
    assert len(found.cvvs) == 2
    assert not found.ok


def test_the_fault_proxy_answers_with_real_aws_errors():
    emulator = Emulator("us-east-2").start()
    plan = FaultPlan(rate=1.0, worker_crash=False, timeout=False, duplicate_delivery=False)
    proxy = FaultProxy(emulator.port, plan).start()
    try:
        kwargs = {
            "region_name": "us-east-2",
            "endpoint_url": proxy.endpoint_url,
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "config": boto3.session.Config(retries={"max_attempts": 1, "mode": "standard"}),
        }
        dynamodb = boto3.client("dynamodb", **kwargs)
        assert dynamodb.list_tables()["TableNames"] == []  # management calls pass through
        with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException):
            dynamodb.get_item(TableName="t", Key={"k": {"S": "v"}})
        sns = boto3.client("sns", **kwargs)
        topic = sns.create_topic(Name="t")["TopicArn"]
        with pytest.raises(sns.exceptions.ClientError) as raised:
            sns.publish(TopicArn=topic, Message="m")
        assert raised.value.response["Error"]["Code"] in {"Throttled", "InternalError"}
        assert plan.counts["dynamodb_throttling"] >= 1
        assert plan.counts["sns_publish_errors"] >= 1
    finally:
        proxy.stop()
        emulator.stop()


def test_no_fault_plan_rate_zero_injects_nothing():
    plan = FaultPlan(rate=0.0)
    assert not any(plan.invocation_fault() for _ in range(100))
    assert plan.total == 0


def test_redrive_moves_every_message_once():
    emulator = Emulator("us-east-2").start()
    try:
        sqs = emulator.client("sqs")
        source = sqs.create_queue(QueueName="tap-failed-handler-dlq-local")["QueueUrl"]
        destination = sqs.create_queue(QueueName="tap-transactions-dlq-local")["QueueUrl"]
        for index in range(13):
            sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"n": index}))
        assert redrive(sqs, source, destination) == 13
        assert redrive(sqs, source, destination) == 0
        bodies = []
        while messages := sqs.receive_message(QueueUrl=destination, MaxNumberOfMessages=10).get("Messages"):
            bodies += [json.loads(m["Body"])["n"] for m in messages]
            for m in messages:
                sqs.delete_message(QueueUrl=destination, ReceiptHandle=m["ReceiptHandle"])
        assert sorted(bodies) == list(range(13))
    finally:
        emulator.stop()

"""Shared fixtures: a moto backend laid out exactly as docs/function-contract.md describes.

Everything runs in-process under ``moto.mock_aws``: no network, never real AWS. Each test gets a
fresh backend, fresh settings and fresh cached clients.
"""

from __future__ import annotations

import functools
import io
import json
import os
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import botocore.client
import pytest
from moto import mock_aws

REGION = "us-east-2"
SUFFIX = "unittest"
TEST_MERCHANT = "test-merchant-001"
VISA = "4111111111111111"  # Luhn-valid test PAN
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
FUTURE_EXPIRY = "12/39"


# Powertools reads these when tap_pipeline.observability is first imported (at collection time, before
# any fixture runs): tracing must be off and the metrics namespace known from the start, as in Lambda.
os.environ.update(
    {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "TapTransactionPipeline",
        "POWERTOOLS_SERVICE_NAME": "unit-tests",
        "AWS_DEFAULT_REGION": REGION,
    }
)


def _clear_package_caches() -> None:
    """Fresh settings and caches per test. boto3 clients (``tap_pipeline.aws``) are kept: they are
    expensive to build, hold no state, and moto intercepts them in whichever backend is active."""
    from tap_pipeline import alerts, failures, idempotency, intake, keys, scoring, settings

    for module in (settings, keys, idempotency, alerts, intake, scoring, failures):
        module.clear_cache()


@functools.cache
def _test_client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@functools.cache
def _test_dynamodb() -> Any:
    return boto3.resource("dynamodb", region_name=REGION)


class FakeContext:
    """The bits of a Lambda context that Powertools reads."""

    def __init__(self, name: str) -> None:
        self.function_name = f"{name}-{SUFFIX}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Pipeline:
    """Names of everything the stack would create, plus helpers to drive the handlers."""

    merchant_table: str
    transactions_table: str
    fraud_state_table: str
    idempotency_table: str
    queue_url: str
    dlq_url: str
    failed_dlq_url: str
    fraud_topic_arn: str
    ops_topic_arn: str
    fraud_capture_url: str
    ops_capture_url: str
    secret_arn: str
    sqs: Any = field(repr=False)
    ddb: Any = field(repr=False)

    # --- API -----------------------------------------------------------------------------------
    def api(
        self,
        method: str,
        resource: str,
        body: Any = None,
        path: dict[str, str] | None = None,
        raw: bool = False,
    ) -> dict[str, Any]:
        from tap_pipeline.handlers import validator

        if body is not None and not raw:
            body = json.dumps(body)
        event = {
            "resource": resource,
            "path": resource,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json"},
            "pathParameters": path,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "test"},
            "body": body,
            "isBase64Encoded": False,
        }
        response = validator.handler(event, FakeContext("validator"))
        response["json"] = json.loads(response["body"])
        return response

    def post(self, body: Any, raw: bool = False) -> dict[str, Any]:
        return self.api("POST", "/transaction", body, raw=raw)

    def get(self, transaction_id: str) -> dict[str, Any]:
        return self.api("GET", "/transaction/{transaction_id}", path={"transaction_id": transaction_id})

    # --- queues --------------------------------------------------------------------------------
    def receive(self, url: str, max_messages: int = 10) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
        )
        return response.get("Messages", [])

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Receive and delete everything on a queue."""
        collected = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
            messages = batch.get("Messages", [])
            if not messages:
                return collected
            for message in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            collected.extend(messages)

    def queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def sqs_event(self, messages: list[dict[str, Any]], source_url: str | None = None) -> dict[str, Any]:
        arn = f"arn:aws:sqs:{REGION}:123456789012:{(source_url or self.queue_url).rsplit('/', 1)[-1]}"
        records = []
        for message in messages:
            attributes = message.get("Attributes", {})
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message.get("ReceiptHandle", "rh"),
                    "body": message["Body"],
                    "attributes": {
                        "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                        "SentTimestamp": attributes.get("SentTimestamp", "1700000000000"),
                        "SenderId": "AIDEXAMPLE",
                        "ApproximateFirstReceiveTimestamp": attributes.get("SentTimestamp", "1700000000000"),
                    },
                    "messageAttributes": {},
                    "md5OfBody": "0",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                }
            )
        return {"Records": records}

    def run_detector(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Deliver the given messages (default: everything queued) to the fraud detector."""
        from tap_pipeline.handlers import fraud_detector

        if messages is None:
            messages = self.drain(self.queue_url)
        return fraud_detector.handler(self.sqs_event(messages), FakeContext("fraud-detector"))

    def run_failed_handler(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        from tap_pipeline.handlers import failed_handler

        return failed_handler.handler(self.sqs_event(messages, self.dlq_url), FakeContext("failed-handler"))

    # --- tables and topics ---------------------------------------------------------------------
    def scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table}
        while True:
            page = self.ddb.meta.client.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def records(self) -> list[dict[str, Any]]:
        return self.scan(self.transactions_table)

    def record(self, transaction_id: str) -> dict[str, Any]:
        matches = [item for item in self.records() if item["transaction_id"] == transaction_id]
        assert len(matches) == 1, matches
        return matches[0]

    def published(self, capture_url: str) -> list[dict[str, Any]]:
        """Messages published to a topic (captured by an SQS subscription with raw delivery)."""
        return [json.loads(m["Body"]) for m in self.drain(capture_url)]

    def put_merchant(self, merchant_id: str, **overrides: Any) -> None:
        item = {
            "merchant_id": merchant_id,
            "active": True,
            "allowed_currencies": ["USD", "EUR"],
            "min_amount": Decimal("0.50"),
            "max_amount": Decimal("5000.00"),
            "country": "US",
        }
        item.update(overrides)
        self.ddb.Table(self.merchant_table).put_item(Item=item)


def transaction(**overrides: Any) -> dict[str, Any]:
    """A valid request body (card number + expiry + cvv), tweakable per test."""
    body: dict[str, Any] = {
        "merchant_id": TEST_MERCHANT,
        "amount": "25.00",
        "currency": "USD",
        "card": {"number": VISA, "expiry": FUTURE_EXPIRY, "cvv": "123"},
        "country": "US",
    }
    body.update(overrides)
    return body


ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "unit-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "TapTransactionPipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "ENVIRONMENT_SUFFIX": SUFFIX,
    "MERCHANT_CACHE_TTL_SECONDS": "60",
    "MERCHANT_INDEX_NAME": "merchant-index",
    "MERCHANT_INDEX_SHARDS": "16",
    "FRAUD_STATE_SHARDS": "16",
}


def _create_tables(ddb: Any) -> dict[str, str]:
    names = {
        "merchant": f"merchant-config-{SUFFIX}",
        "transactions": f"transactions-{SUFFIX}",
        "fraud": f"fraud-state-{SUFFIX}",
        "idempotency": f"idempotency-{SUFFIX}",
    }
    client = ddb.meta.client
    client.create_table(
        TableName=names["merchant"],
        KeySchema=[{"AttributeName": "merchant_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "merchant_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=names["transactions"],
        KeySchema=[
            {"AttributeName": "transaction_id", "KeyType": "HASH"},
            {"AttributeName": "timestamp", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "transaction_id", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
            {"AttributeName": "merchant_shard", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "merchant-index",
                "KeySchema": [
                    {"AttributeName": "merchant_shard", "KeyType": "HASH"},
                    {"AttributeName": "timestamp", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=names["fraud"],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=names["fraud"], TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    client.create_table(
        TableName=names["idempotency"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=names["idempotency"],
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    return names


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ddb = _test_dynamodb()
        sqs = _test_client("sqs")
        sns = _test_client("sns")
        sm = _test_client("secretsmanager")
        tables = _create_tables(ddb)

        def queue(name: str, **attributes: str) -> tuple[str, str]:
            url = sqs.create_queue(QueueName=f"{name}-{SUFFIX}", Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            return url, arn

        failed_dlq_url, failed_dlq_arn = queue("failed-handler-dlq", MessageRetentionPeriod="1209600")
        dlq_url, dlq_arn = queue(
            "transactions-dlq",
            MessageRetentionPeriod="1209600",
            RedrivePolicy=json.dumps({"deadLetterTargetArn": failed_dlq_arn, "maxReceiveCount": "5"}),
        )
        queue_url, _ = queue(
            "transactions",
            VisibilityTimeout="300",
            RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        )
        fraud_topic = sns.create_topic(Name=f"fraud-alerts-{SUFFIX}")["TopicArn"]
        ops_topic = sns.create_topic(Name=f"ops-alerts-{SUFFIX}")["TopicArn"]
        fraud_capture_url, fraud_capture_arn = queue("fraud-alert-capture")
        ops_capture_url, ops_capture_arn = queue("ops-alert-capture")
        for topic, arn in ((fraud_topic, fraud_capture_arn), (ops_topic, ops_capture_arn)):
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
            )
        secret_arn = sm.create_secret(
            Name=f"card-fingerprint-key-{SUFFIX}", SecretString=secrets.token_hex(32)
        )["ARN"]

        env = {
            "MERCHANT_CONFIG_TABLE_NAME": tables["merchant"],
            "TRANSACTIONS_TABLE_NAME": tables["transactions"],
            "FRAUD_STATE_TABLE_NAME": tables["fraud"],
            "IDEMPOTENCY_TABLE_NAME": tables["idempotency"],
            "TRANSACTION_QUEUE_URL": queue_url,
            "CARD_FINGERPRINT_SECRET_ARN": secret_arn,
            "FRAUD_ALERT_TOPIC_ARN": fraud_topic,
            "OPS_ALERT_TOPIC_ARN": ops_topic,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _clear_package_caches()
        pipe = Pipeline(
            merchant_table=tables["merchant"],
            transactions_table=tables["transactions"],
            fraud_state_table=tables["fraud"],
            idempotency_table=tables["idempotency"],
            queue_url=queue_url,
            dlq_url=dlq_url,
            failed_dlq_url=failed_dlq_url,
            fraud_topic_arn=fraud_topic,
            ops_topic_arn=ops_topic,
            fraud_capture_url=fraud_capture_url,
            ops_capture_url=ops_capture_url,
            secret_arn=secret_arn,
            sqs=sqs,
            ddb=ddb,
        )
        # The merchant the stack seeds (contract doc): active, USD/EUR, 0.50-5000.00, US.
        pipe.put_merchant(TEST_MERCHANT)
        yield pipe
        _clear_package_caches()


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every AWS API call made through botocore, as ``"service.Operation"``."""
    calls: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation_name: str, api_params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}.{operation_name}"] += 1
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls


class LogCapture:
    """Everything the package logged, exactly as formatted for CloudWatch (JSON lines)."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    @property
    def text(self) -> str:
        return self._buffer.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def matching(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("message") == message]


@pytest.fixture
def logs() -> Any:
    """Redirect the Powertools logger's handler (which writes to the stdout it saw at import)."""
    from tap_pipeline.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield LogCapture(buffer)
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]

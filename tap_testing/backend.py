"""The function-test backend: a moto account laid out exactly as the contract (tap_contract) describes.

One builder for everything that drives the handlers in-process against moto: the pytest fixtures
(``tests/unit/functions/conftest.py``), the benchmarks (``bench/``) and the fraud evaluation
(``fraud_eval/``) all use it, so the tables, queues, topics, secret
and environment they test against cannot drift apart. Nothing here talks to real AWS: call
:func:`build_pipeline` inside ``moto.mock_aws()``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3

from lib.graph import DEFAULT_ACCOUNT_ID
from tap_contract import metrics, queues, tables
from tap_contract.seed import TEST_MERCHANT_ID
from tap_pipeline.rules import Facts
from tap_testing.cards import FUTURE_EXPIRY, VISA

REGION = "us-east-2"
SUFFIX = "unittest"
TEST_MERCHANT = TEST_MERCHANT_ID

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "unit-tests",
    "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "ENVIRONMENT_SUFFIX": SUFFIX,
    "MERCHANT_CACHE_TTL_SECONDS": "60",
    "MERCHANT_INDEX_NAME": tables.MERCHANT_INDEX_NAME,
    "MERCHANT_INDEX_SHARDS": str(tables.MERCHANT_INDEX_SHARDS),
    "FRAUD_STATE_SHARDS": "16",
    "FRAUD_PROFILE_CACHE_SECONDS": "60",
    "STALE_RECEIVED_AFTER_SECONDS": "300",
    "STALE_RECEIVED_FAIL_AFTER_SECONDS": "2700",
    "RECONCILER_MAX_REQUEUES": "3",
    "RECONCILER_BATCH_LIMIT": "1000",
    # The key rotation's switch delay, compressed: a rotated key is primary at once (the stack waits
    # 10 minutes for validators' 5-minute key cache; tests clear that cache instead of waiting).
    "CARD_KEY_SWITCH_DELAY_SECONDS": "0",
}

SetEnv = Callable[[str, str], None]


def apply_environment(setenv: SetEnv = os.environ.__setitem__) -> None:
    """The function environment that does not name resources: before ``mock_aws()`` starts, as moto
    restores the environment it found when it stops."""
    for name, value in ENVIRONMENT.items():
        setenv(name, value)


def clear_package_caches() -> None:
    """Fresh settings and caches. boto3 clients (``tap_pipeline.data.clients``) are kept: they are
    expensive to build, hold no state, and moto intercepts them in whichever backend is active."""
    from tap_pipeline import alerts, idempotency, settings
    from tap_pipeline.data import fraud_state, merchants, secrets, transactions

    for module in (settings, secrets, idempotency, alerts):
        module.clear_cache()
    for factory in (merchants.directory, transactions.store, fraud_state.state):
        factory.cache_clear()


@functools.cache
def moto_client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@functools.cache
def moto_dynamodb() -> Any:
    return boto3.resource("dynamodb", region_name=REGION)


class FakeContext:
    """The bits of a Lambda context that Powertools reads."""

    def __init__(self, name: str) -> None:
        self.function_name = f"{name}-{SUFFIX}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_event(messages: list[dict[str, Any]], queue_url: str) -> dict[str, Any]:
    """The Lambda event the SQS event source mapping would deliver for ``messages`` of a queue."""
    arn = f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:{queue_url.rsplit('/', 1)[-1]}"
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


def api_event(
    method: str, resource: str, body: str | None, path: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the validator receives it."""
    return {
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "pathParameters": path,
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "test"},
        "body": body,
        "isBase64Encoded": False,
    }


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

    def environment(self) -> dict[str, str]:
        """The function environment variables that name these resources (as the stack sets them)."""
        return {
            "MERCHANT_CONFIG_TABLE_NAME": self.merchant_table,
            "TRANSACTIONS_TABLE_NAME": self.transactions_table,
            "FRAUD_STATE_TABLE_NAME": self.fraud_state_table,
            "IDEMPOTENCY_TABLE_NAME": self.idempotency_table,
            "TRANSACTION_QUEUE_URL": self.queue_url,
            "CARD_FINGERPRINT_SECRET_ARN": self.secret_arn,
            "FRAUD_ALERT_TOPIC_ARN": self.fraud_topic_arn,
            "OPS_ALERT_TOPIC_ARN": self.ops_topic_arn,
        }

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
        response = validator.handler(api_event(method, resource, body, path), FakeContext("validator"))
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
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
            )
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
        return sqs_event(messages, source_url or self.queue_url)

    def run_detector(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Deliver the given messages (default: everything queued) to the fraud detector."""
        from tap_pipeline.handlers import fraud_detector

        if messages is None:
            messages = self.drain(self.queue_url)
        return fraud_detector.handler(self.sqs_event(messages), FakeContext("fraud-detector"))

    def run_reconciler(self) -> dict[str, Any]:
        """One scheduled run of the reconciler (EventBridge Scheduler's event carries nothing it reads)."""
        from tap_pipeline.handlers import reconciler

        result: dict[str, Any] = reconciler.handler({}, FakeContext("reconciler"))
        return result

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
        """Write a merchant's configuration and forget the cached one.

        In AWS each function caches merchants in its own containers; in this one process the
        validator and the detector share the cache, so a change is made visible at once, as it is to
        a detector container that had not read the merchant yet.
        """
        from tap_pipeline.data import merchants

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
        merchants.directory.cache_clear()


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


def _create_table(
    client: Any,
    name: str,
    keys: tuple[str, ...],
    indexed: tuple[str, ...] = (),
    ttl: str | None = None,
    **extra: Any,
) -> None:
    """An on-demand table with string keys (hash, then optional range), string attributes that
    index keys use, and an optional TTL attribute."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": key, "KeyType": kind}
            for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)
        ],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in (*keys, *indexed)],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    if ttl:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )


def create_tables(ddb: Any) -> dict[str, str]:
    names = {
        "merchant": f"merchant-config-{SUFFIX}",
        "transactions": f"transactions-{SUFFIX}",
        "fraud": f"fraud-state-{SUFFIX}",
        "idempotency": f"idempotency-{SUFFIX}",
    }
    client = ddb.meta.client
    _create_table(client, names["merchant"], (tables.MERCHANT_ID,))
    _create_table(
        client,
        names["transactions"],
        (tables.TRANSACTION_ID, tables.TIMESTAMP),
        indexed=(tables.MERCHANT_SHARD, tables.PENDING_SHARD, tables.PENDING_SINCE),
        GlobalSecondaryIndexes=[
            {
                "IndexName": tables.MERCHANT_INDEX_NAME,
                "KeySchema": [
                    {"AttributeName": tables.MERCHANT_SHARD, "KeyType": "HASH"},
                    {"AttributeName": tables.TIMESTAMP, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": tables.PENDING_INDEX_NAME,
                "KeySchema": [
                    {"AttributeName": tables.PENDING_SHARD, "KeyType": "HASH"},
                    {"AttributeName": tables.PENDING_SINCE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    )
    _create_table(
        client, names["fraud"], (tables.FRAUD_STATE_PK, tables.FRAUD_STATE_SK), ttl=tables.FRAUD_STATE_TTL
    )
    _create_table(client, names["idempotency"], (tables.IDEMPOTENCY_ID,), ttl=tables.IDEMPOTENCY_TTL)
    return names


def build_pipeline(setenv: SetEnv = os.environ.__setitem__) -> Pipeline:
    """Create every resource in the active moto backend and point the package at them.

    Call :func:`apply_environment` first. ``setenv`` sets one environment variable
    (``monkeypatch.setenv`` in tests, so it is undone afterwards). Package caches are cleared, and
    the merchant the stack seeds (contract doc: active, USD/EUR, 0.50-5000.00, US) is in the
    merchant table.
    """
    ddb = moto_dynamodb()
    sqs = moto_client("sqs")
    sns = moto_client("sns")
    tables = create_tables(ddb)

    def queue(name: str, **attributes: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=f"{name}-{SUFFIX}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def redrive_to(arn: str) -> str:
        return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})

    failed_dlq_url, failed_dlq_arn = queue(queues.PARKING_DLQ, MessageRetentionPeriod="1209600")
    dlq_url, dlq_arn = queue(
        queues.TRANSACTIONS_DLQ, MessageRetentionPeriod="1209600", RedrivePolicy=redrive_to(failed_dlq_arn)
    )
    queue_url, _ = queue(queues.TRANSACTIONS, VisibilityTimeout="300", RedrivePolicy=redrive_to(dlq_arn))
    fraud_topic = sns.create_topic(Name=f"{queues.FRAUD_ALERTS}-{SUFFIX}")["TopicArn"]
    ops_topic = sns.create_topic(Name=f"{queues.OPS_ALERTS}-{SUFFIX}")["TopicArn"]
    fraud_capture_url, fraud_capture_arn = queue("fraud-alert-capture")
    ops_capture_url, ops_capture_arn = queue("ops-alert-capture")
    for topic, arn in ((fraud_topic, fraud_capture_arn), (ops_topic, ops_capture_arn)):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    secret = moto_client("secretsmanager").create_secret(
        Name=f"card-fingerprint-key-{SUFFIX}", SecretString=secrets.token_hex(32)
    )
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
        secret_arn=secret["ARN"],
        sqs=sqs,
        ddb=ddb,
    )
    for name, value in pipe.environment().items():
        setenv(name, value)
    clear_package_caches()
    pipe.put_merchant(TEST_MERCHANT)
    return pipe


# A transaction no rule fires on (established merchant, first use of the card), for rule tests.
QUIET_FACTS = Facts(
    transaction_id="t-1",
    amount=Decimal("25.00"),
    currency="USD",
    country="US",
    merchant_country="US",
    merchant_max_amount=Decimal("5000"),
    card_count_minute=1,
    card_count_hour=1,
    is_small_amount=False,
    card_small_count_hour=0,
    seconds_since_same_card_merchant_amount=None,
    card_merchants_10m=1,
    baseline_count=100,
    baseline_median=Decimal(25),
    amount_deviation=0.0,
)


class UnreachableSns:
    """An SNS client whose every publish fails, as when SNS cannot be reached."""

    def publish(self, **kwargs: Any) -> Any:
        raise ConnectionError("sns unreachable")

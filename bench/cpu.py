"""Handler CPU per invocation without AWS latency, and the capacity arithmetic for 1,000 TPS.

Every client's ``before-send`` event returns a canned HTTP response, so botocore still validates,
serialises and parses each call (real client CPU) but nothing leaves the process. CPU is
``time.process_time`` over many warm invocations. The detector consumes the exact message bodies
the validator sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse

from bench.common import Mode
from lib.graph import DEFAULT_ACCOUNT_ID
from tap_contract.seed import TEST_MERCHANT_ID

# Stated in-VPC service latencies (ms per call, through VPC endpoints, same region; assumptions).
LATENCY_MS = {
    "GetItem": 4.0,
    "Query": 6.0,
    "BatchGetItem": 6.0,
    "TransactWriteItems": 12.0,
    "UpdateItem": 5.0,
    "SendMessage": 8.0,
}
LAMBDA_512MB_CPU_SHARE = 512 / 1769  # Lambda allocates one full vCPU at 1,769 MB
TPS = 1_000


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


MERCHANT = {
    "merchant_id": {"S": TEST_MERCHANT_ID},
    "active": {"BOOL": True},
    "allowed_currencies": {"L": [{"S": "USD"}, {"S": "EUR"}]},
    "min_amount": {"N": "0.50"},
    "max_amount": {"N": "5000.00"},
    "country": {"S": "US"},
}


def _fake(request: Any, **_: Any) -> AWSResponse:
    target = request.headers.get("X-Amz-Target", b"")
    target = target.decode() if isinstance(target, bytes) else target
    operation = target.rsplit(".", 1)[-1]
    body: dict[str, Any] = {}
    if operation == "GetItem":
        body = {"Item": MERCHANT}
    elif operation == "BatchGetItem":
        request_items = json.loads(request.body)["RequestItems"]
        # Warm state: the merchant profile exists (no seeding query) and is established (cached
        # after this read); the card has no earlier events (Query below).
        body = {
            "Responses": {
                name: [
                    {**key, "h117": {"N": "4"}, "h118": {"N": "6"}, "h119": {"N": "4"}}
                    for key in spec["Keys"]
                    if key["pk"]["S"].startswith("amounts#")
                ]
                for name, spec in request_items.items()
            },
            "UnprocessedKeys": {},
        }
    elif operation == "Query":
        body = {"Items": [], "Count": 0, "ScannedCount": 0}
    elif operation == "SendMessage":
        sent = json.loads(request.body)
        FakeAws.sent.append(sent["MessageBody"])
        md5 = hashlib.md5(sent["MessageBody"].encode()).hexdigest()  # noqa: S324 - SQS's own checksum
        body = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": md5}
    elif operation == "GetSecretValue":
        body = {"SecretString": "00" * 32, "Name": "k", "ARN": "arn:aws:secretsmanager:us-east-2:1:secret:k"}
    data = json.dumps(body).encode()
    return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.0"}, _Raw(data))  # type: ignore[arg-type]  # botocore only reads .content


class FakeAws:
    sent: list[str] = []

    @staticmethod
    def install() -> None:
        from tap_pipeline.data import clients

        for factory in (
            clients.dynamodb,
            clients.sqs,
            clients.sns,
            clients.secretsmanager,
            clients.raw_dynamodb,
        ):
            factory().meta.events.register_first("before-send", _fake)


@dataclass
class CpuResult:
    validator_ms: list[float]
    detector_ms_per_message: list[float]


def run(mode: Mode) -> CpuResult:
    from tap_testing import backend

    backend.apply_environment()
    os.environ.update(
        {
            "MERCHANT_CONFIG_TABLE_NAME": "m",
            "TRANSACTIONS_TABLE_NAME": "t",
            "FRAUD_STATE_TABLE_NAME": "f",
            "IDEMPOTENCY_TABLE_NAME": "i",
            "TRANSACTION_QUEUE_URL": f"https://sqs.us-east-2.amazonaws.com/{DEFAULT_ACCOUNT_ID}/q",
            "CARD_FINGERPRINT_SECRET_ARN": f"arn:aws:secretsmanager:us-east-2:{DEFAULT_ACCOUNT_ID}:secret:k",
            "FRAUD_ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-2:{DEFAULT_ACCOUNT_ID}:a",
            "OPS_ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-2:{DEFAULT_ACCOUNT_ID}:o",
        }
    )
    backend.clear_package_caches()
    from tap_pipeline.data import clients
    from tap_pipeline.handlers import fraud_detector, validator

    clients.clear_cache()
    FakeAws.install()
    rounds, per_round = (2, 20) if mode.quick else (7, 200)
    validator_ms, detector_ms = [], []
    serial = 0
    for _ in range(rounds + 1):  # the first round warms caches and is discarded
        FakeAws.sent.clear()
        began = time.process_time()
        for _ in range(per_round):
            serial += 1
            body = json.dumps(backend.transaction(amount=f"{20 + serial % 30}.00"))
            event = backend.api_event("POST", "/transaction", body)
            response = validator.handler(event, backend.FakeContext("validator"))
            if response["statusCode"] != 202:
                raise RuntimeError(f"validator did not accept: {response}")
        validator_ms.append((time.process_time() - began) * 1000 / per_round)
        messages = [{"MessageId": str(uuid.uuid4()), "Body": body} for body in FakeAws.sent]
        began = time.process_time()
        for start in range(0, len(messages), 10):
            event = backend.sqs_event(messages[start : start + 10], os.environ["TRANSACTION_QUEUE_URL"])
            outcome = fraud_detector.handler(event, backend.FakeContext("fd"))
            if outcome != {"batchItemFailures": []}:
                raise RuntimeError(f"detector failed: {outcome}")
        detector_ms.append((time.process_time() - began) * 1000 / len(messages))
    clients.clear_cache()
    return CpuResult(validator_ms[1:], detector_ms[1:])


@dataclass
class Capacity:
    function: str
    duration_ms: float
    invocations_per_second: float
    concurrency_needed: float
    limit_name: str
    limit: int


def capacity(validator_cpu_ms: float, detector_cpu_ms: float) -> list[Capacity]:
    """Little's law: concurrency = invocations/s x duration; limits read from the stack's code."""
    from lib.components import functions
    from lib.config import StackSettings

    defaults = StackSettings(environment_suffix="bench", region="us-east-2", alert_email="a@example.com")
    scale = 1 / (LAMBDA_512MB_CPU_SHARE * functions.MEMORY_MB / 512)
    batch = functions.SQS_BATCH_SIZE
    # Validator, warm: merchant config cached -> TransactWriteItems + SendMessage.
    validator_ms = validator_cpu_ms * scale + LATENCY_MS["TransactWriteItems"] + LATENCY_MS["SendMessage"]
    # Detector per batch: per message the card-history Query + the verdict UpdateItem, one profile
    # UpdateItem (the profile itself comes from the container's cache).
    detector_ms = (
        batch * (detector_cpu_ms * scale + LATENCY_MS["Query"] + LATENCY_MS["UpdateItem"])
        + LATENCY_MS["UpdateItem"]
    )
    return [
        Capacity(
            "validator",
            validator_ms,
            TPS,
            TPS * validator_ms / 1000,
            "reserved concurrency",
            defaults.validator_reserved_concurrency,
        ),
        Capacity(
            "fraud detector",
            detector_ms,
            TPS / batch,
            TPS / batch * detector_ms / 1000,
            "mapping maximum concurrency",
            defaults.fraud_detector_max_concurrency,
        ),
    ]

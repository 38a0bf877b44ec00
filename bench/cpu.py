"""Handler CPU per invocation without AWS latency, and the capacity arithmetic for 1,000 TPS.

Every client's ``before-send`` event returns a canned HTTP response, so botocore still validates,
serialises and parses each call (real client CPU) but nothing leaves the process. CPU is
``time.process_time`` over many warm invocations. The detector consumes the exact message bodies
the validator sent.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass

from bench.common import Mode
from bench.fake_aws import FAKE_RESOURCE_ENVIRONMENT, FakeAws

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


@dataclass
class CpuResult:
    validator_ms: list[float]
    detector_ms_per_message: list[float]


def run(mode: Mode) -> CpuResult:
    from tap_testing import backend

    backend.apply_environment()
    os.environ.update(FAKE_RESOURCE_ENVIRONMENT)
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

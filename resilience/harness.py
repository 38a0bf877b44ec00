"""A fresh local pipeline per part, a client that retries like a payment provider, and snapshots.

Every part starts its own `LocalPipeline` on free loopback ports in a temporary workdir, so the
state it inspects afterwards holds only what that part sent.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from boto3.dynamodb.types import TypeDeserializer

from resilience.conservation import PipelineState
from tap_contract.api import FINAL_STATUSES
from tap_local.faults import FaultPlan
from tap_local.pipeline import LocalConfig, LocalPipeline
from tap_local.redrive import queue_urls

RETRYABLE = frozenset({429, 500, 502, 503, 504})
STACK_QUEUE_PREFIX = "tap-"  # the stack's queues; the local email outboxes are named otherwise
# A killed worker's batch is retried only after the dead invocation's deadline (as in AWS, where the
# visibility timeout exceeds the function timeout); 10 s instead of the stack's 60 keeps runs short
# while leaving a local batch (tens of emulator calls) ample time.
FAULT_RUN_FUNCTION_TIMEOUT_SECONDS = 10
# Fault runs compress the reconciler too: it runs every second and calls a record stale after 5 s
# (the stack: every 5 minutes, after 300 s), far above a fault run's normal time to a verdict.
FAULT_RUN_SCHEDULE_SECONDS = 1.0
FAULT_RUN_STALE_AFTER_SECONDS = 5


def stack_queue_urls(pipeline_: LocalPipeline) -> list[str]:
    urls = pipeline_.emulator.client("sqs").list_queues().get("QueueUrls", [])
    return sorted(u for u in urls if u.rsplit("/", 1)[-1].startswith(STACK_QUEUE_PREFIX))


def parking_queue_url(pipeline_: LocalPipeline) -> str:
    return queue_urls(pipeline_.emulator.client("sqs"), pipeline_.outputs)["parking"]


@contextmanager
def pipeline(
    faults: FaultPlan | None = None,
    workers: int = 2,
    retry_delay: int = 1,
    pipeline_class: type[LocalPipeline] = LocalPipeline,
    schedule_seconds: float = FAULT_RUN_SCHEDULE_SECONDS,
) -> Iterator[LocalPipeline]:
    """A fresh pipeline; with `faults`, function timeouts are compressed like the retry delay."""
    workdir = Path(tempfile.mkdtemp(prefix="tap-resilience-"))
    config = LocalConfig(
        emulator_port=0,
        api_port=0,
        workers_per_function=workers,
        retry_delay_seconds=retry_delay,
        workdir=workdir,
        outputs_path=workdir / "flat-outputs.json",
        verbose=False,
        faults=faults,
        function_timeout_seconds=FAULT_RUN_FUNCTION_TIMEOUT_SECONDS if faults is not None else None,
        schedule_interval_seconds=schedule_seconds if faults is not None else None,
        stale_received_after_seconds=FAULT_RUN_STALE_AFTER_SECONDS if faults is not None else None,
    )
    with pipeline_class(config) as running:
        yield running


class Client:
    """POSTs with a caller-chosen transaction id, so a retry after 429/5xx is idempotent."""

    def __init__(self, outputs: dict[str, Any]):
        self.url, self.key = outputs["api_url"], outputs["api_key_value"]
        self.session = requests.Session()

    def post(
        self, body: Any, attempts: int = 6, give_up_on: frozenset[str] = frozenset()
    ) -> tuple[requests.Response, int]:
        """The last response and how many retries it took; an error whose code is in ``give_up_on``
        is not retried (a client that walks away)."""
        headers = {"content-type": "application/json", "x-api-key": self.key}
        for attempt in range(attempts):
            response = self.session.post(self.url, data=json.dumps(body), headers=headers, timeout=60)
            if response.status_code not in RETRYABLE or attempt == attempts - 1:
                return response, attempt
            if error_code(response) in give_up_on:
                return response, attempt
            time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


def error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def new_transaction_id() -> str:
    return f"res-{uuid.uuid4().hex}"


def _scan_table(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    deserialize = TypeDeserializer().deserialize
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name}
    while True:
        page = dynamodb.scan(**kwargs)
        items += [{k: deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan(pipeline_: LocalPipeline, table_output: str) -> list[dict[str, Any]]:
    return _scan_table(pipeline_.emulator.client("dynamodb"), pipeline_.outputs[table_output])


def table_names(pipeline_: LocalPipeline) -> list[str]:
    return pipeline_.emulator.client("dynamodb").list_tables()["TableNames"]


def scan_all_tables(pipeline_: LocalPipeline) -> dict[str, list[dict[str, Any]]]:
    dynamodb = pipeline_.emulator.client("dynamodb")
    return {name: _scan_table(dynamodb, name) for name in table_names(pipeline_)}


def queue_depths(pipeline_: LocalPipeline) -> dict[str, int]:
    """Visible + in flight + delayed messages on every queue the stack defines."""
    sqs = pipeline_.emulator.client("sqs")
    depths = {}
    for url in stack_queue_urls(pipeline_):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        depths[url.rsplit("/", 1)[-1]] = sum(
            int(attributes.get(name, 0))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
    return depths


def outbox(pipeline_: LocalPipeline) -> list[dict[str, Any]]:
    path = pipeline_.config.outbox_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fraud_alerts(pipeline_: LocalPipeline) -> list[dict[str, Any]]:
    topic = pipeline_.outputs["alert_topic_arn"]
    return [json.loads(r["message"]) for r in outbox(pipeline_) if r["topic"] == topic]


def snapshot(pipeline_: LocalPipeline) -> PipelineState:
    return PipelineState(
        transactions=scan(pipeline_, "transactions_table_name"),
        fraud_alerts=fraud_alerts(pipeline_),
        queued=queue_depths(pipeline_),
    )


def settle(
    pipeline_: LocalPipeline, accepted: set[str], timeout: float, require_alerts: bool = True
) -> float:
    """Wait (bounded) until every accepted transaction is final, queues are empty and alerts are out."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        state = snapshot(pipeline_)
        statuses = {str(i["transaction_id"]): i.get("status") for i in state.transactions}
        flagged = sum(1 for s in statuses.values() if s == "FLAGGED")
        if (
            all(statuses.get(tid) in FINAL_STATUSES for tid in accepted)
            and not any(state.queued.values())
            and (not require_alerts or len({a.get("transaction_id") for a in state.fraud_alerts}) >= flagged)
        ):
            time.sleep(1.0)  # let the outbox drain one more round: a late duplicate must show up
            return time.monotonic() - started
        time.sleep(0.5)
    return time.monotonic() - started

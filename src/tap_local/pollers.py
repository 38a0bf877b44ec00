"""SQS event source mappings, polled the way Lambda polls them.

Per mapping: up to `maximum_concurrency` pollers, each receiving up to `batch_size` messages and
waiting up to the batching window to fill a batch, invoking the function with an SQS event, then
deleting only the messages that succeeded (`batchItemFailures`, when the mapping reports them).
Failed messages stay on the queue; the emulator counts receives and moves a message to the
dead-letter queue after `maxReceiveCount`, as SQS does. The one deliberate difference from AWS: a
failed message becomes visible again after `retry_delay_seconds` instead of the whole visibility
timeout, so a poison message reaches the DLQ in seconds on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tap_local.faults import FaultPlan
from tap_local.workers import FunctionWorkers, Invocation

SQS_MAX_BATCH = 10
EMPTY_POLL_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class MappingSpec:
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    maximum_concurrency: int


@dataclass(frozen=True)
class BatchOutcome:
    """What one poll did, for the pipeline's transaction log."""

    function: str
    message_ids: list[str]
    failed_ids: list[str]
    invocation: Invocation
    bodies: dict[str, str]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def failed_message_ids(invocation: Invocation, message_ids: list[str], report_failures: bool) -> list[str]:
    """Which messages of a batch failed, by Lambda's rules for SQS partial batch responses."""
    if not invocation.ok:
        return list(message_ids)
    if not report_failures:
        return []
    payload = invocation.payload
    if payload is None or (isinstance(payload, dict) and not payload.get("batchItemFailures")):
        return []
    failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
    if not isinstance(failures, list):
        return list(message_ids)  # a malformed response fails the whole batch
    identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
    if any(identifier not in message_ids for identifier in identifiers):
        return list(message_ids)  # unknown or empty identifier: Lambda treats the batch as failed
    return [identifier for identifier in identifiers if identifier]


class SqsPoller:
    """All pollers of one event source mapping."""

    def __init__(
        self,
        spec: MappingSpec,
        workers: FunctionWorkers,
        sqs_client_factory: Callable[[], Any],
        region: str,
        retry_delay_seconds: int,
        on_batch: Callable[[BatchOutcome], None],
        poller_count: int,
        faults: FaultPlan | None = None,
    ):
        self.spec = spec
        self._faults = faults
        self._workers = workers
        self._client_factory = sqs_client_factory
        self._region = region
        self._retry_delay = retry_delay_seconds
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"poller:{workers.spec.name}:{i}", daemon=True)
            for i in range(max(1, min(poller_count, spec.maximum_concurrency)))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def signal_stop(self) -> None:
        """Ask every poller to finish its current batch and stop; returns at once."""
        self._stop.set()

    def join(self, deadline: float) -> None:
        """Wait for the pollers until `deadline` (time.monotonic()); they are daemon threads."""
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _receive_batch(self, sqs: Any) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.spec.batching_window_seconds
        while not self._stop.is_set() and len(messages) < self.spec.batch_size:
            wanted = min(SQS_MAX_BATCH, self.spec.batch_size - len(messages))
            received = sqs.receive_message(
                QueueUrl=self.spec.queue_url,
                MaxNumberOfMessages=wanted,
                # Short polls: the emulator serves one request at a time, so a long poll would
                # hold every other caller up. An empty queue is polled again after EMPTY_POLL_PAUSE.
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(received)
            if messages and (not received or time.monotonic() >= window_ends):
                break
            if not received and self._stop.wait(EMPTY_POLL_PAUSE_SECONDS):
                break
        return messages

    def _run(self) -> None:
        sqs = self._client_factory()
        while not self._stop.is_set():
            try:
                messages = self._receive_batch(sqs)
            except Exception:  # emulator shutting down or briefly unavailable
                if self._stop.wait(0.5):
                    return
                continue
            if not messages:
                continue
            ids = [m["MessageId"] for m in messages]
            event = sqs_event(messages, self.spec.queue_arn, self._region)
            fault = self._faults.invocation_fault() if self._faults is not None else None
            if fault is not None and self._faults is not None:
                self._faults.events.append((fault, self._workers.spec.name, _transaction_ids(messages)))
            if fault == "duplicate_delivery":
                # At-least-once delivery: the same batch reaches the function twice.
                self._workers.invoke(event)
            if fault in ("worker_crash", "timeout"):
                assert self._faults is not None
                invocation = self._workers.invoke(event, fault, self._faults.timeout_seconds)
            else:
                invocation = self._workers.invoke(event)
            failed = set(failed_message_ids(invocation, ids, self.spec.report_batch_item_failures))
            succeeded = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(succeeded), SQS_MAX_BATCH):
                chunk = succeeded[start : start + SQS_MAX_BATCH]
                sqs.delete_message_batch(
                    QueueUrl=self.spec.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                    ],
                )
            retry_after = _retry_after_for(invocation, self._retry_delay)
            for message in messages:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=self.spec.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=retry_after,
                    )
            bodies = {m["MessageId"]: m["Body"] for m in messages}
            self._on_batch(BatchOutcome(self._workers.spec.name, ids, sorted(failed), invocation, bodies))


def _retry_after_for(invocation: Invocation, retry_delay: int) -> int:
    """Seconds until a failed batch is retried.

    The local retry delay stands in for the visibility timeout, which in AWS is several times the
    function timeout. That ordering matters when a worker died: its in-progress idempotency locks
    (Powertools sizes them to the invocation's deadline) are only released once that deadline has
    passed, so a retry before it would find the lock and fail again, burning receives until the
    message dead-letters. The retry therefore never comes before the dead invocation's deadline.
    """
    if not invocation.died:
        return retry_delay
    return max(retry_delay, math.ceil(invocation.deadline - time.time()))


def _transaction_ids(messages: list[dict[str, Any]]) -> list[str]:
    ids = []
    for message in messages:
        try:
            ids.append(str(json.loads(message["Body"]).get("transaction_id")))
        except (ValueError, AttributeError):
            ids.append(f"message {message['MessageId']}")
    return ids

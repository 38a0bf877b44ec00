"""`python -m tap_local redrive --from parking|transaction-dlq`: move dead letters back into the pipeline.

The local counterpart of `aws sqs start-message-move-task`: parking (the failed handler's DLQ)
goes back to the transaction DLQ (the path the stack's redrive-allow policies permit), the
transaction DLQ goes back to the transaction queue. Implemented as receive / send / delete so it
behaves the same on every emulator version: a message is deleted from the source only after it
was sent to the destination, so a crash mid-redrive duplicates at worst, and the functions are
idempotent on the transaction id (replaying a processed transaction changes nothing).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SOURCES = ("parking", "transaction-dlq")


def queue_urls(sqs: Any, suffix: str) -> dict[str, str]:
    """Logical name -> URL for the three stack queues, found by their physical names."""
    names = {
        "transaction-queue": f"tap-transactions-{suffix}",
        "transaction-dlq": f"tap-transactions-dlq-{suffix}",
        "parking": f"tap-failed-handler-dlq-{suffix}",
    }
    urls = sqs.list_queues().get("QueueUrls", [])
    return {logical: url for logical, name in names.items() for url in urls if url.rsplit("/", 1)[-1] == name}


def destination_of(source: str, to: str | None = None) -> str:
    """The default path back (the one the stack's redrive-allow policies permit), or `to`.

    `--from parking --to transaction-queue` sends parked transactions to the fraud detector
    again: the only way a transaction FLAGGED while SNS was down gets its fraud alert (the failed
    handler only tells ops that the alert is unconfirmed).
    """
    return to or {"parking": "transaction-dlq", "transaction-dlq": "transaction-queue"}[source]


def redrive(sqs: Any, source_url: str, destination_url: str, limit: int = 10_000) -> int:
    """Move up to `limit` messages (body and attributes kept); returns how many moved."""
    moved = 0
    while moved < limit:
        messages = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=min(10, limit - moved),
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(
                QueueUrl=destination_url,
                MessageBody=message["Body"],
                MessageAttributes=message.get("MessageAttributes") or {},
            )
            sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def emulator_client(endpoint_url: str, region: str) -> Any:
    import boto3

    from tap_local.emulator import CREDENTIALS

    return boto3.client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def endpoint_from_outputs(outputs_path: Path) -> str | None:
    """The running local pipeline's emulator, from the queue URLs in its outputs file."""
    if not outputs_path.exists():
        return None
    from tap_local.emulator import endpoint_of

    return endpoint_of(json.loads(outputs_path.read_text()))


def main(source: str, endpoint_url: str | None, outputs_path: Path, limit: int, to: str | None = None) -> int:
    endpoint_url = endpoint_url or endpoint_from_outputs(outputs_path)
    if not endpoint_url:
        print(f"No running local pipeline found ({outputs_path}); pass --endpoint-url.")
        return 1
    region = os.environ.get("TAP_LOCAL_REGION", "us-east-2")
    suffix = os.environ.get("TAP_LOCAL_SUFFIX", "local")
    sqs = emulator_client(endpoint_url, region)
    urls = queue_urls(sqs, suffix)
    destination = destination_of(source, to)
    moved = redrive(sqs, urls[source], urls[destination], limit)
    print(f"moved {moved} message(s) from {source} to {destination}")
    return 0

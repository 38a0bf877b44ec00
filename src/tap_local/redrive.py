"""`python -m tap_local redrive --from parking|transaction-dlq`: move dead letters back into the pipeline.

The local counterpart of `aws sqs start-message-move-task`: parking (the failed handler's DLQ)
goes back to the transaction DLQ (the path the stack's redrive-allow policies permit), the
transaction DLQ goes back to the transaction queue. Implemented as receive / send / delete so it
behaves the same on every emulator version: a message is deleted from the source only after it
was sent to the destination, so a crash mid-redrive duplicates at worst, and the functions are
idempotent on the transaction id (replaying a processed transaction changes nothing).

The queues are the ones the running pipeline's outputs file names (as ``backtest`` reads it): the
transaction queue and DLQ by their output URLs, parking as the DLQ's dead-letter target. No queue
name is rebuilt here, so renaming a queue in lib/components/messaging.py cannot break redrive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SOURCES = ("parking", "transaction-dlq")


def queue_urls(sqs: Any, outputs: Mapping[str, Any]) -> dict[str, str]:
    """Logical name -> URL for the three stack queues, as the stack wired them: the transaction
    queue and DLQ from the outputs, parking from the DLQ's redrive policy (its dead-letter target)."""
    dlq_url = outputs["transaction_dlq_url"]
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    parking_arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    return {
        "transaction-queue": outputs["transaction_queue_url"],
        "transaction-dlq": dlq_url,
        "parking": sqs.get_queue_url(QueueName=parking_arn.rsplit(":", 1)[-1])["QueueUrl"],
    }


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


def main(source: str, endpoint_url: str | None, outputs_path: Path, limit: int, to: str | None = None) -> int:
    from tap_local.emulator import endpoint_of

    if not outputs_path.exists():
        print(f"No running local pipeline found ({outputs_path}); run `make local` or pass --outputs.")
        return 1
    outputs = json.loads(outputs_path.read_text())
    endpoint_url = endpoint_url or endpoint_of(outputs)
    if not endpoint_url:
        print(f"No running local pipeline found ({outputs_path}); pass --endpoint-url.")
        return 1
    sqs = emulator_client(endpoint_url, outputs["region"])
    urls = queue_urls(sqs, outputs)
    destination = destination_of(source, to)
    moved = redrive(sqs, urls[source], urls[destination], limit)
    print(f"moved {moved} message(s) from {source} to {destination}")
    return 0

"""The transaction queue: what the validator sends the fraud detector (and the reconciler re-sends)."""

from __future__ import annotations

from tap_contract import queues
from tap_contract.messages import TransactionMessage
from tap_pipeline.data import clients
from tap_pipeline.observability import tracer


@tracer.capture_method(capture_response=False)
def send_transaction(message: TransactionMessage, queue_url: str, origin: str) -> None:
    """One ``SendMessage``; the merchant id and the origin ride as attributes for filtering and tracing."""
    clients.sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(),
        MessageAttributes={
            "merchant_id": {"DataType": "String", "StringValue": message.merchant_id},
            queues.ORIGIN_ATTRIBUTE: {"DataType": "String", "StringValue": origin},
        },
    )

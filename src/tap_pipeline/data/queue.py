"""The transaction queue: what the validator sends the fraud detector."""

from __future__ import annotations

from tap_contract.messages import TransactionMessage
from tap_pipeline.data import clients
from tap_pipeline.observability import tracer
from tap_pipeline.settings import validator_settings


@tracer.capture_method(capture_response=False)
def send_transaction(message: TransactionMessage) -> None:
    """One ``SendMessage``; the merchant id rides as an attribute for filtering and tracing."""
    clients.sqs().send_message(
        QueueUrl=validator_settings().transaction_queue_url,
        MessageBody=message.model_dump_json(),
        MessageAttributes={"merchant_id": {"DataType": "String", "StringValue": message.merchant_id}},
    )

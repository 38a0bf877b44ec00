"""The alert topics: one SNS ``Publish`` per alert or notice."""

from __future__ import annotations

import json
from typing import Any

from tap_pipeline.data import clients
from tap_pipeline.observability import tracer

SUBJECT_LIMIT = 100  # SNS's limit for email subjects


@tracer.capture_method(capture_response=False)
def publish(topic_arn: str, subject: str, body: dict[str, Any], attributes: dict[str, str]) -> str:
    """Publish ``body`` as JSON; returns SNS's message id."""
    response = clients.sns().publish(
        TopicArn=topic_arn,
        Subject=subject[:SUBJECT_LIMIT],
        Message=json.dumps(body, sort_keys=True, default=str),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )
    message_id: str = response["MessageId"]
    return message_id

"""Fraud alerts and ops notices on SNS, each published at most once per cause.

* Fraud alert: one per FLAGGED transaction, idempotent on the transaction id (Powertools
  idempotency), so a redelivered message or a retry after a crash between recording FLAGGED and
  publishing never sends a second alert. The card appears as BIN + last 4 only.
* Ops notice: one per FAILED record, idempotent on the record's key (``transaction_id``), not on
  the SQS message id, which a redrive replaces.

Both wrapped functions are built on first use (they need the idempotency table from the
environment) and reused for the life of the process.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tap_pipeline import aws, idempotency
from tap_pipeline.observability import tracer


@tracer.capture_method(capture_response=False)
def _publish(
    topic_arn: str, subject: str, body: dict[str, Any], attributes: dict[str, str]
) -> dict[str, str]:
    response = aws.sns().publish(
        TopicArn=topic_arn,
        Subject=subject[:100],  # SNS's limit for email subjects
        Message=json.dumps(body, sort_keys=True, default=str),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )
    return {"message_id": response["MessageId"]}


def _publish_fraud_alert(alert: dict[str, Any], topic_arn: str) -> dict[str, str]:
    subject = f"Fraud alert: transaction {alert['transaction_id']}"
    return _publish(
        topic_arn, subject, alert, {"kind": "fraud_alert", "merchant_id": str(alert["merchant_id"])}
    )


def _publish_ops_notice(notice: dict[str, Any], topic_arn: str) -> dict[str, str]:
    subject = f"Failed transaction: {notice['transaction_id']}"
    return _publish(topic_arn, subject, notice, {"kind": "failed_transaction"})


@cache
def _idempotent_fraud_alert() -> Any:
    return idempotency.make_idempotent(_publish_fraud_alert, data_keyword="alert", side_effect="fraud-alert")


@cache
def _idempotent_ops_notice() -> Any:
    return idempotency.make_idempotent(_publish_ops_notice, data_keyword="notice", side_effect="ops-notice")


def fraud_alert(record: dict[str, Any]) -> dict[str, Any]:
    """The alert body for a flagged transaction record: never more than BIN + last 4 of the card."""
    return {
        "kind": "fraud_alert",
        "transaction_id": record["transaction_id"],
        "timestamp": record["timestamp"],
        "merchant_id": record["merchant_id"],
        "amount": str(record["amount"]),
        "currency": record["currency"],
        "card": {"bin": record.get("card_bin"), "last4": record.get("card_last4")},
        "country": record.get("country"),
        "fraud_score": int(record["fraud_score"]),
        "reasons": list(record.get("reasons") or []),
    }


def publish_fraud_alert(alert: dict[str, Any], topic_arn: str) -> dict[str, str]:
    """Publish ``alert`` unless an alert for the same transaction id was already published."""
    published: dict[str, str] = _idempotent_fraud_alert()(alert=alert, topic_arn=topic_arn)
    return published


def publish_ops_notice(notice: dict[str, Any], topic_arn: str) -> dict[str, str]:
    """Publish ``notice`` unless a notice for the same FAILED record was already published."""
    published: dict[str, str] = _idempotent_ops_notice()(notice=notice, topic_arn=topic_arn)
    return published


def clear_cache() -> None:
    _idempotent_fraud_alert.cache_clear()
    _idempotent_ops_notice.cache_clear()

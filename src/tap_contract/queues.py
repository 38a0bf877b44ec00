"""What each queue and topic is for: the purpose part of its physical name (``tap-<purpose>-<suffix>``).

The stack names its resources from these, the test backend builds the same layout, and monitoring
keys its dead-letter alarms by them, so a queue cannot be renamed on one side only.
"""

from __future__ import annotations

TRANSACTIONS = "transactions"
"""The validator's accepted transactions, consumed by the fraud detector."""

TRANSACTIONS_DLQ = "transactions-dlq"
"""Transactions the detector failed 5 times, consumed by the failed handler."""

PARKING_DLQ = "failed-handler-dlq"
"""Dead letters the failed handler could not record either: terminal, alarmed, redriven by hand."""

ASYNC_FAILURE_DLQ = "lambda-async-dlq"
"""Failed asynchronous invocations of any function: terminal, alarmed."""

FRAUD_ALERTS = "fraud-alerts"
OPS_ALERTS = "ops-alerts"
"""SNS topics: one alert per FLAGGED transaction; alarms and FAILED-transaction notices."""

ORIGIN_ATTRIBUTE = "origin"
ORIGIN_INTAKE = "intake"
ORIGIN_RECONCILER = "reconciler"
"""A transaction message's ``origin`` attribute: sent by the validator at intake, or re-enqueued by
the reconciler for a record left RECEIVED (the detector treats both alike; operators can tell them
apart in the queue and the fault runs can lose one kind and not the other)."""

"""Batch processing shared by the two SQS consumers (F15).

:class:`LoggingBatchProcessor` is Powertools' ``BatchProcessor`` for SQS that

* logs every failed record with its message id and cause (with traceback) and counts it in the
  ``RecordProcessingFailed`` metric, so no failure is silent, and counts every processed record in
  ``RecordProcessingSucceeded`` too: failures reported this way never reach Lambda's ``Errors``
  metric, so the function's error-rate alarm is computed from these two (lib/components/monitoring.py);
* reports failures as ``batchItemFailures`` even when the whole batch failed
  (``raise_on_entire_batch_failure=False``): SQS retries exactly the failed messages either way,
  and the function does not turn a batch of poison messages into an invocation error storm.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from tap_contract.metrics import RECORD_PROCESSING_FAILED, RECORD_PROCESSING_SUCCEEDED
from tap_pipeline.observability import MetricUnit, logger, metrics


class PoisonMessage(ValueError):
    """A message that can never be processed (not JSON, or not the expected shape)."""


class LoggingBatchProcessor(BatchProcessor):
    def __init__(self) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def success_handler(self, record: Any, result: Any) -> Any:
        metrics.add_metric(name=RECORD_PROCESSING_SUCCEEDED, unit=MetricUnit.Count, value=1)
        return super().success_handler(record, result)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        message_id = getattr(record, "message_id", None) or (
            record.get("messageId") if isinstance(record, dict) else None
        )
        exc_type, exc_value, _ = exception
        logger.error(
            "message processing failed; reporting it as a batch item failure",
            extra={
                "message_id": message_id,
                "error_type": getattr(exc_type, "__name__", str(exc_type)),
                "cause": str(exc_value)[:1000],
            },
            exc_info=exception,
        )
        metrics.add_metric(name=RECORD_PROCESSING_FAILED, unit=MetricUnit.Count, value=1)
        return super().failure_handler(record, exception)

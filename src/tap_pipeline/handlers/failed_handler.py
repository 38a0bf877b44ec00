"""Failed-transaction handler: transaction DLQ -> FAILED record + ops notice, per-message failures.

Its own failures are reported as batch item failures, so SQS retries them and finally parks them in
the failed handler's own DLQ: a dead letter is never dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tap_contract.environment import FAILED_HANDLER

# The main path is imported at init (the package docstring says why).
from tap_pipeline import failures, idempotency, snapstart
from tap_pipeline.batch import LoggingBatchProcessor
from tap_pipeline.handlers import finish_init
from tap_pipeline.observability import MetricUnit, count_with_dimension, logger, metrics, tracer
from tap_pipeline.settings import failed_handler_settings

if TYPE_CHECKING:  # the batch utility's response type; not needed at run time
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

processor = LoggingBatchProcessor()


def _sent_at(record: SQSRecord) -> datetime:
    raw = record.attributes.sent_timestamp
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def record_handler(record: SQSRecord) -> str:
    logger.remove_keys(["transaction_id"])
    logger.set_correlation_id(record.message_id)
    # A misconfigured function fails every record loudly before it writes anything (a missing
    # topic must not leave a FAILED record whose notice can never be sent).
    failed_handler_settings()
    letter = failures.DeadLetter(
        message_id=record.message_id,
        body=record.body or "",
        receive_count=int(record.attributes.approximate_receive_count or 0),
        sent_at=_sent_at(record),
        source=record.event_source_arn or "",
    )
    handled = failures.handle(letter)
    metrics.add_metric(name="DeadLetteredMessage", unit=MetricUnit.Count, value=1)
    if handled.outcome is not failures.Outcome.FINAL:
        metrics.add_metric(name="TransactionFailed", unit=MetricUnit.Count, value=1)
    count_with_dimension("DeadLetteredTransaction", "outcome", handled.outcome.value)
    return handled.outcome.value


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


# SnapStart hooks (off for this function by default: lib/config.py says why); they cost nothing unless
# Lambda calls them.
snapstart.install(FAILED_HANDLER)
finish_init()  # last: the collector is back on, init's objects frozen (tap_pipeline.handlers)

"""Fraud detector: SQS transaction queue -> CLEARED / FLAGGED (+ alert), per-message failures (F15)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from tap_contract.api import Status
from tap_contract.environment import FRAUD_DETECTOR
from tap_contract.messages import TransactionMessage

# The main path is imported at init (the package docstring says why).
from tap_pipeline import idempotency, rules, scoring, snapstart
from tap_pipeline.batch import LoggingBatchProcessor, PoisonMessage
from tap_pipeline.handlers import finish_init
from tap_pipeline.observability import MetricUnit, count_with_dimension, logger, metrics, tracer
from tap_pipeline.settings import fraud_detector_settings

if TYPE_CHECKING:  # the batch utility's response type; not needed at run time
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

# Powertools' batch utility is imported before pydantic on purpose: it loads its pydantic parser
# models only if pydantic is already imported.
processor = LoggingBatchProcessor()


def record_handler(record: SQSRecord) -> str:
    # Keys from the previous record of the batch must not leak into this record's logs.
    logger.remove_keys(["transaction_id", "merchant_id"])
    logger.set_correlation_id(record.message_id)
    # A misconfigured function fails every record loudly before it writes anything.
    fraud_detector_settings()
    try:
        message = TransactionMessage.model_validate_json(record.body)
    except ValidationError as exc:
        fields = sorted(
            {".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors(include_input=False)}
        )
        raise PoisonMessage(
            f"message body is not a transaction message (fields: {', '.join(fields)})"
        ) from None
    logger.set_correlation_id(message.transaction_id)
    logger.append_keys(transaction_id=message.transaction_id, merchant_id=message.merchant_id)
    now = datetime.now(UTC)
    try:
        result = scoring.process(message, now)
    except Exception as exc:
        # Best effort: the failed handler reports this as the reason if the message dead-letters.
        try:
            scoring.note_failure(message, exc, now)
        except Exception:
            logger.exception("could not record the processing error on the transaction")
        raise
    if not result.redelivered:
        metrics.add_metric(name=f"Transaction{result.status.value.title()}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="FraudScore", unit=MetricUnit.NoUnit, value=result.score)
        latency_ms = (now - message.received_at).total_seconds() * 1000
        metrics.add_metric(name="EndToEndLatency", unit=MetricUnit.Milliseconds, value=max(latency_ms, 0.0))
        for reason in result.reasons:
            count_with_dimension("FraudRuleFired", "rule", rules.rule_of(reason))
        logger.info(
            "transaction scored",
            extra={"status": result.status.value, "fraud_score": result.score, "reasons": result.reasons},
        )
    else:
        metrics.add_metric(name="RedeliveredMessage", unit=MetricUnit.Count, value=1)
    if result.status is Status.FLAGGED and result.alerted and not result.redelivered:
        metrics.add_metric(name="FraudAlertPublished", unit=MetricUnit.Count, value=1)
    return result.status.value


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    scoring.start_batch()
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        # Statuses are committed by now; the profile contributions of the batch go in one write.
        scoring.flush_profile()


# SnapStart hooks (off for this function by default: lib/config.py says why); they cost nothing unless
# Lambda calls them.
snapstart.install(FRAUD_DETECTOR)
finish_init()  # last: the collector is back on, init's objects frozen (tap_pipeline.handlers)

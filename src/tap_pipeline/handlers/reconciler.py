"""Reconciler: a scheduled run that leaves no transaction RECEIVED forever (:mod:`tap_pipeline.reconcile`).

Invoked by EventBridge Scheduler (asynchronously) every few minutes; the event carries nothing it
needs. A run that could not handle every stale record raises after handling the others, so
Lambda's ``Errors`` metric (alarmed) counts it and the async retry tries again; every action is
conditional, so a retry repeats nothing.
"""

from __future__ import annotations

from typing import Any

from tap_contract import metrics as metric_names
from tap_contract.environment import RECONCILER

# The main path is imported at init (the package docstring says why).
from tap_pipeline import idempotency, reconcile, snapstart
from tap_pipeline.handlers import finish_init
from tap_pipeline.observability import MetricUnit, count_with_dimension, logger, metrics, tracer
from tap_pipeline.settings import reconciler_settings


class ReconcileIncomplete(RuntimeError):
    """Some stale records could not be handled this run."""


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    # A misconfigured function fails before it reads or writes anything.
    reconciler_settings()
    result = reconcile.run(remaining_ms=context.get_remaining_time_in_millis)
    metrics.add_metric(name=metric_names.STALE_RECEIVED, unit=MetricUnit.Count, value=result.stale)
    for action, count in result.actions.items():
        if count and action is not reconcile.Action.SKIP:
            count_with_dimension(metric_names.RECONCILED, "action", action.value, count)
    summary = result.summary()
    logger.info("reconciliation run", extra=summary)
    if result.errors:
        raise ReconcileIncomplete(f"{len(result.errors)} stale records not reconciled: {result.errors[:10]}")
    return summary


# SnapStart hooks (off for this function by default: lib/config.py says why); they cost nothing unless
# Lambda calls them.
snapstart.install(RECONCILER)
finish_init()  # last: the collector is back on, init's objects frozen (tap_pipeline.handlers)

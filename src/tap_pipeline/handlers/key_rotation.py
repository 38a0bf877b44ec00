"""Card-fingerprint key rotation function: invoked by Secrets Manager, once per rotation step.

Event: ``{"Step": "createSecret" | "setSecret" | "testSecret" | "finishSecret", "SecretId": <arn>,
"ClientRequestToken": <version id>}``. The logic is :mod:`tap_pipeline.key_rotation`. A failed
step raises, so Secrets Manager records the rotation as failed (and retries it); each failure also
counts ``KeyRotationFailed``, which the stack alarms on, and a finished rotation ``KeyRotated``.
"""

from __future__ import annotations

from typing import Any

from tap_contract import metrics as metric_names
from tap_contract.environment import KEY_ROTATION
from tap_pipeline import key_rotation, snapstart
from tap_pipeline.handlers import finish_init
from tap_pipeline.observability import MetricUnit, logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    step, token = str(event.get("Step", "")), str(event.get("ClientRequestToken", ""))
    logger.append_keys(rotation_step=step, rotation_token=token)
    try:
        outcome = key_rotation.rotate(step, str(event.get("SecretId", "")), token)
    except Exception:
        metrics.add_metric(name=metric_names.KEY_ROTATION_FAILED, unit=MetricUnit.Count, value=1)
        logger.exception("key rotation step failed")
        raise
    if outcome.step is key_rotation.Step.FINISH and outcome.done == "finished":
        metrics.add_metric(name=metric_names.KEY_ROTATED, unit=MetricUnit.Count, value=1)
    logger.info("key rotation step done", extra=outcome.as_dict())
    return outcome.as_dict()


# SnapStart hooks (off for this function by default: it runs a few times a quarter); they cost
# nothing unless Lambda calls them.
snapstart.install(KEY_ROTATION)
finish_init()  # last: the collector is back on, init's objects frozen (tap_pipeline.handlers)

"""Observability wiring: X-Ray patching of botocore (F12), PAN-safe logging, metric names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tap_testing.backend import transaction

REPO = Path(__file__).resolve().parents[3]
PROBE = (
    "import botocore.client as c\n"
    "before = c.BaseClient._make_api_call\n"
    "import tap_pipeline.observability\n"
    "print(c.BaseClient._make_api_call is not before)\n"
)


@pytest.mark.parametrize(("disabled", "patched"), [("false", "True"), ("true", "False")])
def test_f12_tracer_patches_botocore_only_when_tracing_is_on(disabled, patched):
    """With tracing on (as in Lambda), every boto3 call goes through X-Ray's botocore wrapper, so
    DynamoDB, SQS, SNS and Secrets Manager calls appear as subsegments; locally nothing is patched."""
    env = {
        **os.environ,
        "POWERTOOLS_TRACE_DISABLED": disabled,
        "AWS_LAMBDA_FUNCTION_NAME": "validator-probe",
        "LAMBDA_TASK_ROOT": str(REPO / "src"),  # how Powertools knows it runs in Lambda
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "PYTHONPATH": str(REPO / "src"),
    }
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code, fresh process for a clean patch state
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == patched


def test_logger_output_redacts_a_pan_even_if_code_logged_one(logs):
    from tap_pipeline.observability import logger

    logger.info("oops 4111 1111 1111 1111 and 5555555555554444", extra={"detail": "378282246310005"})

    assert "4111 1111 1111 1111" not in logs.text
    assert "5555555555554444" not in logs.text
    assert "378282246310005" not in logs.text
    assert logs.text.count("[REDACTED-PAN]") == 3


def test_api_logs_carry_request_and_transaction_correlation(pipeline, logs):
    pipeline.post(transaction(transaction_id="corr-1"))

    accepted = logs.matching("transaction accepted")[0]
    assert accepted["transaction_id"] == "corr-1"
    assert accepted["correlation_id"]  # the API Gateway request id
    assert accepted["function_name"] == "validator-unittest"


def test_detector_emits_the_pipeline_metrics(pipeline, capsys):
    pipeline.post(transaction(transaction_id="metrics-1"))
    capsys.readouterr()
    pipeline.run_detector()

    emitted = capsys.readouterr().out
    for name in ("TransactionCleared", "FraudScore", "EndToEndLatency"):
        assert f'"Name":"{name}"' in emitted


def test_unexpected_error_in_the_api_is_a_retryable_503(pipeline, monkeypatch):
    from tap_pipeline import intake

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(intake, "accept", broken)

    response = pipeline.post(transaction())

    assert response["statusCode"] == 503
    assert response["json"]["code"] == "TEMPORARILY_UNAVAILABLE"

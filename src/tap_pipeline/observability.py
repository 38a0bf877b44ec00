"""Shared Powertools Logger, Tracer and Metrics instances, and PAN redaction for logs.

One instance of each per process, imported by every module, so log keys appended in a handler
show on every line and all metrics of an invocation flush as one EMF document.

* Logger: structured JSON. The formatter below masks any digit run containing something PAN-shaped (13-19
  digits, Luhn-valid, leading 2-6) *as a last line of defence*; the code never logs card data on purpose.
* Tracer: patches ``botocore`` so every DynamoDB / SQS / SNS / Secrets Manager call is an X-Ray
  subsegment (F12). Responses are never captured (``POWERTOOLS_TRACER_CAPTURE_RESPONSE=false``)
  because they can carry card metadata. With ``POWERTOOLS_TRACE_DISABLED=true`` (tests, local) the
  tracer is a no-op and patches nothing.
* Metrics: CloudWatch EMF in namespace ``POWERTOOLS_METRICS_NAMESPACE``.
"""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tap_contract.card_numbers import luhn_valid

# Runs of digits, allowing the single separators people type between groups (space, dash).
_DIGIT_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_PAN_LENGTHS = range(13, 20)


def _contains_pan(digits: str) -> bool:
    """True when any 13-19 digit window starting with 2-6 (card network prefixes) is Luhn-valid.

    Windows, not just the whole run: a PAN followed by " 1" or preceded by another number must
    still be caught.
    """
    for start in range(len(digits) - _PAN_LENGTHS.start + 1):
        if digits[start] not in "23456":
            continue
        for length in _PAN_LENGTHS:
            if start + length > len(digits):
                break
            if luhn_valid(digits[start : start + length]):
                return True
    return False


def redact_pans(text: str) -> str:
    """Replace every digit run that contains a Luhn-valid PAN-shaped number with ``[REDACTED-PAN]``."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if len(digits) >= _PAN_LENGTHS.start and _contains_pan(digits):
            return "[REDACTED-PAN]"
        return match.group(0)

    return _DIGIT_RUN.sub(_mask, text)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter whose output never contains a PAN-shaped number."""

    def serialize(self, log: Any) -> str:
        return redact_pans(super().serialize(log))


logger = Logger(logger_formatter=RedactingFormatter())
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()

__all__ = ["MetricUnit", "logger", "metrics", "redact_pans", "single_metric", "tracer"]


def count_with_dimension(name: str, dimension: str, value: str, count: int = 1) -> None:
    """Emit a one-off Count metric with its own dimension (e.g. rejections by reason).

    Shared dimensions on ``metrics`` apply to every metric of the invocation, so per-reason counts
    go out as separate EMF documents via ``single_metric``.
    """
    with single_metric(name=name, unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=str(metrics.service or "unknown"))
        metric.add_dimension(name=dimension, value=value)

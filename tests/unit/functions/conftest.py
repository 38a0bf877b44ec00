"""Shared fixtures: a fresh moto backend per test, built by :mod:`tap_testing.backend`.

Everything runs in-process under ``moto.mock_aws``: no network, never real AWS. Each test gets a
fresh backend, fresh settings and fresh cached clients. The backend builder, the constants and the
request helpers live in ``tap_testing`` (the benchmarks and the fraud evaluation use the same builder).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tap_testing.backend import ENVIRONMENT, apply_environment, build_pipeline, clear_package_caches
from tap_testing.calls import observing_api_calls, service_operation

# Powertools reads these when tap_pipeline.observability is first imported (at collection time, before
# any fixture runs): tracing must be off and the metrics namespace known from the start, as in Lambda.
os.environ.update(
    {
        name: ENVIRONMENT[name]
        for name in (
            "POWERTOOLS_TRACE_DISABLED",
            "POWERTOOLS_METRICS_NAMESPACE",
            "POWERTOOLS_SERVICE_NAME",
            "AWS_DEFAULT_REGION",
        )
    }
)


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Any:
    apply_environment(monkeypatch.setenv)
    with mock_aws():
        yield build_pipeline(monkeypatch.setenv)
        clear_package_caches()


@pytest.fixture
def api_calls() -> Iterator[Counter[str]]:
    """Counts every AWS API call made through botocore, as ``"service.Operation"``."""
    calls: Counter[str] = Counter()

    def count(client: Any, operation: str, params: Any, response: Any) -> None:
        calls[service_operation(client, operation)] += 1

    with observing_api_calls(count):
        yield calls


class LogCapture:
    """Everything the package logged, exactly as formatted for CloudWatch (JSON lines)."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    @property
    def text(self) -> str:
        return self._buffer.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def matching(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("message") == message]


@pytest.fixture
def logs() -> Any:
    """Redirect the Powertools logger's handler (which writes to the stdout it saw at import)."""
    from tap_pipeline.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]  # a StreamHandler at run time
    try:
        yield LogCapture(buffer)
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]  # a StreamHandler at run time


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Sums of the CloudWatch EMF metrics the handler printed (what its error-rate alarm reads)."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    value if isinstance(value, list) else [value]
                )
    return totals

"""Cold start: a fresh interpreter importing and initialising a handler module with tracing on.

Measured inside the child process from its first line to "module imported and its AWS clients
built", so interpreter start-up (the same for both) is not in either figure. The baseline child does
``import boto3`` and builds the same clients. Children run interleaved, and each run's ratio uses
the baseline measured in that same round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from bench.common import REPO_ROOT, Mode, median_spread

# Module -> the tap_pipeline.aws factories its handler needs on a happy-path invocation.
HANDLERS: dict[str, tuple[str, ...]] = {
    "validator": ("dynamodb_resource", "sqs", "secretsmanager"),
    "fraud_detector": ("dynamodb_resource", "sns", "raw_dynamodb"),
    "failed_handler": ("dynamodb_resource", "sns", "raw_dynamodb"),
}
_BASELINE_CALLS = {
    "dynamodb_resource": "boto3.resource('dynamodb')",
    "sqs": "boto3.client('sqs')",
    "sns": "boto3.client('sns')",
    "secretsmanager": "boto3.client('secretsmanager')",
    "raw_dynamodb": "boto3.client('dynamodb')",
}

_HANDLER_CHILD = """
import time
t0 = time.perf_counter()
import importlib
importlib.import_module('tap_pipeline.handlers.{module}')
from tap_pipeline import aws
{calls}
print(time.perf_counter() - t0)
"""
_BASELINE_CHILD = """
import time
t0 = time.perf_counter()
import boto3
{calls}
print(time.perf_counter() - t0)
"""


def _lambda_env(service: str) -> dict[str, str]:
    """Lambda-like environment with tracing ON (LAMBDA_TASK_ROOT set, no TRACE_DISABLED)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(
        {
            "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}",
            "LAMBDA_TASK_ROOT": str(REPO_ROOT / "src"),
            "AWS_LAMBDA_FUNCTION_NAME": f"tap-{service}-bench",
            "AWS_REGION": "us-east-2",
            "AWS_DEFAULT_REGION": "us-east-2",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": "TapTransactionPipeline",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _run(code: str, env: dict[str, str]) -> float:
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@dataclass
class ColdStartResult:
    runs: int
    baseline: dict[str, list[float]]  # per handler: the baseline with that handler's clients
    handler: dict[str, list[float]]
    ratios: dict[str, list[float]]
    tracing_on: bool


def _tracing_enabled() -> bool:
    code = "from tap_pipeline.observability import tracer; print(not tracer.disabled)"
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=_lambda_env("validator"), capture_output=True, text=True, check=True
    )
    return out.stdout.strip().endswith("True")


def run(mode: Mode) -> ColdStartResult:
    runs = 2 if mode.quick else 9
    result = ColdStartResult(runs, {}, {}, {}, _tracing_enabled())
    for _ in range(runs):
        for module, clients in HANDLERS.items():
            env = _lambda_env(module.replace("_", "-"))
            base = _run(_BASELINE_CHILD.format(calls="\n".join(_BASELINE_CALLS[c] for c in clients)), env)
            mine = _run(
                _HANDLER_CHILD.format(module=module, calls="\n".join(f"aws.{c}()" for c in clients)), env
            )
            result.baseline.setdefault(module, []).append(base)
            result.handler.setdefault(module, []).append(mine)
            result.ratios.setdefault(module, []).append(mine / base)
    return result


TARGET_RATIO = 1.3


def summary(result: ColdStartResult) -> list[tuple[str, float, float, float, bool]]:
    """Per handler: median handler seconds, median baseline seconds, median ratio, target met."""
    rows = []
    for module in HANDLERS:
        handler = median_spread(result.handler[module])[0]
        base = median_spread(result.baseline[module])[0]
        ratio = median_spread(result.ratios[module])[0]
        rows.append((module, handler, base, ratio, ratio <= TARGET_RATIO))
    return rows

"""What each handler loads at init with tracing on, as in Lambda (the cold start budget, BENCHMARKS.md).

Timing belongs to the benchmark; these checks pin the import structure it depends on, in a fresh
interpreter per handler: the X-Ray SDK patches botocore only, Powertools' pydantic parser models
are never loaded, and what the handler's main path needs is loaded at init, not on the first request
(Lambda runs init with burst CPU; an invocation at 512 MB gets about a third of a vCPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module('tap_pipeline.handlers.{module}')\n"
    "from tap_pipeline.observability import tracer\n"
    "print(json.dumps({{'tracing': not tracer.disabled, 'modules': sorted(sys.modules)}}))\n"
)
NEVER_AT_INIT = (
    "aws_lambda_powertools.utilities.parser",  # batch's optional pydantic models
    "aws_xray_sdk.ext.httplib",  # patch_modules=("botocore",): nothing else is patched
    "aws_xray_sdk.ext.requests",
    "aws_xray_sdk.ext.sqlite3",
)
AT_INIT = {
    "validator": (
        "tap_pipeline.intake",
        "tap_pipeline.data.secrets",
        "aws_lambda_powertools.utilities.parameters",
    ),
    "fraud_detector": (
        "tap_pipeline.scoring",
        "tap_pipeline.idempotency",
        "aws_lambda_powertools.utilities.idempotency",
    ),
    "key_rotation": (
        "tap_pipeline.key_rotation",
        "tap_pipeline.data.secrets",
    ),
    "failed_handler": (
        "tap_pipeline.failures",
        "tap_pipeline.idempotency",
        "aws_lambda_powertools.utilities.idempotency",
        "pydantic",
    ),
}


def _loaded_at_init(module: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(REPO / "src"),  # how Powertools knows it runs in Lambda
            "AWS_LAMBDA_FUNCTION_NAME": f"{module}-probe",
            "AWS_DEFAULT_REGION": "us-east-2",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
            "POWERTOOLS_SERVICE_NAME": module,
            "POWERTOOLS_METRICS_NAMESPACE": "TapTransactionPipeline",
            "PYTHONPATH": str(REPO / "src"),
        }
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code, fresh process per handler
        [sys.executable, "-c", PROBE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", sorted(AT_INIT))
def test_handler_init_loads_what_its_main_path_needs_and_nothing_it_never_uses(module):
    probe = _loaded_at_init(module)
    modules = set(probe["modules"])  # type: ignore[arg-type]  # the probe prints JSON: a list of names

    assert probe["tracing"] is True
    assert "aws_xray_sdk.ext.botocore.patch" in modules
    for name in NEVER_AT_INIT:
        assert name not in modules, f"{name} is imported when {module} initialises"
    for name in AT_INIT[module]:
        assert name in modules, f"{name} is left to {module}'s first invocation"

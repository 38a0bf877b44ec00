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

from tap_contract.environment import HANDLERS

REPO = Path(__file__).resolve().parents[3]
PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module('tap_pipeline.handlers.{module}')\n"
    "from tap_pipeline.observability import tracer\n"
    "import gc\n"
    "print(json.dumps({{'tracing': not tracer.disabled, 'modules': sorted(sys.modules),\n"
    "                  'gc_enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}}))\n"
)
NEVER_AT_INIT = (
    "aws_lambda_powertools.utilities.parser",  # batch's optional pydantic models
    # Event classes only Powertools' data classes index imports (tap_pipeline.lean_imports).
    "aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event",
    "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event",
    "aws_lambda_powertools.utilities.data_classes.appsync_resolver_event",
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
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.data_classes.sqs_event",
        "tap_pipeline.scoring",
        "tap_pipeline.idempotency",
        "aws_lambda_powertools.utilities.idempotency",
    ),
    "key_rotation": (
        "tap_pipeline.key_rotation",
        "tap_pipeline.data.secrets",
    ),
    "failed_handler": (
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.data_classes.sqs_event",
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
    # The collector is back on after init, and init's objects are frozen (tap_pipeline.handlers).
    assert probe["gc_enabled"] is True
    assert probe["frozen"] > 10_000  # type: ignore[operator]  # the probe prints JSON: an int
    assert "aws_xray_sdk.ext.botocore.patch" in modules
    for name in NEVER_AT_INIT:
        assert name not in modules, f"{name} is imported when {module} initialises"
    for name in AT_INIT[module]:
        assert name in modules, f"{name} is left to {module}'s first invocation"


@pytest.mark.parametrize("handler", sorted(HANDLERS.values()))
def test_every_handler_turns_the_collector_back_on_and_freezes_its_init(handler):
    """tap_pipeline.handlers switches the collector off; a handler module that did not end with
    finish_init() would leave it off for the life of the container."""
    probe = (
        "import gc, importlib, json\n"
        f"importlib.import_module({handler.rsplit('.', 1)[0]!r})\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code, a fresh process
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    enabled, frozen = json.loads(result.stdout.strip().splitlines()[-1])
    assert enabled is True
    assert frozen > 10_000


# --- the lazy data classes index (tap_pipeline.lean_imports) --------------------------------------

LAZY_INDEX_PROBE = (
    "import json, sys\n"
    "from tap_pipeline.lean_imports import skip_data_classes_index\n"
    "installed = skip_data_classes_index()\n"
    "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response\n"
    "before = sorted(m for m in sys.modules if '.data_classes.' in m)\n"
    "from aws_lambda_powertools.utilities import data_classes\n"
    "from aws_lambda_powertools.utilities.data_classes import SQSEvent, S3Event, APIGatewayProxyEvent\n"
    "from aws_lambda_powertools.utilities.data_classes import sqs_event, s3_event, api_gateway_proxy_event\n"
    "event = {'Records': [{'messageId': 'm1', 'body': 'ok'}, {'messageId': 'm2', 'body': 'bad'}]}\n"
    "def record_handler(record):\n"
    "    if record.body == 'bad': raise ValueError('poison')\n"
    "    return record.body\n"
    "response = process_partial_response(event=event, record_handler=record_handler,\n"
    "                                    processor=BatchProcessor(event_type=EventType.SQS))\n"
    "print(json.dumps({'installed': installed, 'before': before, 'response': response,\n"
    "    'same': [SQSEvent is sqs_event.SQSEvent, S3Event is s3_event.S3Event,\n"
    "             APIGatewayProxyEvent is api_gateway_proxy_event.APIGatewayProxyEvent],\n"
    "    'all': len(data_classes.__all__)}))\n"
)


def test_the_data_classes_index_is_read_not_run_and_every_name_still_resolves_to_the_same_object():
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code, a fresh process
        [sys.executable, "-c", LAZY_INDEX_PROBE],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["installed"] is True
    # Powertools' batch utility loaded the event modules the SQS path needs, not the index's ~40.
    loaded = {name.rsplit(".", 1)[-1] for name in probe["before"]}
    assert "sqs_event" in loaded and "api_gateway_proxy_event" not in loaded
    assert len(loaded) < 15
    # Partial batch failures (F15) work as before, and the index's names are the real classes.
    assert probe["response"] == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert probe["same"] == [True, True, True]
    assert probe["all"] > 40


def test_an_index_that_does_more_than_re_export_is_imported_normally():
    from tap_pipeline.lean_imports import read_index

    names, exported = read_index(
        '"""doc"""\nfrom .sqs_event import SQSEvent, SQSRecord as Record\n__all__ = ["SQSEvent"]\n'
    )
    assert names == {"SQSEvent": "sqs_event", "Record": "sqs_event"}
    assert exported == ["SQSEvent"]
    assert read_index("from .sqs_event import SQSEvent\nimport os\n") is None
    assert read_index("from .sqs_event import *\n") is None
    assert read_index("from .sqs_event import SQSEvent\nregister_everything()\n") is None
    assert read_index("from aws_lambda_powertools import Logger\n") is None


def test_the_pinned_powertools_index_only_re_exports():
    """If a Powertools upgrade adds anything else to the index, the consumers import it normally
    (correct, just slower) and this test says so."""
    import importlib.util

    from tap_pipeline.lean_imports import DATA_CLASSES, read_index

    spec = importlib.util.find_spec(DATA_CLASSES)
    assert spec is not None and spec.origin is not None
    assert read_index(Path(spec.origin).read_text()) is not None

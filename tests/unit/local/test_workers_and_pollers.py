"""Lambda semantics of the local runtime: timeouts, errors, warm state, partial batch failures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tap_local.pipeline import REPO_ROOT
from tap_local.pollers import failed_message_ids, sqs_event
from tap_local.workers import FunctionSpec, FunctionWorkers, Invocation

HANDLERS = """
import os, time
CALLS = []

def echo(event, context):
    CALLS.append(event)
    return {"event": event, "calls": len(CALLS), "function": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis(), "env": os.environ.get("TABLE")}

def slow(event, context):
    time.sleep(event["seconds"])
    return "done"

def boom(event, context):
    raise ValueError("bad input: " + event["why"])

def not_json(event, context):
    return object()
"""


@pytest.fixture
def make_workers(tmp_path: Path):
    (tmp_path / "sample_handlers.py").write_text(textwrap.dedent(HANDLERS))
    created: list[FunctionWorkers] = []

    def make(handler: str, timeout: int = 5, concurrency: int = 1, prewarm: bool = True) -> FunctionWorkers:
        spec = FunctionSpec(
            name="fn",
            arn="arn:aws:lambda:us-east-2:123456789012:function:fn",
            handler=f"sample_handlers.{handler}",
            environment={"TABLE": "orders"},
            timeout_seconds=timeout,
            memory_mb=512,
            log_group="/aws/lambda/fn",
        )
        environment = {
            **spec.process_environment("us-east-2", "http://127.0.0.1:1", {"AWS_ACCESS_KEY_ID": "x"}),
            "PYTHONPATH": f"{tmp_path}:{REPO_ROOT / 'src'}",
        }
        workers = FunctionWorkers(spec, environment, tmp_path / "fn.log", concurrency, prewarm=prewarm)
        created.append(workers)
        return workers

    yield make
    for workers in created:
        workers.close()


def test_handler_gets_its_environment_and_a_lambda_context_and_stays_warm(make_workers):
    workers = make_workers("echo")
    first, second = workers.invoke({"n": 1}), workers.invoke({"n": 2})
    assert first.ok and second.ok
    assert first.payload["env"] == "orders"
    assert first.payload["function"] == "fn"
    assert 0 < first.payload["remaining_ms"] <= 5000
    assert (first.payload["calls"], second.payload["calls"]) == (1, 2)  # module state survives


def test_a_pool_that_is_not_prewarmed_starts_a_sandbox_only_when_invoked_and_keeps_it_warm(make_workers):
    workers = make_workers("echo", concurrency=2, prewarm=False)
    assert workers._all == []  # no idle process for a function nobody has invoked yet
    first, second = workers.invoke({"n": 1}), workers.invoke({"n": 2})
    assert first.ok and second.ok
    assert len(workers._all) == 1  # the second invocation found the first sandbox idle
    assert (first.payload["calls"], second.payload["calls"]) == (1, 2)


def test_timeout_is_enforced_and_reported_like_lambda_then_a_fresh_sandbox_serves(make_workers):
    workers = make_workers("slow", timeout=1)
    timed_out = workers.invoke({"seconds": 5})
    assert timed_out.error == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "Task timed out after 1.00 seconds",
    }
    assert timed_out.duration_ms < 3000
    assert workers.invoke({"seconds": 0}).payload == "done"


def test_handler_exception_is_reported_with_type_and_message(make_workers):
    result = make_workers("boom").invoke({"why": "no merchant"})
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "bad input: no merchant"


def test_unserializable_result_is_an_error_as_in_lambda(make_workers):
    assert make_workers("not_json").invoke({}).error["errorType"] == "TypeError"


def test_missing_handler_module_reports_an_import_error(make_workers):
    result = make_workers("does_not_exist").invoke({})
    assert result.error["errorType"] == "Runtime.ImportModuleError"


def _messages(*ids: str) -> list[dict]:
    return [{"MessageId": i, "ReceiptHandle": f"rh-{i}", "Body": "{}", "Attributes": {}} for i in ids]


def test_sqs_event_has_lambda_record_shape():
    event = sqs_event(_messages("a"), "arn:aws:sqs:us-east-2:123456789012:q", "us-east-2")
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-2:123456789012:q"
    assert record["messageId"] == "a" and record["receiptHandle"] == "rh-a"


@pytest.mark.parametrize(
    ("invocation", "report", "failed"),
    [
        (Invocation(payload={"batchItemFailures": [{"itemIdentifier": "b"}]}), True, ["b"]),
        (Invocation(payload={"batchItemFailures": []}), True, []),
        (Invocation(payload=None), True, []),
        (Invocation(payload={"batchItemFailures": [{"itemIdentifier": "zzz"}]}), True, ["a", "b", "c"]),
        (Invocation(payload={"batchItemFailures": "nonsense"}), True, ["a", "b", "c"]),
        (Invocation(error={"errorType": "Sandbox.Timedout"}), True, ["a", "b", "c"]),
        (Invocation(payload={"batchItemFailures": [{"itemIdentifier": "b"}]}), False, []),
    ],
)
def test_f15_partial_batch_response_rules(invocation, report, failed):
    assert failed_message_ids(invocation, ["a", "b", "c"], report) == failed

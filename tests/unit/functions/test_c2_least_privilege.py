"""C2: each function's role grants what its code calls, and nothing else it could do without.

The functions run a workload that walks every main path (accept, repeat, refuse, read; clear, flag
and alert, redelivery; dead letters of received, flagged and unreadable messages) while every AWS
call is recorded as the IAM action it needs and the stack resource it touches. The stack, evaluated
under Pulumi mocks, must grant each of those to the role of the function that made it (or the call
is AccessDenied in AWS), and must grant nothing beyond them except what the list below explains.
"""

from __future__ import annotations

import json
import traceback
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tap_pipeline.data import clients, merchants, secrets
from tap_testing.backend import UnreachableSns, transaction
from tap_testing.calls import observing_api_calls
from tap_testing.rotation import rotate_key, rotation_enabled
from tap_testing.stack import evaluate_stack, statements_of

HANDLER_TO_FUNCTION = {
    "validator": "validator",
    "fraud_detector": "fraud-detector",
    "failed_handler": "failed-handler",
    "key_rotation": "key-rotation",
    "reconciler": "reconciler",
}
# Granted although the workload does not call them, and why.
NOT_CALLED_BY_THE_CODE = {
    # The event source mapping polls with the function's role; the handler never calls SQS itself.
    ("sqs:ReceiveMessage", "transaction-queue"),
    ("sqs:DeleteMessage", "transaction-queue"),
    ("sqs:GetQueueAttributes", "transaction-queue"),
    ("sqs:ChangeMessageVisibility", "transaction-queue"),
    ("sqs:ReceiveMessage", "transaction-dlq"),
    ("sqs:DeleteMessage", "transaction-dlq"),
    ("sqs:GetQueueAttributes", "transaction-dlq"),
    ("sqs:ChangeMessageVisibility", "transaction-dlq"),
    # Lambda sends a failed asynchronous invocation's event here with the function's role.
    ("sqs:SendMessage", "async-failure-dlq"),
    # Powertools' idempotency record: read back when a put finds an existing record without its
    # returned values, deleted when the wrapped call raised (both paths of Powertools, not ours).
    ("dynamodb:GetItem", "idempotency-table"),
    ("dynamodb:DeleteItem", "idempotency-table"),
}
DATA_SERVICES = ("dynamodb:", "sqs:", "sns:", "secretsmanager:")
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


class CallRecorder:
    """(function, IAM action, resource) of every AWS call a handler makes, by physical name."""

    def __init__(self) -> None:
        self.calls: dict[str, set[tuple[str, str]]] = defaultdict(set)

    def record(self, client: Any, operation: str, params: dict[str, Any]) -> None:
        handlers = [
            frame.filename.rsplit("/", 1)[1].removesuffix(".py")
            for frame in traceback.extract_stack()
            if "tap_pipeline/handlers/" in frame.filename
        ]
        if not handlers:
            return  # the test's own set-up and checks
        service = client.meta.service_model.service_name
        calls = self.calls[HANDLER_TO_FUNCTION[handlers[-1]]]
        if operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                for kind, body in item.items():
                    calls.add((f"dynamodb:{TRANSACT_ACTIONS[kind]}", body["TableName"]))
        elif operation == "BatchGetItem":
            calls.update((f"dynamodb:{operation}", table) for table in params["RequestItems"])
        else:
            target = (
                params.get("TableName")
                or params.get("QueueUrl")
                or params.get("TopicArn")
                or params.get("SecretId")
            )
            if params.get("IndexName"):
                target = f"{target}/index/{params['IndexName']}"
            calls.add((f"{service}:{operation}", target))


@pytest.fixture
def recorder() -> Iterator[CallRecorder]:
    recorder = CallRecorder()

    def observe(client: Any, operation: str, params: Any, response: Any) -> None:
        recorder.record(client, operation, params)

    with observing_api_calls(observe):
        yield recorder


def run_every_main_path(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    body = transaction(transaction_id="lp-accepted")
    assert pipeline.post(body)["statusCode"] == 202
    assert pipeline.post(body)["statusCode"] == 202  # a repeated request
    assert (
        pipeline.post(transaction(transaction_id="lp-refused", merchant_id="no-such-merchant"))["statusCode"]
        >= 400
    )
    assert pipeline.get("lp-accepted")["statusCode"] == 200
    assert pipeline.get("lp-missing")["statusCode"] == 404
    messages = pipeline.drain(pipeline.queue_url)
    # The detector runs in its own containers in AWS: it cannot use the validator's merchant cache.
    merchants.directory.cache_clear()
    assert pipeline.run_detector(messages) == {"batchItemFailures": []}  # CLEARED
    assert pipeline.run_detector(messages) == {"batchItemFailures": []}  # redelivered
    assert pipeline.post(transaction(transaction_id="lp-duplicate"))["statusCode"] == 202
    flagged = pipeline.drain(pipeline.queue_url)
    assert pipeline.run_detector(flagged) == {"batchItemFailures": []}  # FLAGGED + alert
    assert pipeline.record("lp-duplicate")["status"] == "FLAGGED"
    assert pipeline.post(transaction(transaction_id="lp-ghost", amount="16.00"))["statusCode"] == 202
    ghost = pipeline.drain(pipeline.queue_url)
    key = {"transaction_id": "lp-ghost", "timestamp": json.loads(ghost[0]["Body"])["timestamp"]}
    pipeline.ddb.Table(pipeline.transactions_table).delete_item(Key=key)
    assert pipeline.run_detector(ghost)["batchItemFailures"]  # no record: it must reach the DLQ
    assert pipeline.post(transaction(transaction_id="lp-dead", amount="17.00"))["statusCode"] == 202
    dead = pipeline.drain(pipeline.queue_url)
    # A FLAGGED transaction whose alert could not be published: its dead letter owes the alert.
    assert pipeline.post(transaction(transaction_id="lp-owed"))["statusCode"] == 202
    owed = pipeline.drain(pipeline.queue_url)
    real_sns = clients.sns()

    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())
    assert pipeline.run_detector(owed)["batchItemFailures"]
    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    unreadable = {
        "MessageId": "lp-poison",
        "Body": "{not json",
        "Attributes": {"ApproximateReceiveCount": "5"},
    }
    letters = [*dead, *flagged, *owed, *ghost, unreadable]
    assert pipeline.run_failed_handler(letters) == {"batchItemFailures": []}
    assert pipeline.record("lp-dead")["status"] == "FAILED"
    assert [alert["transaction_id"] for alert in pipeline.published(pipeline.fraud_capture_url)][
        -1
    ] == "lp-owed"
    reconcile_a_lost_send(pipeline, monkeypatch)
    # A rotation of the card-fingerprint key (all four steps), then the validator on the new ring.
    with rotation_enabled(pipeline):
        assert rotate_key(pipeline).new_version
    secrets.clear_cache()
    assert pipeline.post(transaction(transaction_id="lp-after-rotation"))["statusCode"] == 202


def reconcile_a_lost_send(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconciler's paths: re-enqueue a record whose send was lost (three times), wait, then
    FAIL it with its ops notice once failing is due."""
    from tap_pipeline import reconcile
    from tap_pipeline.data import queue

    real_send = queue.send_transaction

    def lose_intake_sends(message: Any, queue_url: str, origin: str) -> None:
        if origin != "intake":
            real_send(message, queue_url, origin)
        else:
            raise ConnectionError("the validator died between the write and the send")

    monkeypatch.setattr(queue, "send_transaction", lose_intake_sends)
    assert pipeline.post(transaction(transaction_id="lp-lost", amount="18.00"))["statusCode"] == 503
    monkeypatch.setattr(queue, "send_transaction", real_send)
    received = datetime.fromisoformat(pipeline.record("lp-lost")["timestamp"].replace("Z", "+00:00"))
    for runs in range(1, 5):  # three re-enqueues (each message lost again), then waiting
        monkeypatch.setattr(reconcile, "utc_now", lambda runs=runs: received + runs * timedelta(seconds=301))
        pipeline.run_reconciler()
        pipeline.drain(pipeline.queue_url)
    assert pipeline.record("lp-lost")["requeue_count"] == 3
    monkeypatch.setattr(reconcile, "utc_now", lambda: received + timedelta(seconds=2701))
    assert pipeline.run_reconciler()["failed"] == 1


def granted(graph: Any, function: str, names: dict[str, str]) -> set[tuple[str, str]]:
    """(action, logical resource) of every data-plane grant in the function's role policy."""
    grants = set()
    for statement in statements_of(graph.one("aws:iam/rolePolicy:RolePolicy", f"{function}-policy")):
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            if action.startswith(DATA_SERVICES) and not action.startswith("kms:"):
                grants.update((action, names.get(resource, resource)) for resource in resources)
    return grants


def test_c2_each_role_grants_exactly_the_data_calls_its_function_makes(pipeline, recorder, monkeypatch):
    run_every_main_path(pipeline, monkeypatch)

    graph = evaluate_stack()
    logical = {}  # stack ARN -> logical name, and the moto test names -> the same logical names
    env = pipeline.environment()
    for name, variable in (
        ("transactions-table", "TRANSACTIONS_TABLE_NAME"),
        ("idempotency-table", "IDEMPOTENCY_TABLE_NAME"),
        ("fraud-state-table", "FRAUD_STATE_TABLE_NAME"),
        ("merchant-config-table", "MERCHANT_CONFIG_TABLE_NAME"),
    ):
        arn = graph.one("aws:dynamodb/table:Table", name).state["arn"]
        logical[arn], logical[env[variable]] = name, name
        logical[f"{arn}/index/merchant-index"] = logical[f"{env[variable]}/index/merchant-index"] = (
            f"{name}/index"
        )
        logical[f"{arn}/index/pending-index"] = logical[f"{env[variable]}/index/pending-index"] = (
            f"{name}/pending-index"
        )
    for name, variable in (("transaction-queue", "TRANSACTION_QUEUE_URL"),):
        logical[graph.one("aws:sqs/queue:Queue", name).state["arn"]], logical[env[variable]] = name, name
    for name in ("transaction-dlq", "async-failure-dlq"):
        logical[graph.one("aws:sqs/queue:Queue", name).state["arn"]] = name
    for name, variable in (
        ("fraud-alert-topic", "FRAUD_ALERT_TOPIC_ARN"),
        ("ops-alert-topic", "OPS_ALERT_TOPIC_ARN"),
    ):
        logical[graph.one("aws:sns/topic:Topic", name).state["arn"]], logical[env[variable]] = name, name
    secret = graph.one("aws:secretsmanager/secret:Secret", "card-fingerprint-secret").state["arn"]
    logical[secret], logical[env["CARD_FINGERPRINT_SECRET_ARN"]] = (
        "card-fingerprint-secret",
        "card-fingerprint-secret",
    )

    assert set(recorder.calls) == set(HANDLER_TO_FUNCTION.values())
    for function, calls in recorder.calls.items():
        used = {(action, logical.get(resource, resource)) for action, resource in calls}
        grants = granted(graph, function, logical)
        assert used - grants == set(), f"{function} calls what its role does not allow (AccessDenied in AWS)"
        assert grants - used - NOT_CALLED_BY_THE_CODE == set(), (
            f"{function}'s role allows calls it never makes"
        )

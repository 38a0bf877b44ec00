"""The integration suite reads `cfn-outputs/flat-outputs.json` and nothing else.

By default (`TAP_INTEGRATION_TARGET=local`, what CI runs) a session fixture starts the local
pipeline, which writes that file from the stack's own outputs. Against a deployed stack, write the
file with `pulumi stack output --json --show-secrets > cfn-outputs/flat-outputs.json` and run
`TAP_INTEGRATION_TARGET=deployed make integration` with AWS credentials in the environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
import requests

from tap_contract.api import FINAL_STATUSES

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS_PATH = REPO_ROOT / "cfn-outputs" / "flat-outputs.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    target = os.environ.get("TAP_INTEGRATION_TARGET", "local")
    if target == "deployed":
        yield json.loads(OUTPUTS_PATH.read_text())
        return
    if target != "local":
        raise pytest.UsageError(f"TAP_INTEGRATION_TARGET must be 'local' or 'deployed', not {target!r}")
    yield from _local_pipeline(tmp_path_factory.mktemp("local-pipeline"))


def _local_pipeline(workdir: Path) -> Iterator[dict[str, Any]]:
    """`python -m tap_local up` in its own process, as a developer runs it; stopped with SIGTERM."""
    OUTPUTS_PATH.unlink(missing_ok=True)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]),
        "TAP_LOCAL_EMULATOR_PORT": "0",
        "TAP_LOCAL_API_PORT": "0",
        "TAP_LOCAL_RETRY_DELAY": "1",
        "TAP_LOCAL_WORKDIR": str(workdir),
        "TAP_LOCAL_OUTPUTS": str(OUTPUTS_PATH),
    }
    log = (workdir / "pipeline.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_local", "up"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while not OUTPUTS_PATH.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"local pipeline did not start:\n{(workdir / 'pipeline.log').read_text()}")
            time.sleep(0.2)
        yield json.loads(OUTPUTS_PATH.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def aws_client(outputs: dict[str, Any], service: str) -> Any:
    """A client for the stack's region; for a local stack, its emulator (read off the queue URL)."""
    queue_url = urlparse(outputs["transaction_queue_url"])
    local = not queue_url.hostname or not queue_url.hostname.endswith(".amazonaws.com")
    extra: dict[str, Any] = {}
    if local:
        extra = {
            "endpoint_url": f"{queue_url.scheme}://{queue_url.netloc}",
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
    return boto3.client(service, region_name=outputs["region"], **extra)


class Api:
    """The deployed (or local) REST API, as a payment provider calls it."""

    def __init__(self, outputs: dict[str, Any]):
        self.url = outputs["api_url"]
        self.key = outputs["api_key_value"]

    def post(self, body: Any, *, key: str | None = "default", raw: str | None = None) -> requests.Response:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["x-api-key"] = self.key if key == "default" else key
        data = raw if raw is not None else json.dumps(body)
        return requests.post(self.url, data=data, headers=headers, timeout=30)

    def get(self, transaction_id: str) -> requests.Response:
        return requests.get(f"{self.url}/{transaction_id}", headers={"x-api-key": self.key}, timeout=30)

    def wait_for_final(self, transaction_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(transaction_id)
            if response.status_code == 200 and response.json()["status"] in FINAL_STATUSES:
                return response.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{transaction_id} not final after {timeout} s: {response.text}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def api(outputs: dict[str, Any]) -> Api:
    return Api(outputs)


class Inbox:
    """A temporary SQS queue subscribed to a topic: what the topic published during the session."""

    def __init__(self, outputs: dict[str, Any], topic_arn: str):
        self.sqs, self.sns = aws_client(outputs, "sqs"), aws_client(outputs, "sns")
        name = f"tap-it-inbox-{uuid.uuid4().hex[:12]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(policy)})
        self.subscription = self.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        self.messages: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return self.messages
            for message in batch:
                self.messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def matching(
        self, predicate: Callable[[dict[str, Any]], bool], *, settle: float = 3.0
    ) -> list[dict[str, Any]]:
        """Messages satisfying `predicate`, after waiting `settle` s for stragglers (duplicates)."""
        time.sleep(settle)
        return [m for m in self.drain() if predicate(m)]

    def close(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@pytest.fixture(scope="session")
def fraud_alerts(outputs: dict[str, Any]) -> Iterator[Inbox]:
    inbox = Inbox(outputs, outputs["alert_topic_arn"])
    yield inbox
    inbox.close()


@pytest.fixture(scope="session")
def ops_notices(outputs: dict[str, Any]) -> Iterator[Inbox]:
    inbox = Inbox(outputs, outputs["ops_topic_arn"])
    yield inbox
    inbox.close()

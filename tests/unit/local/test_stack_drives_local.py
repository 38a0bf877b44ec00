"""The local pipeline is the stack: change the program and the local run changes, with no second edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lib.components.data as data_component
import lib.components.functions as functions_component
from tap_local import redrive
from tap_local.pipeline import LocalConfig, LocalPipeline


@pytest.fixture
def start_pipeline(tmp_path: Path):
    pipelines: list[LocalPipeline] = []

    def start() -> LocalPipeline:
        config = LocalConfig(
            emulator_port=0,
            api_port=0,
            workdir=tmp_path,
            outputs_path=tmp_path / "outputs.json",
            verbose=False,
        )
        pipelines.append(LocalPipeline(config).start())
        return pipelines[-1]

    yield start
    for pipeline in pipelines:
        pipeline.stop()


def test_batch_size_index_and_environment_come_from_the_stack(start_pipeline, monkeypatch):
    monkeypatch.setattr(functions_component, "SQS_BATCH_SIZE", 3)
    monkeypatch.setattr(functions_component, "MERCHANT_INDEX_SHARDS", 4)
    monkeypatch.setattr(data_component, "MERCHANT_INDEX_NAME", "merchant-by-day")
    pipeline = start_pipeline()

    assert {poller.spec.batch_size for poller in pipeline.pollers} == {3}
    table = pipeline.emulator.client("dynamodb").describe_table(
        TableName=pipeline.outputs["transactions_table_name"]
    )
    indexes = [index["IndexName"] for index in table["Table"]["GlobalSecondaryIndexes"]]
    assert indexes == ["merchant-by-day", "pending-index"]
    fraud_detector = next(
        w for w in pipeline.workers.values() if w.spec.name.startswith("tap-fraud-detector")
    )
    assert fraud_detector.spec.environment["MERCHANT_INDEX_SHARDS"] == "4"


def test_default_stack_runs_locally_with_its_own_values_and_lists_what_only_aws_runs(start_pipeline):
    pipeline = start_pipeline()
    assert {poller.spec.batch_size for poller in pipeline.pollers} == {functions_component.SQS_BATCH_SIZE}
    queue_attributes = pipeline.emulator.client("sqs").get_queue_attributes(
        QueueUrl=pipeline.outputs["transaction_queue_url"],
        AttributeNames=["VisibilityTimeout", "RedrivePolicy"],
    )["Attributes"]
    assert queue_attributes["VisibilityTimeout"] == "300"
    assert '"maxReceiveCount": 5' in queue_attributes["RedrivePolicy"]
    aws_only = {type_token for type_token, _ in pipeline.aws_only_resources()}
    assert {
        "aws:ec2/vpc:Vpc",
        "aws:wafv2/webAcl:WebAcl",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
    } <= aws_only
    assert pipeline.outputs["api_url"].startswith(f"http://127.0.0.1:{pipeline.api.port}/local/")


def test_redrive_finds_the_stack_queues_from_the_outputs_file_alone(start_pipeline, capsys):
    pipeline = start_pipeline()
    sqs = pipeline.emulator.client("sqs")
    queues = {q.name: q.state["url"] for q in pipeline.graph.of_type("aws:sqs/queue:Queue")}
    outputs = json.loads(pipeline.config.outputs_path.read_text())
    assert redrive.queue_urls(sqs, outputs) == {
        "transaction-queue": queues["transaction-queue"],
        "transaction-dlq": queues["transaction-dlq"],
        "parking": queues["parking-dlq"],  # the failed handler's DLQ: not a stack output
    }
    sqs.send_message(QueueUrl=queues["parking-dlq"], MessageBody="{}")
    assert redrive.main("parking", None, pipeline.config.outputs_path, limit=10, to="transaction-dlq") == 0
    assert capsys.readouterr().out == "moved 1 message(s) from parking to transaction-dlq\n"


def test_only_the_request_path_starts_warm_the_scheduled_and_rotation_functions_start_on_demand(
    start_pipeline,
):
    pipeline = start_pipeline()
    started = {name.split("-local")[0]: len(workers._all) for name, workers in pipeline.workers.items()}
    workers = pipeline.config.workers_per_function
    assert started == {
        "tap-validator": workers,
        "tap-fraud-detector": workers,
        "tap-failed-handler": workers,
        "tap-reconciler": 0,
        "tap-key-rotation": 0,
    }


def test_stop_leaves_no_process_or_port_behind(start_pipeline):
    import socket

    pipeline = start_pipeline()
    processes = [sandbox.process for workers in pipeline.workers.values() for sandbox in workers._all]
    ports = (pipeline.emulator.port, pipeline.api.port)
    pipeline.stop()
    assert all(process.poll() is not None for process in processes)
    for port in ports:
        with socket.socket() as probe:
            # SO_REUSEADDR tolerates closed connections in TIME_WAIT, but not a listening socket.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()


def test_rotate_key_runs_the_stacks_rotation_function_against_the_running_pipeline(start_pipeline, capsys):
    """`make rotate-key`: Secrets Manager's part in the emulator, the four steps in a sandbox of the
    stack's rotation function; run twice, since a finished rotation must not block the next."""
    from tap_local import rotation
    from tap_pipeline.card import KeyRing

    pipeline = start_pipeline()
    secrets = pipeline.emulator.client("secretsmanager")
    (secret,) = pipeline.graph.of_type("aws:secretsmanager/secret:Secret")
    described = secrets.describe_secret(SecretId=secret.state["arn"])
    assert described["RotationEnabled"] is True  # the stack's SecretRotation, recorded locally
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 90
    for _ in range(2):
        assert rotation.main(pipeline.config.outputs_path, pipeline.config.workdir, 0, None) == 0
    printed = capsys.readouterr().out
    ring = KeyRing.parse(
        secrets.get_secret_value(SecretId=secret.state["arn"], VersionStage="AWSCURRENT")["SecretString"]
    )
    assert len(ring.keys) == 3
    assert f"new key version {ring.newest.version}, primary from" in printed
    assert all(k.key.decode() not in printed for k in ring.keys)
    log = (
        pipeline.config.workdir / "logs" / f"{rotation.function_spec_of(pipeline.config.workdir)['name']}.log"
    )
    assert "finishSecret: AWSCURRENT moved to the new version" in log.read_text()


def test_the_api_and_the_pollers_resolve_the_aliases_the_stack_invokes_to_their_functions():
    """Issue 13: the stack names aliases (`...:function:<name>:live`), never $LATEST; locally each
    function runs one version, its source, so an alias resolves to its function, and a reference to
    an alias the stack does not define is refused rather than guessed."""
    from tap_local.pipeline import integration_target, invoked_function, mapping_specs
    from tap_testing.stack import alias_of, evaluate_stack

    graph = evaluate_stack()
    validator = graph.one("aws:lambda/function:Function", "validator-function").state["arn"]
    document = json.loads(graph.one("aws:apigateway/restApi:RestApi", "rest-api").inputs["body"])
    uri = document["paths"]["/transaction"]["post"]["x-amazon-apigateway-integration"]["uri"]
    assert integration_target(uri) == alias_of(graph, "validator").state["arn"] == f"{validator}:live"
    assert invoked_function(graph, integration_target(uri)) == validator
    assert invoked_function(graph, f"{validator}:1") == validator  # a qualified version
    consumers = {
        graph.one("aws:lambda/function:Function", f"{key}-function").state["arn"]
        for key in ("fraud-detector", "failed-handler")
    }
    assert {function_arn for function_arn, _ in mapping_specs(graph)} == consumers
    with pytest.raises(LookupError, match="names no function or alias"):
        invoked_function(graph, validator.replace("validator", "payments") + ":live")

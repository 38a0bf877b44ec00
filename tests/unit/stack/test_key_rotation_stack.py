"""Issue 12 item 1, the stack: the card-fingerprint key rotates (PCI DSS 3.6/3.7, CKV2_AWS_57).

A rotation function like the others (own least-privilege role, VPC, log group, alarms), invoked
only by Secrets Manager for this secret, on a configurable schedule; SecretsManager.1 passes
without a waiver."""

from __future__ import annotations

import pytest

from lib.config import ConfigError, StackSettings, optional_int
from lib.policy import WAIVERS, controls_by_id, run_controls
from tap_contract.card_keys import KEY_CACHE_SECONDS
from tap_testing.stack import as_list, evaluate_stack, statements_of

FUNCTION = "aws:lambda/function:Function"
SECRET = "aws:secretsmanager/secret:Secret"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
PERMISSION = "aws:lambda/permission:Permission"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROTATION_ACTIONS = {
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
}


def rotation_function(graph):
    return graph.one(FUNCTION, "key-rotation-function")


def test_the_secret_rotates_with_the_rotation_function_every_90_days_by_default(graph):
    secret = graph.one(SECRET, "card-fingerprint-secret")
    (rotation,) = graph.of_type(ROTATION)
    assert rotation.inputs["secretId"] == secret.state["arn"]
    # Through its alias, like every invoker of every function (issue 13), never $LATEST.
    assert rotation.inputs["rotationLambdaArn"] == f"{rotation_function(graph).state['arn']}:live"
    assert rotation.inputs["rotationRules"] == {"automaticallyAfterDays": 90}


def test_the_rotation_schedule_follows_config():
    graph = evaluate_stack(card_key_rotation_days=30)
    (rotation,) = graph.of_type(ROTATION)
    assert rotation.inputs["rotationRules"] == {"automaticallyAfterDays": 30}


@pytest.mark.parametrize(("value", "problem"), [(0, "least value is 1"), (1001, "greatest value is 1000")])
def test_a_rotation_period_secrets_manager_refuses_stops_the_program(value, problem):
    class Config:
        def get_int(self, key):
            return value

    with pytest.raises(ConfigError, match=f"cardKeyRotationDays {value} is invalid: the {problem}"):
        optional_int(Config(), "cardKeyRotationDays", 90)  # type: ignore[arg-type]


def test_only_secrets_manager_may_invoke_the_rotation_function_and_only_for_this_secret(graph):
    secret = graph.one(SECRET, "card-fingerprint-secret").state["arn"]
    (permission,) = [p for p in graph.of_type(PERMISSION) if p.name == "key-rotation-invoke-permission"]
    assert permission.inputs["principal"] == "secretsmanager.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == rotation_function(graph).inputs["name"]
    assert permission.inputs["sourceArn"] == secret
    assert permission.inputs["sourceAccount"] == "123456789012"
    assert permission.inputs["qualifier"] == "live"


def test_the_rotation_role_may_rotate_that_one_secret_and_nothing_else(graph):
    secret = graph.one(SECRET, "card-fingerprint-secret").state["arn"]
    statements = statements_of(graph.one("aws:iam/rolePolicy:RolePolicy", "key-rotation-policy"))
    data = [
        s
        for s in statements
        if s["Effect"] == "Allow"
        and any(a.split(":")[0] in ("secretsmanager", "dynamodb", "sns") for a in as_list(s["Action"]))
    ]
    assert len(data) == 1
    assert set(as_list(data[0]["Action"])) == ROTATION_ACTIONS
    assert as_list(data[0]["Resource"]) == [secret]
    sqs = [s for s in statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    assert [s["Sid"] for s in sqs] == ["AsyncFailureDeadLetter"]  # Lambda's, as for every function
    (kms,) = [s for s in statements if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == [
        "secretsmanager.us-east-2.amazonaws.com",
        "lambda.us-east-2.amazonaws.com",
    ]


def test_the_rotation_function_runs_like_the_others(graph):
    rotation, validator = rotation_function(graph).inputs, graph.one(FUNCTION, "validator-function").inputs
    assert rotation["handler"] == "tap_pipeline.handlers.key_rotation.handler"
    assert rotation["reservedConcurrentExecutions"] == 1
    assert rotation["vpcConfig"] == validator["vpcConfig"]  # Secrets Manager through its VPC endpoint
    for setting in (
        "runtime",
        "architectures",
        "memorySize",
        "timeout",
        "tracingConfig",
        "kmsKeyArn",
        "layers",
    ):
        assert rotation[setting] == validator[setting], setting
    log_group = graph.one("aws:cloudwatch/logGroup:LogGroup", "key-rotation-log-group").inputs
    assert rotation["loggingConfig"]["logGroup"] == log_group["name"]
    assert log_group["retentionInDays"] == 30 and log_group["kmsKeyId"]


def test_the_new_key_takes_over_only_after_every_validator_reloaded_the_ring(graph):
    variables = rotation_function(graph).inputs["environment"]["variables"]
    assert int(variables["CARD_KEY_SWITCH_DELAY_SECONDS"]) > KEY_CACHE_SECONDS
    secret = graph.one(SECRET, "card-fingerprint-secret").state["arn"]
    assert variables["CARD_FINGERPRINT_SECRET_ARN"] == secret


def test_a_failed_rotation_step_alarms_ops(graph):
    alarms = {a.name: a.inputs for a in graph.of_type(ALARM)}
    ops_topic = graph.one("aws:sns/topic:Topic", "ops-alert-topic").state["arn"]
    failed = alarms["key-rotation-failed-alarm"]
    (query,) = failed["metricQueries"]
    assert query["metric"]["metricName"] == "KeyRotationFailed"
    assert query["metric"]["dimensions"] == {"service": "key-rotation"}
    assert query["metric"]["namespace"] == "TapTransactionPipeline"
    assert failed["threshold"] == 0 and failed["datapointsToAlarm"] == 1
    assert failed["alarmActions"] == failed["okActions"] == [ops_topic]
    assert {"key-rotation-error-rate-alarm", "key-rotation-throttles-alarm"} <= set(alarms)


def test_secrets_manager_1_passes_without_a_waiver(graph):
    assert not [w for w in WAIVERS if w.control_id == "SecretsManager.1"]
    report = run_controls(graph, [controls_by_id()["SecretsManager.1"]], [])
    assert report.passed, report.summary()


def test_a_secret_named_in_config_is_rotated_by_its_owner_not_by_this_stack():
    shared = "arn:aws:secretsmanager:us-east-2:123456789012:secret:shared-card-key-AbCdEf"
    graph = evaluate_stack(card_fingerprint_secret_arn=shared)
    assert not graph.of_type(ROTATION) and not graph.of_type(SECRET)
    assert "key-rotation-function" not in {f.name for f in graph.of_type(FUNCTION)}
    assert "key-rotation-failed-alarm" not in {a.name for a in graph.of_type(ALARM)}


def test_the_default_settings_rotate_and_reserve_one():
    defaults = StackSettings(environment_suffix="unit", region="us-east-2", alert_email="a@example.com")
    assert defaults.card_key_rotation_days == 90
    assert defaults.key_rotation_reserved_concurrency == 1

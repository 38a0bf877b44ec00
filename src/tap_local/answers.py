"""A mock engine whose answers are real local resources.

Each resource the program declares is created in the emulator as the engine meets it (inputs are
already resolved then), and the engine answers with what the emulator returned: queue URLs, table
and secret ARNs, key ids. So every value the stack wires into a function's environment is the
local resource's real name or address, and the local run cannot drift from the program.
Resources with no local counterpart (VPC, WAF, alarms, …) get AWS-like answers and are listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lib.graph import DEFAULT_ACCOUNT_ID, AwsLikeAnswers
from tap_local.emulator import Emulator

State = dict[str, Any]
OUTBOX_QUEUE_PREFIX = "tap-local-outbox-"
STAGE_TYPE = "aws:apigateway/stage:Stage"

# Served by this package itself rather than the emulator.
SERVED_LOCALLY = {
    "aws:lambda/function:Function": "worker process per function",
    "aws:lambda/eventSourceMapping:EventSourceMapping": "SQS poller per mapping",
    "aws:scheduler/schedule:Schedule": "timer thread per schedule",
    "aws:apigateway/restApi:RestApi": "local REST API from the OpenAPI document",
    "aws:apigateway/stage:Stage": "local REST API stage",
    "aws:apigateway/apiKey:ApiKey": "API key check",
    "aws:apigateway/usagePlan:UsagePlan": "rate and burst limits",
    "aws:apigateway/usagePlanKey:UsagePlanKey": "key binding",
    "aws:apigateway/deployment:Deployment": "local REST API",
    "random:index/randomPassword:RandomPassword": "generated locally",
    "pulumi:providers:aws": "points at the emulator",
}


@dataclass
class EmailSubscription:
    topic_arn: str
    endpoint: str
    outbox_queue_url: str


@dataclass
class LocalAnswers(AwsLikeAnswers):
    """AWS-like answers, overridden by whatever the emulator returned for resources it holds."""

    emulator: Emulator
    api_base_url: str
    created: list[tuple[str, str]] = field(default_factory=list)
    aws_only: list[tuple[str, str]] = field(default_factory=list)
    email_subscriptions: list[EmailSubscription] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.emulator.region, DEFAULT_ACCOUNT_ID)  # moto's account
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.emulator.client(service)
        return self._clients[service]

    def resource_state(self, type_token: str, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        resource_id, state = super().resource_state(type_token, name, inputs)
        provision = _PROVISIONERS.get(type_token)
        if provision is not None:
            overrides = provision(self, inputs) or {}
            resource_id = overrides.pop("id", resource_id)
            state.update(overrides)
            self.created.append((type_token, name))
        elif type_token in SERVED_LOCALLY or type_token.startswith("tap:"):
            if type_token == STAGE_TYPE:
                state["invokeUrl"] = f"{self.api_base_url}/{inputs['stageName']}"
        else:
            self.aws_only.append((type_token, name))
        return resource_id, state


def _table(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    keys = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
    if inputs.get("rangeKey"):
        keys.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": inputs["name"],
        "KeySchema": keys,
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = []
    for index in inputs.get("globalSecondaryIndexes") or []:
        index_keys = [{"AttributeName": index["hashKey"], "KeyType": "HASH"}]
        if index.get("rangeKey"):
            index_keys.append({"AttributeName": index["rangeKey"], "KeyType": "RANGE"})
        projection: dict[str, Any] = {"ProjectionType": index.get("projectionType", "ALL")}
        if index.get("nonKeyAttributes"):
            projection["NonKeyAttributes"] = index["nonKeyAttributes"]
        indexes.append({"IndexName": index["name"], "KeySchema": index_keys, "Projection": projection})
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    dynamodb = answers.client("dynamodb")
    table = dynamodb.create_table(**request)["TableDescription"]
    ttl = inputs.get("ttl")
    if ttl and ttl.get("enabled"):
        dynamodb.update_time_to_live(
            TableName=inputs["name"],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
        )
    return {"id": inputs["name"], "arn": table["TableArn"], "name": inputs["name"]}


def _table_item(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    answers.client("dynamodb").put_item(TableName=inputs["tableName"], Item=json.loads(inputs["item"]))
    return {}


_QUEUE_ATTRIBUTES = {
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "redrivePolicy": "RedrivePolicy",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
}


def _queue(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    attributes = {
        attribute: str(int(inputs[key])) if isinstance(inputs[key], float) else str(inputs[key])
        for key, attribute in _QUEUE_ATTRIBUTES.items()
        if inputs.get(key) is not None
    }
    sqs = answers.client("sqs")
    url = sqs.create_queue(QueueName=inputs["name"], Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"id": url, "url": url, "arn": arn, "name": inputs["name"]}


def _queue_attribute(attribute: str, key: str) -> Callable[[LocalAnswers, dict[str, Any]], State]:
    def apply(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
        answers.client("sqs").set_queue_attributes(
            QueueUrl=inputs["queueUrl"], Attributes={attribute: inputs[key]}
        )
        return {}

    return apply


def _topic(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    arn = answers.client("sns").create_topic(Name=inputs["name"])["TopicArn"]
    return {"id": arn, "arn": arn, "name": inputs["name"]}


def _topic_policy(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    answers.client("sns").set_topic_attributes(
        TopicArn=inputs["arn"], AttributeName="Policy", AttributeValue=inputs["policy"]
    )
    return {}


def _subscription(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    """Email cannot leave this machine: deliver it to an outbox queue that `tap_local outbox` reads."""
    sns, sqs = answers.client("sns"), answers.client("sqs")
    arn = sns.subscribe(TopicArn=inputs["topic"], Protocol=inputs["protocol"], Endpoint=inputs["endpoint"])[
        "SubscriptionArn"
    ]
    if inputs["protocol"] == "email":
        topic_name = inputs["topic"].rsplit(":", 1)[1]
        outbox_url = sqs.create_queue(QueueName=f"{OUTBOX_QUEUE_PREFIX}{topic_name}")["QueueUrl"]
        outbox_arn = sqs.get_queue_attributes(QueueUrl=outbox_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=inputs["topic"], Protocol="sqs", Endpoint=outbox_arn)
        answers.email_subscriptions.append(EmailSubscription(inputs["topic"], inputs["endpoint"], outbox_url))
    return {"id": arn, "arn": arn}


def _kms_key(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    metadata = answers.client("kms").create_key(Description=inputs.get("description", ""))["KeyMetadata"]
    return {"id": metadata["KeyId"], "keyId": metadata["KeyId"], "arn": metadata["Arn"]}


def _kms_alias(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    answers.client("kms").create_alias(AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
    return {}


def _secret(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    arn = answers.client("secretsmanager").create_secret(
        Name=inputs["name"], Description=inputs.get("description", "")
    )["ARN"]
    return {"id": arn, "arn": arn}


def _secret_version(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    answers.client("secretsmanager").put_secret_value(
        SecretId=inputs["secretId"], SecretString=inputs["secretString"]
    )
    return {}


def _secret_rotation(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    """The rotation schedule and function are recorded (rotation enabled), but no rotation starts:
    the emulator cannot invoke the function; `python -m tap_local rotate-key` runs a rotation."""
    rules = inputs.get("rotationRules") or {}
    request: dict[str, Any] = {
        "SecretId": inputs["secretId"],
        "RotationLambdaARN": inputs["rotationLambdaArn"],
        "RotateImmediately": False,
    }
    if rules.get("automaticallyAfterDays"):
        request["RotationRules"] = {"AutomaticallyAfterDays": int(rules["automaticallyAfterDays"])}
    answers.client("secretsmanager").rotate_secret(**request)
    return {"id": inputs["secretId"]}


def _log_group(answers: LocalAnswers, inputs: dict[str, Any]) -> State:
    logs = answers.client("logs")
    logs.create_log_group(logGroupName=inputs["name"])
    if inputs.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=inputs["name"], retentionInDays=int(inputs["retentionInDays"]))
    return {"id": inputs["name"], "name": inputs["name"]}


_PROVISIONERS: dict[str, Callable[[LocalAnswers, dict[str, Any]], State]] = {
    "aws:dynamodb/table:Table": _table,
    "aws:dynamodb/tableItem:TableItem": _table_item,
    "aws:sqs/queue:Queue": _queue,
    "aws:sqs/queuePolicy:QueuePolicy": _queue_attribute("Policy", "policy"),
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": _queue_attribute(
        "RedriveAllowPolicy", "redriveAllowPolicy"
    ),
    "aws:sns/topic:Topic": _topic,
    "aws:sns/topicPolicy:TopicPolicy": _topic_policy,
    "aws:sns/topicSubscription:TopicSubscription": _subscription,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:secretsmanager/secretRotation:SecretRotation": _secret_rotation,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
}

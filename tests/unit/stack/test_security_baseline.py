"""The security baseline (lib/policy) against the real stack, and proof that every control can fail.

(a) The evaluated program, in the default region and in another, has no open violation.
(b) Every registered control has at least one hand-built bad example that it reports, naming exactly
    the offending resource and the reason; a control added without a bad example fails the suite.
(c) Waivers: a justification is mandatory, waived violations stay visible, stale waivers show up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lib.graph import RecordedResource, StackGraph
from lib.policy import CONTROLS, WAIVERS, Waiver, controls_by_id, run_controls
from lib.policy.controls.wafv2 import REQUIRED_MANAGED_RULE_GROUPS
from tap_testing.stack import evaluate_stack

ACCOUNT = "123456789012"
REGION = "us-east-2"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-kms"
API_ID = "a1b2c3d4e5"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}/stages/test"
ACL_ARN = f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/test-waf/0f0f0f0f"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fn-role"

API_STAGE = "aws:apigateway/stage:Stage"
API_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
API_ACCOUNT = "aws:apigateway/account:Account"
REST_API = "aws:apigateway/restApi:RestApi"
API_METHOD = "aws:apigateway/method:Method"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
SUBNET = "aws:ec2/subnet:Subnet"
VPC = "aws:ec2/vpc:Vpc"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
KEY = "aws:kms/key:Key"
TABLE = "aws:dynamodb/table:Table"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SG = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
IGW = "aws:ec2/internetGateway:InternetGateway"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_RESOURCE_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"
WAF_LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:aws-waf-logs-api"
ANY_WAF_LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:aws-waf-logs-*"


# --- builders: small, realistic resources as lib.graph records them -----------------------------
def res(
    type_token: str, name: str, inputs: dict[str, Any], *, id: str = "", **state: Any
) -> RecordedResource:
    return RecordedResource(type_token, name, inputs, {**inputs, **state}, id or f"{name}-id")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str] | str, resources: list[str] | str, **extra: Any) -> dict[str, Any]:
    return {"Sid": "Grant", "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def deny_insecure(actions: list[str], resource: str, condition: dict | None = None) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": actions,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}} if condition is None else condition,
    }


def stage(**overrides: Any) -> RecordedResource:
    inputs = {
        "restApi": API_ID,
        "stageName": "test",
        "deployment": "dep-1",
        "xrayTracingEnabled": True,
        "accessLogSettings": {"destinationArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:access"},
        **overrides,
    }
    return res(API_STAGE, "stage", inputs, arn=STAGE_ARN)


def method_settings(name: str = "all-methods", path: str = "*/*", **settings: Any) -> RecordedResource:
    values = {"metricsEnabled": True, "loggingLevel": "ERROR", "dataTraceEnabled": False, **settings}
    return res(
        API_SETTINGS, name, {"restApi": API_ID, "stageName": "test", "methodPath": path, "settings": values}
    )


def api_account() -> RecordedResource:
    return res(API_ACCOUNT, "account-logging", {"cloudwatchRoleArn": f"arn:aws:iam::{ACCOUNT}:role/apigw"})


def openapi_api(validator: str | None, validators: dict[str, Any]) -> RecordedResource:
    operation: dict[str, Any] = {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"202": {"description": "Accepted"}},
    }
    if validator is not None:
        operation["x-amazon-apigateway-request-validator"] = validator
    document = {
        "openapi": "3.0.1",
        "info": {"title": "t", "version": "1"},
        "x-amazon-apigateway-request-validators": validators,
        "paths": {"/transaction": {"post": operation}},
    }
    return res(REST_API, "rest-api", {"name": "api", "body": json.dumps(document)}, id=API_ID)


def function(name: str = "validator-function", **overrides: Any) -> RecordedResource:
    inputs = {
        "name": name,
        "runtime": "python3.12",
        "handler": "app.handler",
        "role": ROLE_ARN,
        "kmsKeyArn": KEY_ARN,
        "environment": {"variables": {"TABLE": "t"}},
        "tracingConfig": {"mode": "Active"},
        "vpcConfig": {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-lambda"]},
        **overrides,
    }
    return res(FUNCTION, name, inputs, arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")


def subnet(name: str, zone: str, **overrides: Any) -> RecordedResource:
    inputs = {"vpcId": "vpc-1", "cidrBlock": "10.0.0.0/20", "availabilityZone": zone, **overrides}
    return res(SUBNET, name, inputs, id=name)


def lambda_role(name: str, arn: str, *services: str) -> RecordedResource:
    trust = policy({"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"})
    return res(ROLE, name, {"name": name, "assumeRolePolicy": trust}, arn=arn)


def permission(**overrides: Any) -> RecordedResource:
    inputs = {
        "action": "lambda:InvokeFunction",
        "function": "validator",
        "principal": "apigateway.amazonaws.com",
        "sourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/test/POST/transaction",
        "sourceAccount": ACCOUNT,
        **overrides,
    }
    return res(PERMISSION, "invoke-post-transaction", {k: v for k, v in inputs.items() if v is not None})


def role_policy(*statements: dict[str, Any], name: str = "validator-policy") -> RecordedResource:
    return res(ROLE_POLICY, name, {"role": "fn-role", "policy": policy(*statements)})


def key(**overrides: Any) -> RecordedResource:
    root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
    inputs = {"enableKeyRotation": True, "policy": policy({**root, "Action": "kms:*", "Resource": "*"})}
    return res(KEY, "data-key", {**inputs, **overrides}, id="0a1b2c3d-kms", arn=KEY_ARN)


def table(**overrides: Any) -> RecordedResource:
    inputs = {
        "name": "transactions",
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "transaction_id",
        "pointInTimeRecovery": {"enabled": True},
        "serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN},
        "deletionProtectionEnabled": True,
        **overrides,
    }
    return res(TABLE, "transactions-table", inputs)


def queue(name: str = "orders-queue", **overrides: Any) -> RecordedResource:
    inputs = {"name": "orders", "kmsMasterKeyId": KEY_ARN, **overrides}
    return res(QUEUE, name, {k: v for k, v in inputs.items() if v is not None}, arn=QUEUE_ARN, url=QUEUE_URL)


def queue_policy(*statements: dict[str, Any]) -> RecordedResource:
    return res(QUEUE_POLICY, "orders-queue-policy", {"queueUrl": QUEUE_URL, "policy": policy(*statements)})


def topic(**overrides: Any) -> RecordedResource:
    inputs = {"name": "alerts", "kmsMasterKeyId": KEY_ARN, **overrides}
    return res(TOPIC, "alert-topic", {k: v for k, v in inputs.items() if v is not None}, arn=TOPIC_ARN)


def topic_policy(*statements: dict[str, Any]) -> RecordedResource:
    return res(TOPIC_POLICY, "alert-topic-policy", {"arn": TOPIC_ARN, "policy": policy(*statements)})


def vpc() -> RecordedResource:
    return res(VPC, "vpc", {"cidrBlock": "10.0.0.0/16"}, id="vpc-1")


def vpc_rule(type_token: str, name: str, **inputs: Any) -> RecordedResource:
    defaults = {"securityGroupId": "sg-lambda", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443}
    return res(type_token, name, {**defaults, **inputs})


def interface_endpoint() -> RecordedResource:
    inputs = {
        "vpcId": "vpc-1",
        "serviceName": f"com.amazonaws.{REGION}.sqs",
        "vpcEndpointType": "Interface",
        "securityGroupIds": ["sg-endpoints"],
    }
    return res(ENDPOINT, "sqs-interface-endpoint", inputs)


def waf_rule(name: str, statement: dict[str, Any], **action: Any) -> dict[str, Any]:
    visibility = {"cloudwatchMetricsEnabled": True, "metricName": name, "sampledRequestsEnabled": True}
    return {"name": name, "priority": 0, "statement": statement, "visibilityConfig": visibility, **action}


def waf_rules(*, rate_action: str = "block", skip: str = "", metrics_off: str = "") -> list[dict[str, Any]]:
    rules = [
        waf_rule(
            group,
            {"managedRuleGroupStatement": {"vendorName": "AWS", "name": group}},
            overrideAction={"none": {}},
        )
        for group in REQUIRED_MANAGED_RULE_GROUPS
        if group != skip
    ]
    rate = {"rateBasedStatement": {"limit": 2000, "aggregateKeyType": "IP"}}
    rules.append(waf_rule("PerIpRateLimit", rate, action={rate_action: {}}))
    for rule in rules:
        if rule["name"] == metrics_off:
            rule["visibilityConfig"]["cloudwatchMetricsEnabled"] = False
    return rules


def web_acl(rules: list[dict[str, Any]], scope: str = "REGIONAL") -> RecordedResource:
    inputs = {
        "name": "test-waf",
        "scope": scope,
        "defaultAction": {"allow": {}},
        "rules": rules,
        "visibilityConfig": {
            "cloudwatchMetricsEnabled": True,
            "metricName": "acl",
            "sampledRequestsEnabled": True,
        },
    }
    return res(WEB_ACL, "web-acl", inputs, arn=ACL_ARN)


def waf_logging(log_group_name: str) -> RecordedResource:
    destination = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group_name}"
    return res(
        WEB_ACL_LOGGING, "web-acl-logging", {"resourceArn": ACL_ARN, "logDestinationConfigs": [destination]}
    )


# --- (b) bad examples: at least one per control -------------------------------------------------
@dataclass(frozen=True)
class BadExample:
    control_id: str
    case: str
    build: Callable[[], list[RecordedResource]]
    culprits: tuple[tuple[str, str], ...]
    reason: str

    @property
    def test_id(self) -> str:
        return f"{self.control_id}:{self.case}"


BAD_EXAMPLES: list[BadExample] = [
    BadExample(
        "EC2.10",
        "no-ec2-endpoint",
        lambda: [
            RecordedResource("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"}, {}, "vpc-1"),
            RecordedResource(
                "aws:ec2/vpcEndpoint:VpcEndpoint",
                "sqs",
                {"vpcId": "vpc-1", "serviceName": "com.amazonaws.us-east-2.sqs"},
                {},
                "vpce-1",
            ),
        ],
        (("aws:ec2/vpc:Vpc", "vpc"),),
        "no com.amazonaws.<region>.ec2 interface endpoint",
    ),
    BadExample(
        "SecretsManager.1",
        "no-rotation",
        lambda: [
            RecordedResource(
                "aws:secretsmanager/secret:Secret",
                "key",
                {"name": "k"},
                {"arn": "arn:secret:k"},
                "arn:secret:k",
            )
        ],
        (("aws:secretsmanager/secret:Secret", "key"),),
        "no automatic rotation configured",
    ),
    BadExample(
        "APIGateway.1",
        "logging-off",
        lambda: [stage(), api_account(), method_settings(loggingLevel="OFF")],
        ((API_SETTINGS, "all-methods"),),
        "loggingLevel is 'OFF'",
    ),
    BadExample(
        "APIGateway.1",
        "no-account-role",
        lambda: [stage(), method_settings()],
        ((API_STAGE, "stage"),),
        "cloudwatchRoleArn",
    ),
    BadExample(
        "APIGateway.3",
        "xray-off",
        lambda: [stage(xrayTracingEnabled=False)],
        ((API_STAGE, "stage"),),
        "xrayTracingEnabled",
    ),
    BadExample("APIGateway.4", "no-acl", lambda: [stage()], ((API_STAGE, "stage"),), "no WebAclAssociation"),
    BadExample(
        "APIGateway.4",
        "cloudfront-acl",
        lambda: [
            stage(),
            web_acl(waf_rules(), scope="CLOUDFRONT"),
            res(WEB_ACL_ASSOCIATION, "stage-association", {"resourceArn": STAGE_ARN, "webAclArn": ACL_ARN}),
        ],
        ((WEB_ACL_ASSOCIATION, "stage-association"),),
        "must be REGIONAL",
    ),
    BadExample(
        "APIGateway.5",
        "plain-cache",
        lambda: [
            stage(cacheClusterEnabled=True, cacheClusterSize="0.5"),
            method_settings(cachingEnabled=True),
        ],
        ((API_STAGE, "stage"),),
        "cacheDataEncrypted",
    ),
    BadExample(
        "TAP-APIGW-ACCESS-LOGS",
        "no-access-logs",
        lambda: [stage(accessLogSettings=None)],
        ((API_STAGE, "stage"),),
        "destinationArn",
    ),
    BadExample(
        "TAP-APIGW-DATATRACE",
        "full-request-logging",
        lambda: [method_settings(dataTraceEnabled=True)],
        ((API_SETTINGS, "all-methods"),),
        "dataTraceEnabled is true",
    ),
    BadExample(
        "TAP-APIGW-VALIDATION",
        "openapi-no-validator",
        lambda: [
            openapi_api(None, {"all": {"validateRequestBody": True, "validateRequestParameters": True}})
        ],
        ((REST_API, "rest-api"),),
        "POST /transaction has no x-amazon-apigateway-request-validator",
    ),
    BadExample(
        "TAP-APIGW-VALIDATION",
        "openapi-params-only",
        lambda: [openapi_api("params", {"params": {"validateRequestParameters": True}})],
        ((REST_API, "rest-api"),),
        "does not validate both body and parameters",
    ),
    BadExample(
        "TAP-APIGW-VALIDATION",
        "method-without-validator",
        lambda: [
            res(API_METHOD, "post-method", {"restApi": API_ID, "httpMethod": "POST", "authorization": "NONE"})
        ],
        ((API_METHOD, "post-method"),),
        "no requestValidatorId",
    ),
    BadExample(
        "Lambda.1",
        "public-principal",
        lambda: [permission(principal="*", sourceArn=None, sourceAccount=None)],
        ((PERMISSION, "invoke-post-transaction"),),
        "lets anyone invoke",
    ),
    BadExample(
        "Lambda.2",
        "old-runtime",
        lambda: [function(runtime="python3.9")],
        ((FUNCTION, "validator-function"),),
        "'python3.9'",
    ),
    BadExample(
        "Lambda.3",
        "no-vpc",
        lambda: [function(vpcConfig=None)],
        ((FUNCTION, "validator-function"),),
        "vpcConfig",
    ),
    BadExample(
        "Lambda.5",
        "one-zone",
        lambda: [function(), subnet("subnet-a", f"{REGION}a"), subnet("subnet-b", f"{REGION}a")],
        ((FUNCTION, "validator-function"),),
        "1 availability zone",
    ),
    BadExample(
        "Lambda.5",
        "unknown-subnets",
        lambda: [function()],
        ((FUNCTION, "validator-function"),),
        "cannot be verified",
    ),
    BadExample(
        "TAP-TRACING",
        "pass-through",
        lambda: [function(tracingConfig={"mode": "PassThrough"})],
        ((FUNCTION, "validator-function"),),
        "'PassThrough'",
    ),
    BadExample(
        "TAP-LAMBDA-PERMISSION",
        "no-source-arn",
        lambda: [permission(sourceArn=None)],
        ((PERMISSION, "invoke-post-transaction"),),
        "no sourceArn",
    ),
    BadExample(
        "TAP-LAMBDA-PERMISSION",
        "no-source-account",
        lambda: [permission(sourceAccount=None)],
        ((PERMISSION, "invoke-post-transaction"),),
        "sourceAccount",
    ),
    BadExample(
        "TAP-IAM-ROLE-PER-FUNCTION",
        "shared-role",
        lambda: [
            function("validator-function"),
            function("fraud-detector-function"),
            lambda_role("fn-role", ROLE_ARN, "lambda.amazonaws.com"),
        ],
        ((FUNCTION, "validator-function"), (FUNCTION, "fraud-detector-function")),
        "shares role",
    ),
    BadExample(
        "TAP-IAM-ROLE-PER-FUNCTION",
        "role-trusts-ec2",
        lambda: [function(), lambda_role("fn-role", ROLE_ARN, "lambda.amazonaws.com", "ec2.amazonaws.com")],
        ((FUNCTION, "validator-function"),),
        "not only lambda.amazonaws.com",
    ),
    BadExample(
        "IAM.1",
        "star-action",
        lambda: [role_policy(allow("*", "*"))],
        ((ROLE_POLICY, "validator-policy"),),
        "Action '*'",
    ),
    BadExample(
        "IAM.1",
        "not-action",
        lambda: [role_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})],
        ((ROLE_POLICY, "validator-policy"),),
        "allows everything except",
    ),
    BadExample(
        "IAM.21",
        "service-wildcard",
        lambda: [role_policy(allow(["sqs:*"], [QUEUE_ARN]))],
        ((ROLE_POLICY, "validator-policy"),),
        "['sqs:*']",
    ),
    BadExample(
        "TAP-IAM-RESOURCES",
        "star-resource",
        lambda: [
            role_policy(
                allow(["xray:PutTraceSegments"], ["*"]),
                allow(["dynamodb:GetItem"], "*"),
            )
        ],
        ((ROLE_POLICY, "validator-policy"),),
        "['dynamodb:GetItem'] on Resource '*'",
    ),
    BadExample(
        "TAP-IAM-RESOURCES",
        "eni-create-on-star",
        # AWSLambdaVPCAccessExecutionRole grants it on "*", but it has resource-level permissions.
        lambda: [
            role_policy(
                allow(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], "*"),
                allow(["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"], ["*"]),
            )
        ],
        ((ROLE_POLICY, "validator-policy"),),
        "['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface'] on Resource '*'",
    ),
    BadExample(
        "KMS.1",
        "managed-decrypt-all",
        lambda: [res(MANAGED_POLICY, "reader-policy", {"policy": policy(allow(["kms:Decrypt"], "*"))})],
        ((MANAGED_POLICY, "reader-policy"),),
        "on all keys",
    ),
    BadExample(
        "KMS.2",
        "inline-decrypt-all",
        lambda: [role_policy(allow(["kms:Decrypt*"], [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"]))],
        ((ROLE_POLICY, "validator-policy"),),
        "on all keys",
    ),
    BadExample(
        "KMS.4",
        "no-rotation",
        lambda: [key(enableKeyRotation=False)],
        ((KEY, "data-key"),),
        "enableKeyRotation",
    ),
    BadExample(
        "TAP-KMS-POLICY",
        "wildcard-principal",
        lambda: [
            key(
                policy=policy(
                    {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*"}
                )
            )
        ],
        ((KEY, "data-key"),),
        "statement Anyone allows a wildcard principal",
    ),
    BadExample(
        "TAP-KMS-POLICY",
        "default-policy",
        lambda: [key(policy=None)],
        ((KEY, "data-key"),),
        "no explicit key policy",
    ),
    BadExample(
        "DynamoDB.1",
        "provisioned",
        lambda: [table(billingMode="PROVISIONED", readCapacity=5, writeCapacity=5)],
        ((TABLE, "transactions-table"),),
        "'PROVISIONED'",
    ),
    BadExample(
        "DynamoDB.2",
        "no-pitr",
        lambda: [table(pointInTimeRecovery=None)],
        ((TABLE, "transactions-table"),),
        "pointInTimeRecovery",
    ),
    BadExample(
        "DynamoDB.6",
        "deletable",
        lambda: [table(deletionProtectionEnabled=False)],
        ((TABLE, "transactions-table"),),
        "deletionProtectionEnabled",
    ),
    BadExample(
        "SQS.1",
        "unencrypted-queue",
        lambda: [queue(kmsMasterKeyId=None)],
        ((QUEUE, "orders-queue"),),
        "no kmsMasterKeyId",
    ),
    BadExample(
        "SQS.3",
        "public-queue",
        lambda: [queue(), queue_policy(allow(["sqs:SendMessage"], QUEUE_ARN, Principal="*"))],
        ((QUEUE_POLICY, "orders-queue-policy"),),
        "allows any principal",
    ),
    BadExample(
        "TAP-SQS-TLS",
        "no-secure-transport-condition",
        lambda: [queue(), queue_policy(deny_insecure(["sqs:*"], QUEUE_ARN, condition={}))],
        ((QUEUE, "orders-queue"),),
        "aws:SecureTransport",
    ),
    BadExample(
        "TAP-SQS-TLS",
        "deny-covers-one-action",
        lambda: [queue(), queue_policy(deny_insecure(["sqs:SendMessage"], QUEUE_ARN))],
        ((QUEUE, "orders-queue"),),
        "aws:SecureTransport",
    ),
    BadExample(
        "SNS.1",
        "unencrypted-topic",
        lambda: [topic(kmsMasterKeyId=None)],
        ((TOPIC, "alert-topic"),),
        "no kmsMasterKeyId",
    ),
    BadExample(
        "SNS.4",
        "public-topic",
        lambda: [topic(), topic_policy(allow(["sns:Publish"], TOPIC_ARN, Principal={"AWS": "*"}))],
        ((TOPIC_POLICY, "alert-topic-policy"),),
        "allows any principal",
    ),
    BadExample(
        "TAP-SNS-TLS",
        "no-topic-policy",
        lambda: [topic()],
        ((TOPIC, "alert-topic"),),
        "aws:SecureTransport",
    ),
    BadExample(
        "TAP-ENCRYPTION",
        "aws-managed-key",
        lambda: [key(), queue(kmsMasterKeyId="alias/aws/sqs")],
        ((QUEUE, "orders-queue"),),
        "'alias/aws/sqs', not a customer-managed key",
    ),
    BadExample(
        "TAP-ENCRYPTION",
        "unencrypted-log-group",
        lambda: [
            key(),
            res(LOG_GROUP, "validator-log-group", {"name": "/aws/lambda/v", "retentionInDays": 30}),
        ],
        ((LOG_GROUP, "validator-log-group"),),
        "kmsKeyId is None",
    ),
    BadExample(
        "TAP-ENCRYPTION",
        "aws-owned-table-key",
        lambda: [key(), table(serverSideEncryption={"enabled": False})],
        ((TABLE, "transactions-table"),),
        "AWS-owned key",
    ),
    BadExample(
        "EC2.2",
        "default-sg-with-rules",
        lambda: [
            vpc(),
            res(
                DEFAULT_SG,
                "default-sg",
                {"vpcId": "vpc-1", "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]},
                id="sg-default",
            ),
        ],
        ((DEFAULT_SG, "default-sg"),),
        "on the default security group",
    ),
    BadExample("EC2.2", "default-sg-unmanaged", lambda: [vpc()], ((VPC, "vpc"),), "DefaultSecurityGroup"),
    BadExample("EC2.6", "no-flow-log", lambda: [vpc()], ((VPC, "vpc"),), "no FlowLog"),
    BadExample(
        "EC2.15",
        "public-ip-subnet",
        lambda: [subnet("subnet-a", f"{REGION}a", mapPublicIpOnLaunch=True)],
        ((SUBNET, "subnet-a"),),
        "mapPublicIpOnLaunch",
    ),
    BadExample(
        "EC2.18",
        "https-from-anywhere",
        lambda: [vpc_rule(INGRESS, "https-from-anywhere", cidrIpv4="0.0.0.0/0", description="HTTPS")],
        ((INGRESS, "https-from-anywhere"),),
        "0.0.0.0/0",
    ),
    BadExample(
        "EC2.19",
        "ssh-from-anywhere",
        lambda: [
            res(
                SG,
                "lambda-sg",
                {
                    "vpcId": "vpc-1",
                    "description": "functions",
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipv6CidrBlocks": ["::/0"],
                            "description": "SSH",
                        }
                    ],
                },
                id="sg-lambda",
            )
        ],
        ((SG, "lambda-sg"),),
        "[22]",
    ),
    BadExample(
        "TAP-SG-EGRESS",
        "egress-anywhere",
        lambda: [
            interface_endpoint(),
            vpc_rule(
                EGRESS,
                "all-out",
                ipProtocol="-1",
                fromPort=None,
                toPort=None,
                cidrIpv4="0.0.0.0/0",
                description="all",
            ),
        ],
        ((EGRESS, "all-out"),),
        "is not tcp 443 only",
    ),
    BadExample(
        "TAP-SG-EGRESS",
        "egress-to-other-group",
        lambda: [
            interface_endpoint(),
            vpc_rule(
                EGRESS, "to-db", referencedSecurityGroupId="sg-database", description="HTTPS to a database"
            ),
        ],
        ((EGRESS, "to-db"),),
        "sg-database",
    ),
    BadExample(
        "TAP-SG-EGRESS",
        "undescribed-rule",
        lambda: [
            interface_endpoint(),
            vpc_rule(EGRESS, "to-endpoints", referencedSecurityGroupId="sg-endpoints"),
        ],
        ((EGRESS, "to-endpoints"),),
        "no description",
    ),
    BadExample(
        "TAP-NETWORK",
        "internet-gateway",
        lambda: [vpc(), res(IGW, "igw", {"vpcId": "vpc-1"})],
        ((IGW, "igw"),),
        "internet",
    ),
    BadExample(
        "TAP-NETWORK",
        "default-route",
        lambda: [res(ROUTE, "default-route", {"routeTableId": "rtb-1", "destinationCidrBlock": "0.0.0.0/0"})],
        ((ROUTE, "default-route"),),
        "default route",
    ),
    BadExample(
        "TAP-NETWORK",
        "inline-default-route",
        lambda: [
            res(
                ROUTE_TABLE,
                "private-rt",
                {"vpcId": "vpc-1", "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}]},
            )
        ],
        ((ROUTE_TABLE, "private-rt"),),
        "routes[0]",
    ),
    BadExample("WAF.10", "empty-acl", lambda: [web_acl([])], ((WEB_ACL, "web-acl"),), "no rules"),
    BadExample(
        "WAF.11", "no-logging", lambda: [web_acl(waf_rules())], ((WEB_ACL, "web-acl"),), "no WebAclLogging"
    ),
    BadExample(
        "WAF.11",
        "misnamed-log-group",
        lambda: [web_acl(waf_rules()), waf_logging("waf-logs-api")],
        ((WEB_ACL_LOGGING, "web-acl-logging"),),
        "aws-waf-logs-",
    ),
    BadExample(
        "WAF.12",
        "rule-without-metrics",
        lambda: [web_acl(waf_rules(metrics_off="AWSManagedRulesCommonRuleSet"))],
        ((WEB_ACL, "web-acl"),),
        "'AWSManagedRulesCommonRuleSet' has no CloudWatch metrics",
    ),
    BadExample(
        "TAP-WAF-RULES",
        "rate-rule-counts",
        lambda: [web_acl(waf_rules(rate_action="count"))],
        ((WEB_ACL, "web-acl"),),
        "'PerIpRateLimit' counts instead of blocking",
    ),
    BadExample(
        "TAP-WAF-RULES",
        "missing-known-bad-inputs",
        lambda: [web_acl(waf_rules(skip="AWSManagedRulesKnownBadInputsRuleSet"))],
        ((WEB_ACL, "web-acl"),),
        "AWSManagedRulesKnownBadInputsRuleSet",
    ),
    BadExample(
        "TAP-LOGS-RESOURCE-POLICY",
        "any-waf-log-group-any-account",
        # The shape of the account-wide AWSWAF-LOGS policy WAF writes when nothing else covers a group.
        lambda: [
            res(LOG_GROUP, "waf-log-group", {"name": "aws-waf-logs-api"}, arn=WAF_LOG_GROUP_ARN),
            res(
                LOG_RESOURCE_POLICY,
                "waf-log-delivery-policy",
                {
                    "policyName": "AWSWAF-LOGS",
                    "policyDocument": policy(
                        {
                            "Sid": "AWSWAFLogs",
                            "Effect": "Allow",
                            "Principal": {"Service": "delivery.logs.amazonaws.com"},
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": f"{ANY_WAF_LOG_GROUP}:log-stream:*",
                        }
                    ),
                },
            ),
        ],
        ((LOG_RESOURCE_POLICY, "waf-log-delivery-policy"),),
        "not log groups of this stack",
    ),
    BadExample(
        "TAP-LOGS-RESOURCE-POLICY",
        "wildcard-principal",
        lambda: [
            res(LOG_GROUP, "waf-log-group", {"name": "aws-waf-logs-api"}, arn=WAF_LOG_GROUP_ARN),
            res(
                LOG_RESOURCE_POLICY,
                "waf-log-delivery-policy",
                {
                    "policyName": "open",
                    "policyDocument": policy(
                        {
                            "Sid": "Anyone",
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "logs:PutLogEvents",
                            "Resource": f"{WAF_LOG_GROUP_ARN}:*",
                            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
                        }
                    ),
                },
            ),
        ],
        ((LOG_RESOURCE_POLICY, "waf-log-delivery-policy"),),
        "not only AWS service principals",
    ),
    BadExample(
        "CloudWatch.15",
        "silent-alarm",
        lambda: [
            topic(),
            res(
                ALARM,
                "validator-error-rate-alarm",
                {"name": "err", "threshold": 1, "comparisonOperator": "GreaterThanThreshold"},
            ),
        ],
        ((ALARM, "validator-error-rate-alarm"),),
        "no alarmActions",
    ),
]


def test_every_control_has_a_bad_example():
    registered = {c.id for c in CONTROLS}
    covered = {e.control_id for e in BAD_EXAMPLES}
    assert registered - covered == set(), "controls without a bad example"
    assert covered - registered == set(), "bad examples for controls that are not registered"


def test_control_ids_are_fsbp_or_project_ids():
    ids = [c.id for c in CONTROLS]
    assert len(ids) == len(set(ids))
    for control_id in ids:
        service, _, number = control_id.partition(".")
        assert control_id.startswith("TAP-") or (service.isalnum() and number.isdigit()), control_id


@pytest.mark.parametrize("example", BAD_EXAMPLES, ids=lambda e: e.test_id)
def test_bad_example_fails_its_control(example: BadExample):
    check = controls_by_id()[example.control_id].check
    violations = check(StackGraph(resources=example.build()))
    reported = {(v.resource_type, v.resource_name) for v in violations}
    assert reported == set(example.culprits), "\n".join(map(str, violations))
    assert all(v.control_id == example.control_id for v in violations)
    assert any(example.reason in v.message for v in violations), "\n".join(map(str, violations))


# --- (a) the real stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eu_graph() -> StackGraph:
    return evaluate_stack(region="eu-west-1")


@pytest.mark.parametrize("fixture", ["graph", "eu_graph"], ids=["us-east-2", "eu-west-1"])
def test_stack_meets_the_security_baseline(fixture: str, request: pytest.FixtureRequest):
    report = run_controls(request.getfixturevalue(fixture))
    assert report.passed, "security baseline violations:\n" + report.summary()
    assert not report.unused_waivers, "waivers that no longer match anything:\n" + report.summary()
    assert report.controls_run == len(CONTROLS)


def test_real_waivers_are_reported_not_hidden(graph: StackGraph):
    report = run_controls(graph)
    assert len(report.waived) == len(WAIVERS)
    assert all(str(w.waiver.justification) in report.summary() for w in report.waived)


# --- (c) waivers -------------------------------------------------------------------------------
SQS_1_BAD = next(e for e in BAD_EXAMPLES if e.control_id == "SQS.1")


@pytest.mark.parametrize("justification", ["", "   ", "first line\nsecond line"])
def test_waiver_needs_a_one_line_justification(justification: str):
    with pytest.raises(ValueError, match="justif"):
        Waiver("SQS.1", QUEUE, "orders-queue", justification)


def test_waived_violation_is_reported_as_waived():
    waiver = Waiver("SQS.1", QUEUE, "orders-queue", "Test queue holds no card data")
    report = run_controls(StackGraph(resources=SQS_1_BAD.build()), [controls_by_id()["SQS.1"]], [waiver])
    assert report.passed
    assert [(w.violation.resource_name, w.waiver) for w in report.waived] == [("orders-queue", waiver)]
    assert "WAIVED: Test queue holds no card data" in report.summary()


def test_waiver_covers_only_its_own_resource():
    graph = StackGraph(resources=[queue(kmsMasterKeyId=None), queue("audit-queue", kmsMasterKeyId=None)])
    waiver = Waiver("SQS.1", QUEUE, "orders-queue", "Test queue holds no card data")
    report = run_controls(graph, [controls_by_id()["SQS.1"]], [waiver])
    assert [v.resource_name for v in report.violations] == ["audit-queue"]
    assert len(report.waived) == 1


def test_unused_waiver_is_reported():
    waiver = Waiver("SQS.1", QUEUE, "orders-queue", "Test queue holds no card data")
    report = run_controls(StackGraph(resources=[queue()]), [controls_by_id()["SQS.1"]], [waiver])
    assert report.passed
    assert report.unused_waivers == [waiver]
    assert "UNUSED WAIVER [SQS.1]" in report.summary()


def test_waiver_for_an_unknown_control_is_rejected():
    waiver = Waiver("SQS.99", QUEUE, "orders-queue", "No such control")
    with pytest.raises(ValueError, match=r"SQS\.99"):
        run_controls(StackGraph(resources=[queue()]), waivers=[waiver])

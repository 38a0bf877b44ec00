"""P1-P10, C1-C10 and F1-F22 from ../shared/REQUIREMENTS.md, each asserted on the resolved inputs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from lib import layer
from lib.components.data import MERCHANT_INDEX_NAME, TEST_MERCHANT_ITEM
from lib.components.messaging import DLQ_MAX_RECEIVE_COUNT, DLQ_RETENTION_SECONDS, MAX_RECEIVE_COUNT
from lib.config import StackSettings
from lib.graph import AwsLikeAnswers, StackGraph
from lib.packaging import FUNCTION_PACKAGES, FUNCTION_SOURCE_ROOT, function_source_files
from tap_testing.imports import imports_of
from tap_testing.stack import alias_of, as_list, fake_built_layer, function_invoked_by, statements_of

FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
TABLE = "aws:dynamodb/table:Table"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
TOPIC = "aws:sns/topic:Topic"
LAYER = "aws:lambda/layerVersion:LayerVersion"
REPO_ROOT = FUNCTION_SOURCE_ROOT.parent
AZ_LOOKUP = "aws:index/getAvailabilityZones:getAvailabilityZones"
# F11: the outputs the README documents, in the order the stack registers them.
DOCUMENTED_OUTPUT_KEYS = (
    "api_url",
    "dashboard_url",
    "merchant_config_table_name",
    "transactions_table_name",
    "fraud_state_table_name",
    "idempotency_table_name",
    "transaction_queue_url",
    "transaction_dlq_url",
    "alert_topic_arn",
    "ops_topic_arn",
    "api_key_id",
    "api_key_value",
    "sample_transaction",
    "region",
    "environment_suffix",
)


def functions(graph: StackGraph) -> dict[str, dict]:
    """Function inputs keyed by purpose (validator, fraud-detector, failed-handler)."""
    return {r.name.removesuffix("-function"): r.inputs for r in graph.of_type(FUNCTION)}


def role_statements(graph: StackGraph, key: str) -> list[dict]:
    return statements_of(graph.one(ROLE_POLICY, f"{key}-policy"))


def grants(statements: list[dict], action: str, resource: str) -> bool:
    return any(
        s["Effect"] == "Allow" and action in as_list(s["Action"]) and resource in as_list(s["Resource"])
        for s in statements
    )


def openapi(graph: StackGraph) -> dict:
    return json.loads(graph.one("aws:apigateway/restApi:RestApi", "rest-api").inputs["body"])


def queue(graph: StackGraph, name: str):
    return graph.one(QUEUE, name)


# --- P1-P10 ---------------------------------------------------------------------------------------


def test_waf_logs_redact_the_api_key_and_the_uri_where_a_pasted_card_number_could_be(graph):
    (logging,) = graph.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    redacted = logging.inputs["redactedFields"]
    assert {"singleHeader": {"name": "x-api-key"}} in redacted
    assert {"uriPath": {}} in redacted
    assert {"queryString": {}} in redacted


def test_waf_log_delivery_is_authorised_by_a_policy_of_this_stack_for_its_log_group_only(graph):
    """Issue 12 item 5: not the account-wide AWSWAF-LOGS policy WAF would otherwise extend (5,120
    characters, terraform-provider-aws #25296); logging starts only once delivery is authorised."""
    log_group = graph.one(LOG_GROUP, "waf-log-group")
    (policy,) = graph.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    assert policy.inputs["policyName"] == "tap-waf-log-delivery-unit"
    (statement,) = statements_of(policy, "policyDocument")
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert sorted(as_list(statement["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert as_list(statement["Resource"]) == [f"{log_group.state['arn']}:log-stream:*"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:logs:us-east-2:123456789012:*"},
    }
    (logging,) = graph.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert logging.inputs["logDestinationConfigs"] == [log_group.state["arn"]]
    assert graph.waits_for(logging, policy)


def test_p1_post_transaction_is_api_key_protected_and_throttled_for_1000_tps(graph):
    document = openapi(graph)
    post = document["paths"]["/transaction"]["post"]
    assert post["security"] == [{"api_key": []}]
    assert document["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    assert document["x-amazon-apigateway-api-key-source"] == "HEADER"
    # Both routes invoke the validator's alias (its invoke ARN, never $LATEST), as a Lambda proxy.
    validator = graph.one(FUNCTION, "validator-function")
    alias = alias_of(graph, "validator")
    get = document["paths"]["/transaction/{transaction_id}"]["get"]
    for operation in (post, get):
        assert operation["x-amazon-apigateway-integration"]["uri"] == alias.state["invokeArn"]
        assert function_invoked_by(graph, alias.state["invokeArn"]) is validator
        assert operation["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    # ... and API Gateway may invoke it for exactly those routes of this API's stage.
    permissions = {p.name: p.inputs for p in graph.of_type("aws:lambda/permission:Permission")}
    execution_arn = graph.one("aws:apigateway/restApi:RestApi", "rest-api").state["executionArn"]
    for name, route in (
        ("invoke-post-transaction", "POST/transaction"),
        ("invoke-get-transaction", "GET/transaction/*"),
    ):
        assert permissions[name]["function"] == validator.inputs["name"]
        assert permissions[name]["qualifier"] == alias.inputs["name"] == "live"
        assert permissions[name]["principal"] == "apigateway.amazonaws.com"
        assert permissions[name]["sourceArn"] == f"{execution_arn}/unit/{route}"

    key = graph.one("aws:apigateway/apiKey:ApiKey", "api-key")
    plan = graph.one("aws:apigateway/usagePlan:UsagePlan", "usage-plan")
    binding = graph.one("aws:apigateway/usagePlanKey:UsagePlanKey", "usage-plan-key")
    assert binding.inputs["keyId"] == key.id
    assert binding.inputs["usagePlanId"] == plan.id
    assert binding.inputs["keyType"] == "API_KEY"
    rest_api = graph.one("aws:apigateway/restApi:RestApi", "rest-api")
    assert plan.inputs["apiStages"] == [{"apiId": rest_api.id, "stage": "unit"}]
    assert plan.inputs["throttleSettings"]["rateLimit"] >= 1000
    assert plan.inputs["throttleSettings"]["burstLimit"] >= plan.inputs["throttleSettings"]["rateLimit"]


def test_p1_get_transaction_route_documents_the_id_pattern_which_api_gateway_does_not_enforce(graph):
    """API Gateway's request validator checks only that required parameters are present, never a
    path parameter's pattern (the local gateway mirrors that: tests/unit/local/test_gateway.py).
    So the pattern is documentation; the GET handler is where an id can be checked."""
    document = openapi(graph)
    get = document["paths"]["/transaction/{transaction_id}"]["get"]
    assert get["security"] == [{"api_key": []}]
    (parameter,) = get["parameters"]
    assert parameter["in"] == "path" and parameter["required"] is True
    request_schema = document["components"]["schemas"]["TransactionRequest"]
    assert parameter["schema"]["pattern"] == request_schema["properties"]["transaction_id"]["pattern"]
    assert "does not enforce" in parameter["description"]
    uri = get["x-amazon-apigateway-integration"]["uri"]
    assert uri == alias_of(graph, "validator").state["invokeArn"]


def test_p2_validator_reads_the_merchant_config_table(graph):
    table = graph.one(TABLE, "merchant-config-table")
    env = functions(graph)["validator"]["environment"]["variables"]
    assert env["MERCHANT_CONFIG_TABLE_NAME"] == table.inputs["name"] == "tap-merchant-config-unit"
    assert grants(role_statements(graph, "validator"), "dynamodb:GetItem", table.state["arn"])


def test_p3_transaction_queue_has_300_second_visibility_timeout(graph):
    transaction_queue = queue(graph, "transaction-queue")
    assert transaction_queue.inputs["visibilityTimeoutSeconds"] == 300
    env = functions(graph)["validator"]["environment"]["variables"]
    assert env["TRANSACTION_QUEUE_URL"] == transaction_queue.state["url"]
    assert grants(role_statements(graph, "validator"), "sqs:SendMessage", transaction_queue.state["arn"])


def test_p4_fraud_detector_is_triggered_by_the_transaction_queue(graph):
    mapping = graph.one(ESM, "fraud-detector-queue-trigger")
    assert mapping.inputs["eventSourceArn"] == queue(graph, "transaction-queue").state["arn"]
    assert mapping.inputs["functionName"] == alias_of(graph, "fraud-detector").state["arn"]
    assert functions(graph)["fraud-detector"]["handler"] == "tap_pipeline.handlers.fraud_detector.handler"


def test_p5_transactions_table_keys_are_transaction_id_and_timestamp(graph):
    table = graph.one(TABLE, "transactions-table").inputs
    assert table["hashKey"] == "transaction_id"
    assert table["rangeKey"] == "timestamp"
    assert {"name": "transaction_id", "type": "S"} in table["attributes"]
    assert {"name": "timestamp", "type": "S"} in table["attributes"]


def test_p6_failed_handler_is_triggered_by_the_separate_dead_letter_queue(graph):
    mapping = graph.one(ESM, "failed-handler-queue-trigger")
    dlq = queue(graph, "transaction-dlq")
    assert mapping.inputs["eventSourceArn"] == dlq.state["arn"]
    assert mapping.inputs["functionName"] == alias_of(graph, "failed-handler").state["arn"]
    redrive = json.loads(queue(graph, "transaction-queue").inputs["redrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq.state["arn"]


def test_p7_every_function_logs_to_its_own_30_day_encrypted_log_group(graph):
    key_arn = graph.one("aws:kms/key:Key", "data-key").state["arn"]
    for key, function in functions(graph).items():
        group = graph.one(LOG_GROUP, f"{key}-log-group").inputs
        assert group["name"] == f"/aws/lambda/{function['name']}"
        assert group["retentionInDays"] == 30
        assert group["kmsKeyId"] == key_arn
        assert function["loggingConfig"]["logGroup"] == group["name"]


def test_p8_f8_alert_topic_has_an_email_subscription_to_the_configured_address(graph):
    topic = graph.one(TOPIC, "fraud-alert-topic")
    subscription = graph.one("aws:sns/topicSubscription:TopicSubscription", "fraud-alert-topic-email").inputs
    assert subscription == {**subscription, "topic": topic.state["arn"], "protocol": "email"}
    assert subscription["endpoint"] == "fraud-alerts@example.com"
    env = functions(graph)["fraud-detector"]["environment"]["variables"]
    assert env["FRAUD_ALERT_TOPIC_ARN"] == topic.state["arn"]


def test_p9_f5_dashboard_graphs_each_function_by_its_function_name_dimension(graph):
    body = json.loads(graph.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs["dashboardBody"])
    names = {f["name"] for f in functions(graph).values()}
    by_title = {w["properties"]["title"]: w["properties"]["metrics"] for w in body["widgets"]}
    for title, metric in (
        ("Invocations", "Invocations"),
        ("Errors", "Errors"),
        ("Duration (p99)", "Duration"),
    ):
        lines = by_title[title]
        assert {tuple(line[:3]) for line in lines} == {("AWS/Lambda", metric, "FunctionName")}
        assert {line[3] for line in lines} == names


def test_p10_f11_outputs_are_the_documented_keys_with_real_values(graph):
    outputs = graph.outputs
    assert tuple(outputs) == DOCUMENTED_OUTPUT_KEYS
    assert re.fullmatch(
        r"https://\w+\.execute-api\.us-east-2\.amazonaws\.com/unit/transaction", outputs["api_url"]
    )
    assert outputs["dashboard_url"].startswith("https://us-east-2.console.aws.amazon.com/cloudwatch/home")
    assert outputs["dashboard_url"].endswith("#dashboards/dashboard/tap-pipeline-us-east-2-unit")
    assert outputs["transaction_queue_url"] == queue(graph, "transaction-queue").state["url"]
    assert outputs["api_key_value"] == graph.one("aws:apigateway/apiKey:ApiKey", "api-key").state["value"]


# --- C1-C10 ---------------------------------------------------------------------------------------


def test_c1_functions_run_only_in_three_private_subnets_across_three_azs(graph):
    subnets = graph.of_type("aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) == 3
    assert {s.inputs["availabilityZone"] for s in subnets} == {"us-east-2a", "us-east-2b", "us-east-2c"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    subnet_ids = sorted(s.id for s in subnets)
    lambda_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "lambda-sg").id
    for function in functions(graph).values():
        assert sorted(function["vpcConfig"]["subnetIds"]) == subnet_ids
        assert function["vpcConfig"]["securityGroupIds"] == [lambda_sg]
    forbidden = {
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
    }
    assert not [r for r in graph.resources if r.type in forbidden]
    assert not graph.of_type("aws:ec2/route:Route")
    assert all(not rt.inputs.get("routes") for rt in graph.of_type("aws:ec2/routeTable:RouteTable"))


def test_c1_subnets_use_only_regular_zones_never_a_local_or_wavelength_zone(graph):
    (zone_query,) = [args for token, args in graph.invokes if token == AZ_LOOKUP]
    assert zone_query["state"] == "available"
    assert {"name": "opt-in-status", "values": ["opt-in-not-required"]} in zone_query["filters"]
    answers = AwsLikeAnswers("us-east-2")
    regular = {z["zone-name"] for z in answers.availability_zones() if z["zone-type"] == "availability-zone"}
    subnet_zones = [s.inputs["availabilityZone"] for s in graph.of_type("aws:ec2/subnet:Subnet")]
    assert len(set(subnet_zones)) == 3 and set(subnet_zones) <= regular
    # The mock answers like an account opted in to a Local and a Wavelength Zone, whose names sort
    # first: without the filter the stack would have put its first subnets there.
    unfiltered = answers.call(AZ_LOOKUP, {"state": "available"})["names"]
    assert not set(unfiltered[:2]) & regular


def test_c2_each_function_has_its_own_role_scoped_to_named_resources(graph):
    roles = {f["role"] for f in functions(graph).values()}
    assert len(roles) == len(functions(graph)) == 5
    validator = role_statements(graph, "validator")
    fraud = role_statements(graph, "fraud-detector")
    failed = role_statements(graph, "failed-handler")
    reconciler = role_statements(graph, "reconciler")
    rotation = role_statements(graph, "key-rotation")
    fraud_topic = graph.one(TOPIC, "fraud-alert-topic").state["arn"]
    ops_topic = graph.one(TOPIC, "ops-alert-topic").state["arn"]
    # Each function publishes only where it must.
    assert grants(fraud, "sns:Publish", fraud_topic) and not grants(validator, "sns:Publish", fraud_topic)
    assert grants(failed, "sns:Publish", ops_topic) and not grants(fraud, "sns:Publish", ops_topic)
    assert grants(reconciler, "sns:Publish", ops_topic) and not grants(reconciler, "sns:Publish", fraud_topic)
    for statements in (validator, fraud, failed, reconciler, rotation):
        for statement in statements:
            assert "*" not in as_list(statement["Action"])
            if "*" in as_list(statement["Resource"]) and statement["Effect"] == "Allow":
                assert set(as_list(statement["Action"])) <= {
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                }
        # Every EC2 action of AWSLambdaVPCAccessExecutionRole (v3), which Lambda's ENI management uses.
        granted = {a for s in statements for a in as_list(s["Action"]) if a.startswith("ec2:")}
        assert granted == set(VPC_EXECUTION_ACTIONS)
        kms = [s for s in statements if any(a.startswith("kms:") for a in as_list(s["Action"]))]
        assert kms and all("kms:ViaService" in s["Condition"]["StringEquals"] for s in kms)


def test_c2_reconciler_queries_only_the_pending_index_and_never_scans(graph):
    """Issue 12 item 2: stale records are found through the sparse index, never by a table scan."""
    table = graph.one(TABLE, "transactions-table").state["arn"]
    queue = graph.one("aws:sqs/queue:Queue", "transaction-queue").state["arn"]
    statements = role_statements(graph, "reconciler")
    data_actions = {
        (action, resource)
        for s in statements
        if s["Effect"] == "Allow"
        for action in as_list(s["Action"])
        if action.startswith(("dynamodb:", "sqs:"))
        for resource in as_list(s["Resource"])
    }
    idempotency_table = graph.one(TABLE, "idempotency-table").state["arn"]
    async_dlq = graph.one("aws:sqs/queue:Queue", "async-failure-dlq").state["arn"]  # every function's
    assert {(a, r) for a, r in data_actions if r not in (idempotency_table, async_dlq)} == {
        ("dynamodb:Query", f"{table}/index/pending-index"),
        ("dynamodb:GetItem", table),
        ("dynamodb:UpdateItem", table),
        ("sqs:SendMessage", queue),
    }
    assert not any(action == "dynamodb:Scan" for action, _ in data_actions)
    assert graph.one(FUNCTION, "reconciler-function").inputs["reservedConcurrentExecutions"] == 1


def test_c2_validator_writes_only_card_events_into_the_fraud_state(graph):
    """Issue 10: card events are written at intake; the validator may put nothing else there."""
    fraud_table = graph.one(TABLE, "fraud-state-table").state["arn"]
    validator = [s for s in role_statements(graph, "validator") if fraud_table in as_list(s["Resource"])]
    detector = role_statements(graph, "fraud-detector")

    assert len(validator) == 1
    assert as_list(validator[0]["Action"]) == ["dynamodb:PutItem"]
    assert validator[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["card#*"]}}
    assert grants(detector, "dynamodb:Query", fraud_table)  # the card history


VPC_EXECUTION_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def test_c2_lambda_eni_permissions_are_scoped_to_the_stack_network_and_unusable_by_function_code(graph):
    """Issue 12 item 4: "*" only for the two Describe actions (no resource-level permissions); the
    interfaces are created in this stack's subnets with its security group and managed in this
    account and region; requests carrying the function's own source ARN (its code) are denied."""
    prefix = "arn:aws:ec2:us-east-2:123456789012:"
    subnets = {f"{prefix}subnet/{s.id}" for s in graph.of_type("aws:ec2/subnet:Subnet")}
    lambda_sg = f"{prefix}security-group/{graph.one('aws:ec2/securityGroup:SecurityGroup', 'lambda-sg').id}"
    for key, function in functions(graph).items():
        function_arn = graph.one(FUNCTION, f"{key}-function").state["arn"]
        ec2 = [
            s for s in role_statements(graph, key) if any(a.startswith("ec2:") for a in as_list(s["Action"]))
        ]
        allowed = {
            action: set(as_list(s["Resource"]))
            for s in ec2
            if s["Effect"] == "Allow"
            for action in as_list(s["Action"])
        }
        assert set(allowed) == set(VPC_EXECUTION_ACTIONS)
        assert allowed["ec2:DescribeNetworkInterfaces"] == allowed["ec2:DescribeSubnets"] == {"*"}
        assert allowed["ec2:CreateNetworkInterface"] == {f"{prefix}network-interface/*", *subnets, lambda_sg}
        for action in (
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        ):
            assert allowed[action] == {f"{prefix}network-interface/*"}
        # The function's own subnets and groups are the ones it may create interfaces with.
        assert {f"{prefix}subnet/{s}" for s in function["vpcConfig"]["subnetIds"]} == subnets
        (deny,) = [s for s in ec2 if s["Effect"] == "Deny"]
        assert set(as_list(deny["Action"])) == set(VPC_EXECUTION_ACTIONS)
        assert deny["Condition"] == {"ArnEquals": {"lambda:SourceFunctionArn": function_arn}}


def test_c3_customer_managed_key_with_rotation_encrypts_every_store(graph):
    key = graph.one("aws:kms/key:Key", "data-key")
    assert key.inputs["enableKeyRotation"] is True
    key_arn = key.state["arn"]
    for table in graph.of_type(TABLE):
        assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key_arn}
    for q in graph.of_type(QUEUE):
        assert q.inputs["kmsMasterKeyId"] == key_arn
    for topic in graph.of_type(TOPIC):
        assert topic.inputs["kmsMasterKeyId"] == key_arn
    for group in graph.of_type(LOG_GROUP):
        assert group.inputs["kmsKeyId"] == key_arn, group.name
    for function in functions(graph).values():
        assert function["kmsKeyArn"] == key_arn
    secret = graph.one("aws:secretsmanager/secret:Secret", "card-fingerprint-secret")
    assert secret.inputs["kmsKeyId"] == key_arn


def test_c4_tables_are_on_demand_with_point_in_time_recovery(graph):
    tables = graph.of_type(TABLE)
    assert len(tables) == 4
    for table in tables:
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
        assert table.inputs["pointInTimeRecovery"] == {"enabled": True}


def test_c5_f9_f18_xray_on_every_function_and_on_an_explicit_stage(graph):
    for function in functions(graph).values():
        assert function["tracingConfig"] == {"mode": "Active"}
    stage = graph.one("aws:apigateway/stage:Stage", "stage")
    assert stage.inputs["xrayTracingEnabled"] is True
    assert stage.inputs["deployment"] == graph.one("aws:apigateway/deployment:Deployment", "deployment").id


def evaluate_alarm_math(queries: dict[str, dict], datapoints: dict[str, float | None]) -> float | None:
    """The value CloudWatch computes for the alarm's returned expression over one period, for
    the few functions these alarms use (IF, FILL, arithmetic); a metric without data is None, and
    an expression using it unfilled has no datapoint either (None: the alarm treats it as missing)."""
    values: dict[str, object] = {
        metric_id: datapoints.get(metric_id) for metric_id, query in queries.items() if "metric" in query
    }

    def fill(value, default):
        return default if value is None else value

    def if_(condition, when_true, when_false):
        return when_true() if condition else when_false()

    def arguments(call: str) -> list[str]:
        """The top-level, comma-separated arguments of `NAME(...)`."""
        parts, depth, current = [], 0, ""
        for char in call[call.index("(") + 1 : -1]:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == "," and depth == 0:
                parts, current = [*parts, current.strip()], ""
            else:
                current += char
        return [*parts, current.strip()]

    def compile_(expression: str):
        # IF's branches are evaluated lazily, as CloudWatch does per datapoint (no 0/0 when idle).
        if expression.startswith("IF(") and expression.endswith(")"):
            condition, when_true, when_false = (compile_(part) for part in arguments(expression))
            return lambda: if_(condition(), when_true, when_false)
        python = expression.replace("FILL(", "fill(")
        return lambda: eval(python, {"fill": fill}, values)  # noqa: S307 - the stack's own expressions

    for metric_id, query in queries.items():  # in order: an expression may use an earlier one
        if "expression" in query:
            try:
                values[metric_id] = compile_(query["expression"])()
            except TypeError:  # arithmetic on a metric with no datapoint
                values[metric_id] = None
    (returned,) = [q["id"] for q in queries.values() if q["returnData"]]
    return values[returned]


def test_c6_f6_f7_each_function_alarms_when_more_than_one_percent_of_its_work_fails(graph):
    ops_topic = graph.one(TOPIC, "ops-alert-topic").state["arn"]
    for key, function in functions(graph).items():
        alarm = graph.one(ALARM, f"{key}-error-rate-alarm").inputs
        assert alarm["threshold"] == 1.0
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["alarmActions"] == [ops_topic]
        queries = {q["id"]: q for q in alarm["metricQueries"]}
        lambda_errors = queries["errors"]["metric"]
        assert (lambda_errors["namespace"], lambda_errors["metricName"]) == ("AWS/Lambda", "Errors")
        assert lambda_errors["dimensions"] == {"FunctionName": function["name"]}

        def rate(queries=queries, **datapoints):
            return evaluate_alarm_math(queries, datapoints)

        if key in ("reconciler", "key-rotation"):
            # Every failed run or rotation step raises (Scheduler / Secrets Manager see it): Lambda's
            # Errors is the whole count.
            assert "handled" not in queries
            assert rate(invocations=4, errors=1) == 25.0  # one failed run or step pages
            assert rate(invocations=4, errors=None) == 0.0
            assert rate() in (0, None)
            assert alarm["treatMissingData"] == "notBreaching"
            continue
        # Failures the code handles itself are read where the function's Powertools metrics land.
        handled = queries["handled"]["metric"]
        variables = function["environment"]["variables"]
        assert handled["namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
        assert handled["dimensions"] == {"service": variables["POWERTOOLS_SERVICE_NAME"]}

        if key == "validator":
            assert handled["metricName"] == "InternalError"  # answered 503, never a Lambda error
            assert rate(invocations=1000, errors=0, handled=20) == 2.0  # pages
            assert rate(invocations=1000, errors=5, handled=None) == 0.5  # does not
            assert rate(invocations=1000, errors=15, handled=None) == 1.5
        else:
            assert handled["metricName"] == "RecordProcessingFailed"  # batch item failures
            assert queries["succeeded"]["metric"]["metricName"] == "RecordProcessingSucceeded"
            assert rate(succeeded=980, handled=20, errors=None) == 2.0  # pages without any Lambda error
            assert rate(succeeded=995, handled=5, errors=None) == 0.5
            assert rate(succeeded=None, handled=None, errors=3) == 100.0  # every invocation crashed
        assert rate() in (0, None)  # no traffic: nothing to breach (treat_missing_data notBreaching)
        assert alarm["treatMissingData"] == "notBreaching"


def test_c7_functions_have_512_mb_60_s_and_validator_reserved_concurrency_100(graph):
    reserved = {
        "validator": 100,
        "fraud-detector": 100,
        "failed-handler": 5,
        "reconciler": 1,
        "key-rotation": 1,
    }
    for key, function in functions(graph).items():
        assert function["memorySize"] == 512
        assert function["timeout"] == 60
        assert function.get("reservedConcurrentExecutions") == reserved[key]


def test_queue_consumers_reserve_at_least_their_event_source_maximum_concurrency(graph):
    # CKV_AWS_115: the mapping's maximum concurrency caps pollers but reserves nothing; as wired,
    # each consumer's reservation covers what its pollers may start.
    mappings = graph.of_type(ESM)
    assert {function_invoked_by(graph, m.inputs["functionName"]).name for m in mappings} == {
        "fraud-detector-function",
        "failed-handler-function",
    }
    for mapping in mappings:
        function = function_invoked_by(graph, mapping.inputs["functionName"])
        reserved = function.inputs["reservedConcurrentExecutions"]
        assert reserved >= mapping.inputs["scalingConfig"]["maximumConcurrency"]


def test_reserved_concurrency_of_the_consumers_follows_config():
    from tap_testing.stack import evaluate_stack

    graph = evaluate_stack(
        fraud_detector_max_concurrency=20,
        fraud_detector_reserved_concurrency=25,
        failed_handler_max_concurrency=2,
        failed_handler_reserved_concurrency=3,
    )
    reserved = {key: f["reservedConcurrentExecutions"] for key, f in functions(graph).items()}
    assert reserved == {
        "validator": 100,
        "fraud-detector": 25,
        "failed-handler": 3,
        "reconciler": 1,
        "key-rotation": 1,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"fraud_detector_reserved_concurrency": 50},
            r"fraudDetectorReservedConcurrency 50 is below fraudDetectorMaxConcurrency 100: .*"
            r"pulumi config set fraudDetectorReservedConcurrency 100, or lower fraudDetectorMaxConcurrency",
        ),
        (
            {"failed_handler_max_concurrency": 8},
            r"failedHandlerReservedConcurrency 5 is below failedHandlerMaxConcurrency 8: ",
        ),
    ],
)
def test_a_reservation_below_the_event_source_maximum_is_refused(overrides, message):
    from lib.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        StackSettings(environment_suffix="unit", region="us-east-2", alert_email="a@example.com", **overrides)


def test_c8_every_consumed_queue_has_a_dlq_and_dlqs_keep_14_days(graph):
    terminal = {"parking-dlq", "async-failure-dlq"}  # nothing consumes these; they alarm on depth instead
    for q in graph.of_type(QUEUE):
        if q.name in terminal:
            assert "redrivePolicy" not in q.inputs
            continue
        redrive = json.loads(q.inputs["redrivePolicy"])
        # The DLQ allows receives beyond the count a message carries over from the source queue.
        expected = DLQ_MAX_RECEIVE_COUNT if q.name == "transaction-dlq" else MAX_RECEIVE_COUNT
        assert redrive["maxReceiveCount"] == expected >= 5
        assert DLQ_MAX_RECEIVE_COUNT > MAX_RECEIVE_COUNT
        target = next(t for t in graph.of_type(QUEUE) if t.state["arn"] == redrive["deadLetterTargetArn"])
        assert target.inputs["messageRetentionSeconds"] == DLQ_RETENTION_SECONDS == 14 * 24 * 3600
    for name in terminal:
        assert queue(graph, name).inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    alarm_names = {a.name for a in graph.of_type(ALARM)}
    assert {"failed-handler-dlq-depth-alarm", "lambda-async-dlq-depth-alarm"} <= alarm_names


def test_c9_f1_waf_web_acl_with_managed_rule_groups_on_the_stage(graph):
    acl = graph.one("aws:wafv2/webAcl:WebAcl", "web-acl")
    assert acl.inputs["scope"] == "REGIONAL"
    rules = {rule["name"]: rule for rule in acl.inputs["rules"]}
    for group in (
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    ):
        assert rules[group]["statement"]["managedRuleGroupStatement"] == {"vendorName": "AWS", "name": group}
        assert rules[group]["overrideAction"] == {"none": {}}
    assert rules["PerIpRateLimit"]["action"] == {"block": {}}
    assert rules["PerIpRateLimit"]["statement"]["rateBasedStatement"]["aggregateKeyType"] == "IP"
    assert all(rule["visibilityConfig"]["cloudwatchMetricsEnabled"] for rule in rules.values())
    association = graph.one("aws:wafv2/webAclAssociation:WebAclAssociation", "stage-association").inputs
    assert association["resourceArn"] == graph.one("aws:apigateway/stage:Stage", "stage").state["arn"]
    assert association["webAclArn"] == acl.state["arn"]


def test_c9_the_web_acl_association_waits_for_the_stage_and_retries_long_enough(graph):
    """Issue 12 item 5: right after the stage is created, AssociateWebACL can keep failing with
    WAFUnavailableEntityException past the provider's default create timeout
    (terraform-provider-aws #29080); the provider retries it for as long as the create timeout."""
    association = graph.one("aws:wafv2/webAclAssociation:WebAclAssociation", "stage-association")
    assert graph.waits_for(association, graph.one("aws:apigateway/stage:Stage", "stage"))
    assert graph.waits_for(association, graph.one("aws:wafv2/webAcl:WebAcl", "web-acl"))
    assert association.custom_timeouts == {"create": "30m"}


# The per-invocation durations the stack is sized for: design budgets, not measurements (a test
# must not depend on a timing). `make bench` (BENCHMARKS.md section 3) estimates the real figures
# at 1,000 TPS and 512 MB, about half of these; its capacity table shows the headroom.
DESIGN_BUDGET_MS = {"validator": 80, "fraud detector": 1_000}  # detector: per batch of 10


def test_c10_every_hop_the_stack_wires_for_a_transaction_admits_1000_tps(graph):
    assert_every_hop_admits_1000_tps(graph)


@pytest.mark.parametrize(
    "too_low",
    [
        {"api_rate_limit": 900},
        {"waf_rate_limit_per_5min": 200_000},
        {"validator_reserved_concurrency": 30},
        {"fraud_detector_max_concurrency": 40},
    ],
    ids=lambda setting: next(iter(setting)),
)
def test_c10_capacity_check_fails_when_one_hop_is_sized_below_1000_tps(too_low):
    from tap_testing.stack import evaluate_stack

    with pytest.raises(AssertionError):
        assert_every_hop_admits_1000_tps(evaluate_stack(**too_low))


def assert_every_hop_admits_1000_tps(graph: StackGraph) -> None:
    """Follow a transaction through the resources as wired (not through constants) and check that
    each limit on the way admits 1,000 TPS when every invocation takes its design budget."""
    tps = 1_000
    rest_api = graph.one("aws:apigateway/restApi:RestApi", "rest-api")
    stage = graph.one("aws:apigateway/stage:Stage", "stage")
    stage_key = (rest_api.id, stage.inputs["stageName"])
    # Edge: the stage-wide method throttle and the usage plan bound to this very stage.
    (throttle,) = [
        m.inputs["settings"]
        for m in graph.of_type("aws:apigateway/methodSettings:MethodSettings")
        if (m.inputs["restApi"], m.inputs["stageName"]) == stage_key and m.inputs["methodPath"] == "*/*"
    ]
    assert throttle["throttlingRateLimit"] >= tps and throttle["throttlingBurstLimit"] >= tps
    (plan,) = [
        p.inputs
        for p in graph.of_type("aws:apigateway/usagePlan:UsagePlan")
        if {"apiId": rest_api.id, "stage": stage.inputs["stageName"]} in p.inputs["apiStages"]
    ]
    assert plan["throttleSettings"]["rateLimit"] >= tps
    assert plan["throttleSettings"]["burstLimit"] >= tps
    # WAF on this stage: one provider address sending all 1,000 TPS must stay under the rate rule.
    (association,) = [
        a.inputs
        for a in graph.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")
        if a.inputs["resourceArn"] == stage.state["arn"]
    ]
    (acl,) = [
        a for a in graph.of_type("aws:wafv2/webAcl:WebAcl") if a.state["arn"] == association["webAclArn"]
    ]
    for rule in acl.inputs["rules"]:
        rate = rule["statement"].get("rateBasedStatement")
        if rate:
            assert rate["limit"] >= tps * rate.get("evaluationWindowSec", 300), rule["name"]
    # Validator: the function the POST route invokes. Little's law: concurrency = rate x duration.
    uri = openapi(graph)["paths"]["/transaction"]["post"]["x-amazon-apigateway-integration"]["uri"]
    validator = function_invoked_by(graph, uri)
    durations = DESIGN_BUDGET_MS
    assert validator.inputs["reservedConcurrentExecutions"] >= tps * durations["validator"] / 1000
    # Fraud detector: the mapping on the queue the validator sends to, capped by its max concurrency.
    queue_url = validator.inputs["environment"]["variables"]["TRANSACTION_QUEUE_URL"]
    (work_queue,) = [q for q in graph.of_type(QUEUE) if q.state["url"] == queue_url]
    (mapping,) = [
        m.inputs for m in graph.of_type(ESM) if m.inputs["eventSourceArn"] == work_queue.state["arn"]
    ]
    assert mapping["functionName"] == alias_of(graph, "fraud-detector").state["arn"]
    # The detector's budget is per batch of 10 (lib/components/functions.py SQS_BATCH_SIZE).
    assert mapping["batchSize"] == 10
    detector_concurrency = tps / mapping["batchSize"] * durations["fraud detector"] / 1000
    assert mapping["scalingConfig"]["maximumConcurrency"] >= detector_concurrency
    detector = function_invoked_by(graph, mapping["functionName"])
    assert detector.inputs["reservedConcurrentExecutions"] >= detector_concurrency
    # Nothing on the way has a provisioned cap: tables on demand, queue data keys cached (no KMS
    # call per message).
    for table in graph.of_type(TABLE):
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert work_queue.inputs["kmsDataKeyReusePeriodSeconds"] >= 60


# --- F findings not covered above ------------------------------------------------------------------


def test_f2_interface_endpoints_with_private_dns_for_every_service_the_functions_call(graph):
    endpoints = {
        r.inputs["serviceName"]: r.inputs
        for r in graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if r.inputs["vpcEndpointType"] == "Interface"
    }
    expected = {
        f"com.amazonaws.us-east-2.{s}" for s in ("sqs", "sns", "logs", "kms", "secretsmanager", "xray")
    }
    assert set(endpoints) == expected
    endpoint_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "endpoint-sg").id
    subnet_ids = sorted(s.id for s in graph.of_type("aws:ec2/subnet:Subnet"))
    for endpoint in endpoints.values():
        assert endpoint["privateDnsEnabled"] is True
        assert sorted(endpoint["subnetIds"]) == subnet_ids
        assert endpoint["securityGroupIds"] == [endpoint_sg]


def test_f3_f4_f16_private_route_tables_are_associated_and_carry_the_dynamodb_endpoint(graph):
    route_tables = graph.of_type("aws:ec2/routeTable:RouteTable")
    associations = graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    subnet_ids = {s.id for s in graph.of_type("aws:ec2/subnet:Subnet")}
    assert {a.inputs["subnetId"] for a in associations} == subnet_ids
    assert {a.inputs["routeTableId"] for a in associations} == {rt.id for rt in route_tables}
    gateway = graph.one("aws:ec2/vpcEndpoint:VpcEndpoint", "dynamodb-gateway-endpoint").inputs
    assert gateway["serviceName"] == "com.amazonaws.us-east-2.dynamodb"
    assert gateway["vpcEndpointType"] == "Gateway"
    assert sorted(gateway["routeTableIds"]) == sorted(rt.id for rt in route_tables)
    assert len(gateway["routeTableIds"]) == 3


def test_vpc_flow_log_starts_after_its_role_may_write_to_its_own_log_group(graph):
    """Issue 12 item 5: the flow log depends on its role policy, which holds the documented
    flow-log permissions (logs:DescribeLogGroups included) for this stack's log group."""
    flow_log = graph.one("aws:ec2/flowLog:FlowLog", "vpc-flow-log")
    policy = graph.one(ROLE_POLICY, "flow-log-role-policy")
    role = graph.one(ROLE, "flow-log-role")
    log_group = graph.one(LOG_GROUP, "flow-log-group").state["arn"]
    assert flow_log.inputs["iamRoleArn"] == role.state["arn"] and policy.inputs["role"] == role.id
    assert flow_log.inputs["logDestination"] == log_group
    assert graph.waits_for(flow_log, policy)
    granted = {a: set(as_list(s["Resource"])) for s in statements_of(policy) for a in as_list(s["Action"])}
    assert granted == {
        "logs:CreateLogStream": {log_group, f"{log_group}:*"},
        "logs:PutLogEvents": {log_group, f"{log_group}:*"},
        "logs:DescribeLogStreams": {log_group, f"{log_group}:*"},
        "logs:DescribeLogGroups": {"arn:aws:logs:us-east-2:123456789012:log-group:*"},
    }


def test_f10_stage_name_follows_the_environment_not_a_fixed_name(graph):
    from tap_testing.stack import evaluate_stack

    assert graph.one("aws:apigateway/stage:Stage", "stage").inputs["stageName"] == "unit"
    other = evaluate_stack(environment_suffix="qa7")
    assert other.one("aws:apigateway/stage:Stage", "stage").inputs["stageName"] == "qa7"
    assert "/qa7/transaction" in other.outputs["api_url"]


def test_f13_transactions_table_has_a_write_sharded_merchant_index(graph):
    table = graph.one(TABLE, "transactions-table").inputs
    (index,) = [i for i in table["globalSecondaryIndexes"] if i["name"] == MERCHANT_INDEX_NAME]
    assert index["hashKey"] == "merchant_shard"
    assert index["rangeKey"] == "timestamp"
    index_arn = f"{graph.one(TABLE, 'transactions-table').state['arn']}/index/{MERCHANT_INDEX_NAME}"
    assert grants(role_statements(graph, "fraud-detector"), "dynamodb:Query", index_arn)
    env = functions(graph)["fraud-detector"]["environment"]["variables"]
    assert env["MERCHANT_INDEX_NAME"] == MERCHANT_INDEX_NAME
    assert int(env["MERCHANT_INDEX_SHARDS"]) > 1


def attached_modules(graph: StackGraph) -> set[str]:
    """Every top-level module the stack puts on the functions' path: the code asset's packages and
    what its one layer holds (the pins' closure for python3.12/arm64, or the built layer itself)."""
    layer_resource = graph.one(LAYER, "dependency-layer")
    settings = StackSettings(environment_suffix="unit", region="us-east-2", alert_email="a@example.com")
    assert layer_resource.inputs["code"].path == settings.function_layer_dir == str(layer.DEFAULT_LAYER_DIR)
    assert layer.requirements_digest()[:16] in layer_resource.inputs["description"]
    archives = set()
    for function in functions(graph).values():
        assert function["layers"] == [layer_resource.state["arn"]]  # no public or runtime layer
        assert layer_resource.inputs["compatibleRuntimes"] == [function["runtime"]] == ["python3.12"]
        assert layer_resource.inputs["compatibleArchitectures"] == function["architectures"] == ["arm64"]
        archives.add(frozenset(function["code"].assets))
    (archive,) = archives
    packaged = {name.split("/", 1)[0] for name in archive}
    built = layer.read_manifest(layer.DEFAULT_LAYER_DIR)
    if built is not None and layer.layer_problem(layer.DEFAULT_LAYER_DIR) is None:
        distributions = built["distributions"]
    else:  # not built on this machine (no network in tests): what the build step installs
        distributions = layer.resolve_from_environment()
    for name, version in layer.pins().items():
        assert distributions[name]["version"] == version
    return packaged | layer.provided_modules(distributions)


# Standard-library modules of the functions' runtime (python3.12): this interpreter's list, less the
# modules Python 3.12 removed (PEP 594 / PEP 632), so code importing them is caught here.
REMOVED_IN_PYTHON_312 = frozenset({"asynchat", "asyncore", "distutils", "imp", "smtpd"})
RUNTIME_STDLIB = frozenset(sys.stdlib_module_names) - REMOVED_IN_PYTHON_312


def imported_modules(package_dir: Path) -> dict[str, set[str]]:
    """Top-level module of every import -> files that import it (relative ones name the package)."""
    found: dict[str, set[str]] = {}
    # Exactly the files the code asset ships.
    for name in function_source_files(package_dir.parent, (package_dir.name,)):
        path = package_dir.parent / name
        package = str(Path(name).parent).replace("/", ".")
        for imported in imports_of(path, package):
            found.setdefault(imported.split(".", 1)[0], set()).add(path.relative_to(package_dir).as_posix())
    return found


def unresolved_imports(package_dir: Path, provided: set[str]) -> dict[str, set[str]]:
    """Imports neither the runtime's standard library nor `provided` (code asset + layers) satisfy."""
    return {
        module: files
        for module, files in imported_modules(package_dir).items()
        if module not in RUNTIME_STDLIB and module not in provided
    }


def test_f14_every_import_in_the_function_package_resolves_from_stdlib_code_asset_or_layer(graph):
    provided = attached_modules(graph)
    assert {"tap_pipeline", "tap_contract"} <= provided
    for package in FUNCTION_PACKAGES:
        assert unresolved_imports(FUNCTION_SOURCE_ROOT / package, provided) == {}, package
    # The scan sees the third-party imports the layer must serve, boto3 among them.
    imported = set(imported_modules(FUNCTION_SOURCE_ROOT / "tap_pipeline"))
    assert {
        "boto3",
        "botocore",
        "pydantic",
        "aws_lambda_powertools",
        "tap_pipeline",
        "tap_contract",
    } <= imported
    for function in functions(graph).values():
        module = function["handler"].rsplit(".", 1)[0].replace(".", "/") + ".py"
        assert module in function["code"].assets


def test_f14_import_check_fails_on_an_import_nothing_attached_provides(graph, tmp_path):
    planted = tmp_path / "tap_pipeline"
    shutil.copytree(
        FUNCTION_SOURCE_ROOT / "tap_pipeline", planted, ignore=shutil.ignore_patterns("__pycache__")
    )
    (planted / "handlers" / "planted.py").write_text(
        "import requests  # installed here for the tests, not in the layer\n"
        "from leftpad.core import pad\n"
        "from asyncore import loop  # gone in Python 3.12\n"
        "from . import validator\n"
        "from tap_contract import api\n"
    )
    unresolved = unresolved_imports(planted, attached_modules(graph))
    assert unresolved == {name: {"handlers/planted.py"} for name in ("requests", "leftpad", "asyncore")}


def test_f14_layer_is_built_from_the_pins_for_the_functions_runtime_and_checked(tmp_path, monkeypatch):
    command = layer.pip_command(tmp_path / "python")
    assert command[command.index("--requirement") + 1] == str(REPO_ROOT / "requirements" / "functions.txt")
    assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"  # arm64 Linux
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in command
    for line in layer.requirement_lines():
        assert "==" in line, line
    assert {"boto3", "botocore", "pydantic", "aws-lambda-powertools"} <= set(layer.pins())

    def fake_pip(argv, check):  # what pip leaves in --target, without the network
        site_dir = Path(argv[argv.index("--target") + 1])
        fake_built_layer(tmp_path / "scratch")
        shutil.copytree(tmp_path / "scratch" / "python", site_dir, dirs_exist_ok=True)

    monkeypatch.setattr(layer.subprocess, "run", fake_pip)
    manifest = layer.build(tmp_path / "lambda-layer")
    assert manifest["requirements_sha256"] == layer.requirements_digest()
    assert layer.layer_problem(tmp_path / "lambda-layer") is None
    # Anything added to the directory after the build no longer matches its manifest.
    extra = tmp_path / "lambda-layer" / "python" / "requests-2.0.0.dist-info"
    extra.mkdir()
    (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n")
    assert "not the ones its manifest lists" in layer.layer_problem(tmp_path / "lambda-layer")


def test_f14_every_distribution_the_layer_holds_is_pinned_at_the_version_the_tests_ran_with():
    # The dependency closure of the pins for the functions' runtime, as installed here: a lock file
    # in effect, so `make layer` cannot pick a newer transitive dependency than the tests used.
    closure = layer.resolve_from_environment()
    pinned = layer.pins()
    assert set(closure) <= set(pinned), f"unpinned: {sorted(set(closure) - set(pinned))}"
    assert {name: entry["version"] for name, entry in closure.items()} == {n: pinned[n] for n in closure}


def test_f15_queue_triggers_report_partial_batch_failures(graph):
    for name in ("fraud-detector-queue-trigger", "failed-handler-queue-trigger"):
        mapping = graph.one(ESM, name).inputs
        assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["batchSize"] == 10
        assert mapping["scalingConfig"]["maximumConcurrency"] >= 2


def test_f17_endpoint_security_group_admits_443_only_from_the_lambda_security_group(graph):
    endpoint_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "endpoint-sg").id
    lambda_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "lambda-sg").id
    (ingress,) = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert ingress.inputs["securityGroupId"] == endpoint_sg
    assert ingress.inputs["referencedSecurityGroupId"] == lambda_sg
    assert (ingress.inputs["fromPort"], ingress.inputs["toPort"], ingress.inputs["ipProtocol"]) == (
        443,
        443,
        "tcp",
    )
    assert "cidrIpv4" not in ingress.inputs


def test_f19_access_logs_go_to_a_log_group_and_the_account_logging_role_is_set(graph):
    stage = graph.one("aws:apigateway/stage:Stage", "stage").inputs
    access_group = graph.one(LOG_GROUP, "access-log-group")
    assert stage["accessLogSettings"]["destinationArn"] == access_group.state["arn"]
    assert "$context.requestId" in stage["accessLogSettings"]["format"]
    account = graph.one("aws:apigateway/account:Account", "account-logging").inputs
    role = graph.one(ROLE, "cloudwatch-role")
    assert account["cloudwatchRoleArn"] == role.state["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    settings = graph.one("aws:apigateway/methodSettings:MethodSettings", "all-methods").inputs["settings"]
    assert settings["loggingLevel"] in {"ERROR", "INFO"} and settings["metricsEnabled"] is True
    assert settings["dataTraceEnabled"] is False


def test_f19_the_account_logging_setting_outlives_the_stack_and_is_in_place_before_the_stage(graph):
    """Issue 12 item 4: destroying aws.apigateway.Account resets the account's CloudWatch role
    (terraform-provider-aws #42226), which would stop every other stack's API logs; the setting,
    its role and the role's policy are retained, and the stage waits for the setting."""
    account = graph.one("aws:apigateway/account:Account", "account-logging")
    role = graph.one(ROLE, "cloudwatch-role")
    policy = graph.one(ROLE_POLICY, "cloudwatch-role-policy")
    assert account.retain_on_delete and role.retain_on_delete and policy.retain_on_delete
    assert graph.waits_for(account, policy)
    assert graph.waits_for(graph.one("aws:apigateway/stage:Stage", "stage"), account)
    # Named by IAM from a prefix, so a role retained by `pulumi destroy` never blocks the next `up`.
    assert role.inputs["namePrefix"] == "tap-apigw-logs-unit-" and "name" not in role.inputs
    assert role.state["name"].startswith("tap-apigw-logs-unit-")


def test_f19_with_a_bootstrap_stack_owning_the_account_setting_the_stack_leaves_it_alone():
    from lib.policy import run_controls
    from tap_testing.stack import evaluate_stack

    graph = evaluate_stack(manage_api_gateway_account=False)
    assert not graph.of_type("aws:apigateway/account:Account")
    assert not [r for r in graph.of_type(ROLE) if r.name == "cloudwatch-role"]
    stage = graph.one("aws:apigateway/stage:Stage", "stage")
    assert graph.waits_for(stage, graph.one(LOG_GROUP, "execution-log-group"))
    # The baseline cannot see another stack's setting: APIGateway.1 on the stage is the one open
    # finding, to be checked on the stack that owns the setting (README, Deploy).
    report = run_controls(graph)
    assert [(v.control_id, v.resource_name) for v in report.violations] == [("APIGateway.1", "stage")]
    assert "no apigateway.Account" in report.violations[0].message


def test_f19_api_gateway_logging_role_trust_has_no_undocumented_source_account_condition(graph):
    """API Gateway does not document aws:SourceAccount for the account-level CloudWatch role; a
    condition it never satisfies would make it unable to assume the role (no API logs at all)."""
    role = graph.one(ROLE, "cloudwatch-role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "apigateway.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    # Where AWS documents the key (SNS topic policy for CloudWatch alarms), it stays.
    account = graph.outputs["alert_topic_arn"].split(":")[4]
    for topic in ("fraud-alert-topic", "ops-alert-topic"):
        statements = statements_of(graph.one("aws:sns/topicPolicy:TopicPolicy", f"{topic}-policy"))
        assert any(
            s.get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount") == account
            for s in statements
        )


def test_f20_every_function_has_an_async_failure_dead_letter_target(graph):
    dlq_arn = queue(graph, "async-failure-dlq").state["arn"]
    for key, function in functions(graph).items():
        assert function["deadLetterConfig"] == {"targetArn": dlq_arn}
        assert grants(role_statements(graph, key), "sqs:SendMessage", dlq_arn)


def test_f21_seeded_test_merchant_accepts_the_sample_transaction_output(graph):
    item = json.loads(graph.one("aws:dynamodb/tableItem:TableItem", "test-merchant").inputs["item"])
    assert item == TEST_MERCHANT_ITEM
    sample = json.loads(graph.outputs["sample_transaction"])
    assert sample["merchant_id"] == item["merchant_id"]["S"]
    assert {"S": sample["currency"]} in item["allowed_currencies"]["L"]
    assert float(item["min_amount"]["N"]) <= float(sample["amount"]) <= float(item["max_amount"]["N"])
    assert "number" not in sample["card"]  # the output can be shown anywhere: no card number in it


def test_f21_strict_test_merchant_overrides_are_rules_the_fraud_engine_knows(graph):
    from boto3.dynamodb.types import TypeDeserializer

    from tap_pipeline.rules import DEFAULT_RULES, effective_rules

    raw = json.loads(graph.one("aws:dynamodb/tableItem:TableItem", "strict-test-merchant").inputs["item"])
    item = {key: TypeDeserializer().deserialize(value) for key, value in raw.items()}
    assert item["merchant_id"] == "test-merchant-strict"
    rules, ignored = effective_rules(item["rule_overrides"])
    assert ignored == []
    assert set(item["rule_overrides"]) == set(DEFAULT_RULES)
    assert all(rule.weight == 100 for rule in rules.values())
    assert rules["amount_over_limit"].threshold == 1000


def test_f21_sample_transaction_satisfies_the_api_request_schema(graph):
    schema = openapi(graph)["components"]["schemas"]["TransactionRequest"]
    sample = json.loads(graph.outputs["sample_transaction"])
    assert set(schema.get("required", [])) <= set(sample)
    assert set(sample) <= set(schema["properties"])


def test_openapi_change_triggers_a_redeployment(graph):
    body = graph.one("aws:apigateway/restApi:RestApi", "rest-api").inputs["body"]
    deployment = graph.one("aws:apigateway/deployment:Deployment", "deployment").inputs
    assert deployment["triggers"] == {"openapi_sha256": hashlib.sha256(body.encode()).hexdigest()}


def test_reliability_alarms_cover_queues_api_throttles_and_tables(graph):
    alarms = {a.name: a.inputs for a in graph.of_type(ALARM)}
    ops_topic = graph.one(TOPIC, "ops-alert-topic").state["arn"]
    expected = {
        "transaction-dlq-arrivals-alarm",
        "failed-handler-dlq-depth-alarm",
        "lambda-async-dlq-depth-alarm",
        "transaction-queue-oldest-message-age-alarm",
        "api-5xx-rate-alarm",
        "api-p99-latency-alarm",
        *(f"{k}-throttles-alarm" for k in ("validator", "fraud-detector", "failed-handler", "key-rotation")),
        "key-rotation-failed-alarm",
        *(
            f"{t}-throttles-alarm"
            for t in ("merchant-config-table", "transactions-table", "fraud-state-table")
        ),
        "idempotency-table-throttles-alarm",
        "merchant-index-throttles-alarm",
    }
    assert expected <= set(alarms)
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [ops_topic]
    transactions = graph.one("aws:dynamodb/table:Table", "transactions-table").inputs["name"]
    for key in ("transactions-table", "idempotency-table", "merchant-index"):
        queries = {q["id"]: q for q in alarms[f"{key}-throttles-alarm"]["metricQueries"]}
        assert alarms[f"{key}-throttles-alarm"]["threshold"] == 0
        # DynamoDB reports throttle events only in minutes that had some: one kind alone must breach.
        assert evaluate_alarm_math(queries, {"writes": 3, "reads": None}) == 3
        assert evaluate_alarm_math(queries, {"writes": None, "reads": 2}) == 2
        assert evaluate_alarm_math(queries, {}) == 0
    index_dims = alarms["merchant-index-throttles-alarm"]["metricQueries"][1]["metric"]["dimensions"]
    assert index_dims == {"TableName": transactions, "GlobalSecondaryIndexName": "merchant-index"}
    for key, name in (("failed-handler-dlq", "parking-dlq"), ("lambda-async-dlq", "async-failure-dlq")):
        # Nothing drains these two, so a message stays visible until someone acts: depth is right.
        (depth,) = alarms[f"{key}-depth-alarm"]["metricQueries"]
        assert depth["metric"]["metricName"] == "ApproximateNumberOfMessagesVisible"
        assert depth["metric"]["dimensions"] == {"QueueName": queue(graph, name).inputs["name"]}
        assert alarms[f"{key}-depth-alarm"]["threshold"] == 0
    api = {q["id"]: q for q in alarms["api-5xx-rate-alarm"]["metricQueries"]}
    assert api["errors5xx"]["metric"]["metricName"] == "5XXError"
    assert api["rate5xx"]["expression"] == "IF(requests > 0, 100 * errors5xx / requests, 0)"


def test_transaction_dlq_alarm_fires_on_any_arrival_although_the_failed_handler_drains_it(graph):
    """The failed handler empties the transaction DLQ within seconds, so its depth is ~0 at every
    one-minute sample; and SQS leaves redriven messages out of the DLQ's NumberOfMessagesSent. Every
    arrival is received by the failed handler, so received (plus depth, should it stop) > 0 alarms."""
    alarms = {a.name: a.inputs for a in graph.of_type(ALARM)}
    assert "transaction-dlq-depth-alarm" not in alarms
    alarm = alarms["transaction-dlq-arrivals-alarm"]
    dlq_name = queue(graph, "transaction-dlq").inputs["name"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["received"]["metric"] == {
        "namespace": "AWS/SQS",
        "metricName": "NumberOfMessagesReceived",
        "dimensions": {"QueueName": dlq_name},
        "period": 60,
        "stat": "Sum",
    }
    assert queries["visible"]["metric"]["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert queries["visible"]["metric"]["dimensions"] == {"QueueName": dlq_name}
    assert queries["arrivals"]["returnData"] is True
    assert [q["id"] for q in alarm["metricQueries"] if q.get("returnData")] == ["arrivals"]
    assert queries["arrivals"]["expression"] == "FILL(received, 0) + FILL(visible, 0)"
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    # A single minute with an arrival must be enough (the next minute is empty again), and that
    # minute stays evaluated for a while in case its datapoint arrives late.
    assert alarm["datapointsToAlarm"] == 1
    assert alarm["evaluationPeriods"] >= 3
    assert alarm["treatMissingData"] == "notBreaching"
    # The queue it watches is the one the failed handler consumes.
    mapping = graph.one(ESM, "failed-handler-queue-trigger").inputs
    assert mapping["eventSourceArn"] == queue(graph, "transaction-dlq").state["arn"]

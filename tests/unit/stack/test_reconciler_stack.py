"""Issue 12 item 2 in the stack: the sparse pending index, the reconciler's schedule and its alarm."""

from __future__ import annotations

import json

from tap_contract import tables
from tap_testing.stack import alias_of, as_list, evaluate_stack, function_invoked_by, statements_of

SCHEDULE = "aws:scheduler/schedule:Schedule"
FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_the_pending_index_is_sparse_keys_only_and_keyed_by_shard_and_pending_time(graph):
    table = graph.one(TABLE, "transactions-table").inputs
    (index,) = [i for i in table["globalSecondaryIndexes"] if i["name"] == tables.PENDING_INDEX_NAME]
    assert (index["hashKey"], index["rangeKey"]) == (tables.PENDING_SHARD, tables.PENDING_SINCE)
    assert index["projectionType"] == "KEYS_ONLY"
    declared = {a["name"]: a["type"] for a in table["attributes"]}
    assert declared[tables.PENDING_SHARD] == declared[tables.PENDING_SINCE] == "S"


def test_eventbridge_scheduler_invokes_the_reconciler_every_five_minutes_through_its_own_role(graph):
    (schedule,) = graph.of_type(SCHEDULE)
    reconciler = graph.one(FUNCTION, "reconciler-function")
    # Scheduler invokes the reconciler's alias (issue 13: never $LATEST), and may invoke only that.
    alias = alias_of(graph, "reconciler")
    (key,) = graph.of_type("aws:kms/key:Key")
    key_arn = key.state["arn"]
    async_dlq = graph.one("aws:sqs/queue:Queue", "async-failure-dlq").state["arn"]
    inputs = schedule.inputs
    assert inputs["scheduleExpression"] == "rate(5 minutes)"
    assert inputs["flexibleTimeWindow"] == {"mode": "OFF"}
    assert inputs["state"] == "ENABLED"
    assert "kmsKeyArn" not in inputs  # no payload: a customer key would protect nothing
    target = inputs["target"]
    assert target["arn"] == alias.state["arn"]
    assert function_invoked_by(graph, target["arn"]) is reconciler
    assert target["deadLetterConfig"] == {"arn": async_dlq}
    assert target["retryPolicy"]["maximumRetryAttempts"] == 2

    role = next(r for r in graph.of_type("aws:iam/role:Role") if r.state["arn"] == target["roleArn"])
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    policy = next(p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id)
    granted = {
        (a, r) for s in statements_of(policy) for a in as_list(s["Action"]) for r in as_list(s["Resource"])
    }
    assert granted == {
        ("lambda:InvokeFunction", alias.state["arn"]),
        ("sqs:SendMessage", async_dlq),
        ("kms:Decrypt", key_arn),
        ("kms:GenerateDataKey", key_arn),
    }
    (kms,) = [s for s in statements_of(policy) if "kms:Decrypt" in as_list(s["Action"])]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "sqs.us-east-2.amazonaws.com"}}
    assert graph.waits_for(schedule, policy)


def test_the_schedule_and_the_stale_bounds_follow_config():
    graph = evaluate_stack(
        reconciler_schedule_minutes=1,
        stale_received_after_seconds=120,
        reconciler_max_requeues=5,
        reconciler_batch_limit=200,
    )
    (schedule,) = graph.of_type(SCHEDULE)
    assert schedule.inputs["scheduleExpression"] == "rate(1 minute)"
    variables = graph.one(FUNCTION, "reconciler-function").inputs["environment"]["variables"]
    assert variables["STALE_RECEIVED_AFTER_SECONDS"] == "120"
    assert variables["RECONCILER_MAX_REQUEUES"] == "5"
    assert variables["RECONCILER_BATCH_LIMIT"] == "200"
    # Failing waits for the last re-enqueue (6 x 120 s) and its whole queue budget (5 x 300 s).
    assert variables["STALE_RECEIVED_FAIL_AFTER_SECONDS"] == str(6 * 120 + 5 * 300)
    alarm = graph.one(ALARM, "stale-received-records-alarm").inputs
    assert alarm["metricQueries"][0]["metric"]["period"] == 60


def test_by_default_a_record_is_failed_45_minutes_after_it_was_received(graph):
    variables = graph.one(FUNCTION, "reconciler-function").inputs["environment"]["variables"]
    assert variables["STALE_RECEIVED_FAIL_AFTER_SECONDS"] == "2700"


def test_stale_received_records_in_two_runs_in_a_row_or_no_run_at_all_page_ops(graph):
    alarm = graph.one(ALARM, "stale-received-records-alarm").inputs
    ops_topic = graph.one("aws:sns/topic:Topic", "ops-alert-topic").state["arn"]
    (query,) = alarm["metricQueries"]
    metric = query["metric"]
    assert (metric["namespace"], metric["metricName"]) == ("TapTransactionPipeline", "StaleReceivedRecords")
    assert metric["dimensions"] == {"service": "reconciler"}
    assert metric["period"] == 300 and metric["stat"] == "Maximum"
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"], alarm["threshold"]) == (2, 2, 0)
    assert alarm["comparisonOperator"] == "GreaterThanThreshold"
    assert alarm["treatMissingData"] == "breaching"  # a reconciler that stopped reporting
    assert alarm["alarmActions"] == [ops_topic] and alarm["okActions"] == [ops_topic]


def test_the_pending_index_has_its_own_throttle_alarm(graph):
    alarm = graph.one(ALARM, "pending-index-throttles-alarm").inputs
    dims = alarm["metricQueries"][0]["metric"]["dimensions"]
    assert dims["GlobalSecondaryIndexName"] == tables.PENDING_INDEX_NAME

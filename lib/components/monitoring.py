"""Alarms and the dashboard (P9, C6, F5-F7, reliability baseline).

Every alarm notifies the ops topic, both when it fires and when it recovers. Error rate is computed
with metric math per function, in percent, so one failure in a thousand does not page anyone while a
2 % failure rate does. It counts the failures the code reports instead of raising, which Lambda's
`Errors` metric never sees: the validator answers an unexpected error with a 503 (`InternalError`),
and the SQS consumers report failed records as batch item failures (`RecordProcessingFailed`, out
of every record they processed). A whole invocation that fails (crash, timeout) counts as one failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import pulumi
import pulumi_aws as aws

from lib.components.base import AwsContext, TaggedComponent
from tap_contract import metrics
from tap_contract.environment import KEY_ROTATION, RECONCILER, VALIDATOR

ERROR_RATE_THRESHOLD_PERCENT = 1.0  # C6
# Failures: invocations that raised (Lambda) plus those the code handled (its own metric).
FAILURES_EXPRESSION = "FILL(errors, 0) + FILL(handled, 0)"
# A function whose failures all raise (the key rotation): Lambda's count is the whole story.
RAISED_FAILURES_EXPRESSION = "FILL(errors, 0)"
# The validator: per invocation.
ERROR_RATE_EXPRESSION = "IF(invocations > 0, 100 * failed / invocations, 0)"
# An SQS consumer: per record, a failed invocation counting as one failed record.
RECORD_FAILURE_RATE_EXPRESSION = (
    "IF(failed + FILL(succeeded, 0) > 0, 100 * failed / (failed + FILL(succeeded, 0)), 0)"
)
# Metrics the functions emit for failures they handle (Powertools metrics, dimension service=<key>).
HANDLED_FAILURE_METRIC = {VALIDATOR: metrics.INTERNAL_ERROR}
RECORD_FAILURE_METRIC = metrics.RECORD_PROCESSING_FAILED
RECORD_SUCCESS_METRIC = metrics.RECORD_PROCESSING_SUCCEEDED
API_5XX_RATE_EXPRESSION = "IF(requests > 0, 100 * errors5xx / requests, 0)"
API_5XX_THRESHOLD_PERCENT = 1.0
API_P99_LATENCY_THRESHOLD_MS = 2000
OLDEST_MESSAGE_AGE_THRESHOLD_SECONDS = 300
DLQ_ARRIVALS_EXPRESSION = "FILL(received, 0) + FILL(visible, 0)"
# DynamoDB publishes throttle events only in minutes that had some, so one kind is usually
# missing; unfilled, the sum would have no datapoint unless reads and writes were both throttled.
THROTTLE_EXPRESSION = "FILL(reads, 0) + FILL(writes, 0)"
PERIOD_SECONDS = 60


@dataclass
class MonitoringArgs:
    context: AwsContext
    alarm_topic_arn: pulumi.Input[str]
    function_names: Mapping[str, pulumi.Input[str]]
    # Functions fed by an SQS event source mapping (their failures are per record).
    queue_consumers: frozenset[str]
    metrics_namespace: str
    # Dead-letter queues nothing consumes: a message waits there until someone acts, so depth > 0.
    dead_letter_queue_names: Mapping[str, pulumi.Input[str]]
    # Dead-letter queues a function drains within seconds: depth stays 0, so alarm on arrivals.
    drained_dead_letter_queue_names: Mapping[str, pulumi.Input[str]]
    work_queue_name: pulumi.Input[str]
    table_names: Mapping[str, pulumi.Input[str]]
    # Global secondary indexes (key -> table name, index name): their throttling is reported
    # under the index's own dimensions, and it throttles writes to the table.
    table_indexes: Mapping[str, tuple[pulumi.Input[str], str]]
    api_name: pulumi.Input[str]
    api_stage_name: pulumi.Input[str]
    # How often the reconciler runs: its stale-record metric has one datapoint per run.
    reconciler_period_seconds: int = 300


MetricQuery = aws.cloudwatch.MetricAlarmMetricQueryArgsDict


class _DashboardInputs(TypedDict):
    """The dashboard's inputs once the Output holding them has resolved."""

    functions: dict[str, str]
    queue: str
    api: dict[str, str]


def _metric(
    metric_id: str,
    namespace: str,
    metric_name: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    stat: str,
    period: int = PERIOD_SECONDS,
) -> MetricQuery:
    return {
        "id": metric_id,
        "metric": {
            "namespace": namespace,
            "metric_name": metric_name,
            "dimensions": dict(dimensions),
            "period": period,
            "stat": stat,
        },
        "return_data": False,
    }


def _expression(metric_id: str, expression: str, label: str, return_data: bool = True) -> MetricQuery:
    return {"id": metric_id, "expression": expression, "label": label, "return_data": return_data}


class Monitoring(TaggedComponent):
    """Per-function error-rate and throttle alarms, queue, API and table alarms, and the dashboard."""

    component_name = "monitoring"

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Monitoring", name, args.context, opts)
        self._args = args
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}

        for key, function_name in args.function_names.items():
            dims = {"FunctionName": function_name}
            self._error_rate_alarm(key, dims)
            self._alarm(
                f"{key}-throttles",
                f"{key}: invocations are being throttled",
                threshold=0,
                single_metric=("AWS/Lambda", "Throttles", dims, "Sum"),
            )
        if KEY_ROTATION in args.function_names:
            self._key_rotation_failed_alarm()
        for key, queue_name in args.dead_letter_queue_names.items():
            self._alarm(
                f"{key}-depth",
                f"{key}: messages are waiting in a dead-letter queue",
                threshold=0,
                single_metric=(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": queue_name},
                    "Maximum",
                ),
            )
        for key, queue_name in args.drained_dead_letter_queue_names.items():
            # SQS does not count a message moved here by a redrive policy in NumberOfMessagesSent, and
            # the consumer empties the queue between depth samples; every arrival is received, though.
            # Visible depth covers a consumer that has stopped receiving.
            dims = {"QueueName": queue_name}
            self._alarm(
                f"{key}-arrivals",
                f"{key}: messages were dead-lettered (the failed handler records them as FAILED)",
                threshold=0,
                metric_queries=[
                    _metric("received", "AWS/SQS", "NumberOfMessagesReceived", dims, "Sum"),
                    _metric("visible", "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims, "Maximum"),
                    _expression("arrivals", DLQ_ARRIVALS_EXPRESSION, "Dead-lettered messages"),
                ],
                # One minute with an arrival is enough, and it will not show in the next one; five
                # periods keep a late SQS datapoint in view until it has been evaluated.
                evaluation_periods=5,
                datapoints_to_alarm=1,
            )
        self._alarm(
            "transaction-queue-oldest-message-age",
            "transaction queue: the oldest message is older than 5 minutes (consumers falling behind)",
            threshold=OLDEST_MESSAGE_AGE_THRESHOLD_SECONDS,
            single_metric=(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                {"QueueName": args.work_queue_name},
                "Maximum",
            ),
        )
        self._stale_received_alarm()
        api_dims = {"ApiName": args.api_name, "Stage": args.api_stage_name}
        self._alarm(
            "api-5xx-rate",
            "API: more than 1% of requests answered 5XX",
            threshold=API_5XX_THRESHOLD_PERCENT,
            metric_queries=[
                _metric("errors5xx", "AWS/ApiGateway", "5XXError", api_dims, "Sum"),
                _metric("requests", "AWS/ApiGateway", "Count", api_dims, "Sum"),
                _expression("rate5xx", API_5XX_RATE_EXPRESSION, "5XX rate (%)"),
            ],
        )
        self._alarm(
            "api-p99-latency",
            "API: p99 latency above 2 seconds",
            threshold=API_P99_LATENCY_THRESHOLD_MS,
            single_metric=("AWS/ApiGateway", "Latency", api_dims, "p99"),
        )
        for key, table_name in args.table_names.items():
            self._throttle_alarm(key, {"TableName": table_name})
        for key, (table_name, index_name) in args.table_indexes.items():
            self._throttle_alarm(key, {"TableName": table_name, "GlobalSecondaryIndexName": index_name})

        self.dashboard = aws.cloudwatch.Dashboard(
            "dashboard",
            dashboard_name=self.context.global_name("pipeline"),
            # The Output resolves the nested Inputs to plain values, which its type cannot express.
            dashboard_body=pulumi.Output.from_input(
                {"functions": dict(args.function_names), "queue": args.work_queue_name, "api": api_dims}
            ).apply(
                lambda resolved: json.dumps(
                    dashboard_body(self.context.region, **cast(_DashboardInputs, resolved))
                )
            ),
            opts=self.child_opts,
        )
        self.dashboard_url = pulumi.Output.concat(
            "https://",
            self.context.region,
            ".console.aws.amazon.com/cloudwatch/home?region=",
            self.context.region,
            "#dashboards/dashboard/",
            self.dashboard.dashboard_name,
        )
        self.register_outputs({"dashboard_url": self.dashboard_url})

    def _stale_received_alarm(self) -> None:
        """Stale RECEIVED records found by two runs in a row: messages are being lost or are far
        behind, and the reconciler is not catching up. A run that does not report at all (the
        schedule or the function is broken) counts as breaching: nobody else would notice."""
        query = _metric(
            "stale",
            self._args.metrics_namespace,
            metrics.STALE_RECEIVED,
            {"service": RECONCILER},
            "Maximum",
            period=self._args.reconciler_period_seconds,
        )
        self._alarm(
            "stale-received-records",
            "reconciler: transactions stayed RECEIVED past the stale bound in two runs in a row",
            threshold=0,
            metric_queries=[{**query, "return_data": True}],
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data="breaching",
        )

    def _throttle_alarm(self, key: str, dims: Mapping[str, pulumi.Input[str]]) -> None:
        self._alarm(
            f"{key}-throttles",
            f"{key}: DynamoDB requests are being throttled",
            threshold=0,
            metric_queries=[
                _metric("reads", "AWS/DynamoDB", "ReadThrottleEvents", dims, "Sum"),
                _metric("writes", "AWS/DynamoDB", "WriteThrottleEvents", dims, "Sum"),
                _expression("throttled", THROTTLE_EXPRESSION, "Throttled requests"),
            ],
        )

    def _error_rate_alarm(self, key: str, dims: Mapping[str, pulumi.Input[str]]) -> None:
        namespace, service = self._args.metrics_namespace, {"service": key}
        consumer = key in self._args.queue_consumers
        handled = RECORD_FAILURE_METRIC if consumer else HANDLED_FAILURE_METRIC.get(key)
        queries = [_metric("errors", "AWS/Lambda", "Errors", dims, "Sum")]
        if handled is None:  # a function that handles no failure itself: every failure raises
            queries.append(_expression("failed", RAISED_FAILURES_EXPRESSION, "Failures", return_data=False))
        else:
            queries += [
                _metric("handled", namespace, handled, service, "Sum"),
                _expression("failed", FAILURES_EXPRESSION, "Failures", return_data=False),
            ]
        if consumer:
            description = f"{key}: more than 1% of messages failed"
            queries += [
                _metric("succeeded", namespace, RECORD_SUCCESS_METRIC, service, "Sum"),
                _expression("error_rate", RECORD_FAILURE_RATE_EXPRESSION, "Failed messages (%)"),
            ]
        else:
            description = f"{key}: more than 1% of invocations failed"
            queries += [
                _metric("invocations", "AWS/Lambda", "Invocations", dims, "Sum"),
                _expression("error_rate", ERROR_RATE_EXPRESSION, "Error rate (%)"),
            ]
        self._alarm(
            f"{key}-error-rate", description, threshold=ERROR_RATE_THRESHOLD_PERCENT, metric_queries=queries
        )

    def _key_rotation_failed_alarm(self) -> None:
        """Any failed step of a card-fingerprint key rotation. Secrets Manager retries a failed
        rotation, and the old key stays current meanwhile, so nothing breaks at once; but a key
        that stops rotating, or a rotation left AWSPENDING, needs a person (README, Operations)."""
        self._alarm(
            "key-rotation-failed",
            "card-fingerprint key rotation: a rotation step failed (the current key stays in use)",
            threshold=0,
            single_metric=(
                self._args.metrics_namespace,
                metrics.KEY_ROTATION_FAILED,
                {"service": KEY_ROTATION},
                "Sum",
            ),
            # Rotations are rare: one failed step is enough, and stays in view for five minutes.
            evaluation_periods=5,
            datapoints_to_alarm=1,
        )

    def _alarm(
        self,
        key: str,
        description: str,
        *,
        threshold: float,
        metric_queries: list[MetricQuery] | None = None,
        single_metric: tuple[str, str, Mapping[str, pulumi.Input[str]], str] | None = None,
        evaluation_periods: int = 3,
        datapoints_to_alarm: int = 2,
        treat_missing_data: str = "notBreaching",
    ) -> None:
        if single_metric is not None:
            namespace, metric_name, dims, stat = single_metric
            metric_queries = [{**_metric("m", namespace, metric_name, dims, stat), "return_data": True}]
        self.alarms[key] = aws.cloudwatch.MetricAlarm(
            f"{key}-alarm",
            name=self.context.name(key),
            alarm_description=description,
            comparison_operator="GreaterThanThreshold",
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            metric_queries=metric_queries,
            treat_missing_data=treat_missing_data,
            alarm_actions=[self._args.alarm_topic_arn],
            ok_actions=[self._args.alarm_topic_arn],
            tags=self.tags(f"{key}-alarm"),
            opts=self.child_opts,
        )


def _function_widget(
    title: str, metric: str, stat: str, functions: Mapping[str, str], region: str, y: int
) -> dict[str, Any]:
    """One graph, one line per function, each pinned to its FunctionName (F5)."""
    return {
        "type": "metric",
        "x": 0,
        "y": y,
        "width": 24,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stat": stat,
            "period": PERIOD_SECONDS,
            "metrics": [
                ["AWS/Lambda", metric, "FunctionName", name, {"label": key, "stat": stat}]
                for key, name in functions.items()
            ],
        },
    }


def dashboard_body(
    region: str, functions: Mapping[str, str], queue: str, api: Mapping[str, str]
) -> dict[str, Any]:
    widgets = [
        _function_widget("Invocations", "Invocations", "Sum", functions, region, 0),
        _function_widget("Errors", "Errors", "Sum", functions, region, 6),
        _function_widget("Duration (p99)", "Duration", "p99", functions, region, 12),
        {
            "type": "metric",
            "x": 0,
            "y": 18,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Transaction queue",
                "region": region,
                "stat": "Maximum",
                "period": PERIOD_SECONDS,
                "metrics": [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue],
                    ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue, {"yAxis": "right"}],
                ],
            },
        },
        {
            "type": "metric",
            "x": 12,
            "y": 18,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "API requests and errors",
                "region": region,
                "stat": "Sum",
                "period": PERIOD_SECONDS,
                "metrics": [
                    ["AWS/ApiGateway", name, "ApiName", api["ApiName"], "Stage", api["Stage"]]
                    for name in ("Count", "4XXError", "5XXError")
                ],
            },
        },
    ]
    return {"widgets": widgets}

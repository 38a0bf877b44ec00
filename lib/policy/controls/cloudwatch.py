"""CloudWatch: every alarm notifies a topic of this stack; Logs resource policies let only AWS services
write, from this account, into this stack's log groups. (Log groups are checked where they are used.)"""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, by_arn, policy_statements
from lib.policy.controls.sns import TOPIC

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOG_RESOURCE_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"

CONTROLS = ControlList()
control = CONTROLS.add


@control("CloudWatch.15", "Every alarm notifies an SNS topic of this stack")
def alarms_have_actions(graph: StackGraph) -> Iterator[Finding]:
    topics = by_arn(graph, TOPIC)
    for alarm in graph.of_type(ALARM):
        actions = doc.as_list(alarm.inputs.get("alarmActions"))
        if alarm.inputs.get("actionsEnabled") is False:
            yield alarm, "actionsEnabled is false"
        if not actions:
            yield alarm, "no alarmActions"
        strays = [a for a in actions if a not in topics]
        if strays:
            yield alarm, f"alarmActions {strays} are not topics of this stack"


def _log_group_of(resource_arn: str) -> str:
    """The log group ARN a policy resource names (`<group>`, `<group>:*`, `<group>:log-stream:*`)."""
    for suffix in (":log-stream:*", ":*"):
        if resource_arn.endswith(suffix):
            return resource_arn.removesuffix(suffix)
    return resource_arn


@control(
    "TAP-LOGS-RESOURCE-POLICY",
    "CloudWatch Logs resource policies grant AWS service principals only, pinned by aws:SourceAccount, "
    "on log groups of this stack",
)
def log_resource_policies_scoped(graph: StackGraph) -> Iterator[Finding]:
    # An account-wide policy such as AWSWAF-LOGS on "log-group:aws-waf-logs-*" would let the service
    # write into any matching group, other stacks' included; this stack's policies name its own.
    groups = by_arn(graph, LOG_GROUP)
    for policy in graph.of_type(LOG_RESOURCE_POLICY):
        statements = policy_statements(policy, "policyDocument")
        if statements is None:
            yield policy, "policyDocument is not a readable policy document"
            continue
        for statement in statements:
            if not doc.is_allow(statement):
                continue
            sid = statement.get("Sid", "(no Sid)")
            principal = statement.get("Principal")
            services = doc.as_list(principal.get("Service")) if isinstance(principal, dict) else []
            if not (
                isinstance(principal, dict)
                and set(principal) == {"Service"}
                and services
                and all(str(s).endswith(".amazonaws.com") for s in services)
            ):
                yield policy, f"statement {sid} grants {principal!r}, not only AWS service principals"
            if "aws:sourceaccount" not in doc.condition_keys(statement):
                yield policy, f"statement {sid} has no aws:SourceAccount condition"
            strays = [r for r in doc.resources(statement) if _log_group_of(r) not in groups]
            if strays or not doc.resources(statement):
                yield policy, f"statement {sid} names {strays or 'no resource'}, not log groups of this stack"

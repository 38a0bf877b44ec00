"""CloudWatch: every alarm notifies a topic of this stack. (Log groups are checked where they are used.)"""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, by_arn
from lib.policy.controls.sns import TOPIC

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"

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

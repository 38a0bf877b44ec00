"""DynamoDB: on-demand billing, point-in-time recovery, deletion protection."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy.controls.base import ControlList, Finding

TABLE = "aws:dynamodb/table:Table"

CONTROLS = ControlList()
control = CONTROLS.add


@control("DynamoDB.1", "DynamoDB tables scale with demand: on-demand billing (C4)")
def dynamodb_on_demand(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if table.inputs.get("billingMode") != "PAY_PER_REQUEST":
            yield table, f"billingMode is {table.inputs.get('billingMode')!r}, must be PAY_PER_REQUEST"


@control("DynamoDB.2", "DynamoDB tables have point-in-time recovery enabled")
def dynamodb_pitr(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if (table.inputs.get("pointInTimeRecovery") or {}).get("enabled") is not True:
            yield table, "pointInTimeRecovery.enabled is not true"


@control("DynamoDB.6", "DynamoDB tables have deletion protection enabled")
def dynamodb_deletion_protection(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if table.inputs.get("deletionProtectionEnabled") is not True:
            yield table, "deletionProtectionEnabled is not true"

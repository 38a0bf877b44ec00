"""What every control module shares: the model, how a module declares its controls, common lookups."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lib.graph import RecordedResource, StackGraph
from lib.policy import documents as doc


@dataclass(frozen=True)
class Violation:
    control_id: str
    resource_type: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.control_id}] {self.resource_type} {self.resource_name!r}: {self.message}"


Check = Callable[[StackGraph], list[Violation]]
Finding = tuple[RecordedResource, str]
Find = Callable[[StackGraph], Iterable[Finding]]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    check: Check


class ControlList(list[Control]):
    """One module's controls, in the order it declares them (`lib.policy.controls` collects them).

    A module declares `CONTROLS = ControlList()` and `control = CONTROLS.add`, then `@control(id, title)`.
    """

    def add(self, control_id: str, title: str) -> Callable[[Find], Check]:
        """Register a check; the check yields (resource, why) and gets back Violations with its ID."""

        def register(find: Find) -> Check:
            @functools.wraps(find)
            def check(graph: StackGraph) -> list[Violation]:
                return [Violation(control_id, r.type, r.name, why) for r, why in find(graph)]

            self.append(Control(control_id, title, check))
            return check

        return register


def arn_of(resource: RecordedResource) -> str | None:
    return resource.state.get("arn")


def by_arn(graph: StackGraph, type_token: str) -> dict[str, RecordedResource]:
    return {arn: r for r in graph.of_type(type_token) if (arn := arn_of(r))}


def by_id(graph: StackGraph, type_token: str) -> dict[str, RecordedResource]:
    return {r.id: r for r in graph.of_type(type_token) if r.id}


def policy_statements(resource: RecordedResource, key: str = "policy") -> list[doc.Statement] | None:
    document = doc.parse_document(resource.inputs.get(key))
    return None if document is None else doc.statements(document)

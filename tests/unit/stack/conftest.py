"""Evaluate the real program under Pulumi mocks once per settings and share the graph."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lib.config import StackSettings
from lib.graph import AwsLikeAnswers, RecordedResource, StackGraph, evaluate
from lib.tap_stack import build

ALERT_EMAIL = "fraud-alerts@example.com"


def evaluate_stack(**overrides: Any) -> StackGraph:
    values = {"environment_suffix": "unit", "region": "us-east-2", "alert_email": ALERT_EMAIL, **overrides}
    settings = StackSettings(**values)
    return evaluate(lambda: build(settings).outputs, AwsLikeAnswers(settings.region))


@pytest.fixture(scope="session")
def graph() -> StackGraph:
    """The stack as deployed by default: us-east-2, suffix `unit`."""
    return evaluate_stack()


def policy_of(resource: RecordedResource, key: str = "policy") -> dict:
    return json.loads(resource.inputs[key])


def statements_of(resource: RecordedResource, key: str = "policy") -> list[dict]:
    return policy_of(resource, key)["Statement"]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]

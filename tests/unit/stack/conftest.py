"""Evaluate the real program under Pulumi mocks once per settings and share the graph."""

from __future__ import annotations

import pytest

from lib.graph import StackGraph
from tap_testing.stack import evaluate_stack


@pytest.fixture(scope="session")
def graph() -> StackGraph:
    """The stack as deployed by default: us-east-2, suffix `unit`."""
    return evaluate_stack()

"""The security baseline as code: one check per control, run against the evaluated resource graph.

IDs are AWS Security Hub FSBP control IDs where FSBP has the control, and `TAP-…` for the parts of
the baseline in REQUIREMENTS.md that FSBP does not cover. Where this stack needs more than FSBP's
default (e.g. no internet ingress on any port, CMK rather than any KMS key) the title says so.

Each check reads the resolved inputs recorded by `lib.graph` (camelCase, IDs and ARNs resolved) and
never trusts a resource's name to say what it is: a queue is encrypted because its input says so.
A check that cannot find what it needs (a subnet it cannot see, a policy that is not JSON) reports a
violation, because an unverifiable resource is not a compliant one.

One module per AWS service declares that service's controls (`encryption` holds the one control that
spans services); `MODULES` below fixes the order they run and report in.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from lib.policy.controls import (
    apigateway,
    cloudwatch,
    dynamodb,
    ec2,
    encryption,
    iam,
    kms,
    lambda_,
    secretsmanager,
    sns,
    sqs,
    wafv2,
)
from lib.policy.controls.base import Check, Control, ControlList, Finding, Violation

__all__ = ["CONTROLS", "MODULES", "Check", "Control", "ControlList", "Finding", "Violation", "controls_by_id"]

# The run and report order; explicit, because imports are sorted by the linter, not by intent.
MODULES: tuple[ModuleType, ...] = (
    apigateway,
    lambda_,
    iam,
    kms,
    dynamodb,
    sqs,
    sns,
    encryption,
    ec2,
    secretsmanager,
    wafv2,
    cloudwatch,
)


def _collect(modules: Iterable[ModuleType]) -> list[Control]:
    controls: list[Control] = []
    for module in modules:
        for control in module.CONTROLS:
            if any(c.id == control.id for c in controls):
                raise ValueError(f"control {control.id} is registered twice")
            controls.append(control)
    return controls


CONTROLS: list[Control] = _collect(MODULES)


def controls_by_id() -> dict[str, Control]:
    return {c.id: c for c in CONTROLS}

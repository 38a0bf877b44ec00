"""IAM: a role per function, trusted only by Lambda; no wildcard actions or '*' resources in policies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from lib.graph import RecordedResource, StackGraph
from lib.iam import LAMBDA_VPC_DESCRIBE_ACTIONS
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, by_arn, policy_statements
from lib.policy.controls.lambda_ import FUNCTION

# Actions that have no resource-level permissions, so `"Resource": "*"` is the only form: X-Ray's
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html) and the two
# EC2 Describe actions of Lambda's VPC attachment (see lib/iam.py for the AWS documentation). The
# ENI create/delete/assign actions do have them and are not in this list: on "*" they are findings.
NO_RESOURCE_LEVEL_ACTIONS = frozenset(
    action.lower()
    for action in (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        *LAMBDA_VPC_DESCRIBE_ACTIONS,
    )
)

CONTROLS = ControlList()
control = CONTROLS.add


@control("TAP-IAM-ROLE-PER-FUNCTION", "Each function has its own role, assumable only by Lambda")
def role_per_function(graph: StackGraph) -> Iterator[Finding]:
    roles = by_arn(graph, doc.ROLE)
    users: defaultdict[str, list[RecordedResource]] = defaultdict(list)
    for function in graph.of_type(FUNCTION):
        users[str(function.inputs.get("role"))].append(function)
    for role_arn, functions in users.items():
        for function in functions:
            if len(functions) > 1:
                others = sorted(f.name for f in functions if f is not function)
                yield function, f"shares role {role_arn} with {others}"
            role = roles.get(role_arn)
            if role is None:
                yield function, f"role {role_arn} is not defined in this stack"
                continue
            trust = policy_statements(role, "assumeRolePolicy")
            trusted = {p for s in trust or [] if doc.is_allow(s) for p in doc.principals(s)}
            if trusted != {"lambda.amazonaws.com"}:
                yield function, f"its role trusts {sorted(trusted)}, not only lambda.amazonaws.com"


def _allow_statements(graph: StackGraph) -> Iterator[tuple[doc.PolicyDocument, doc.Statement]]:
    """Every Allow statement of every identity policy, with the policy it is in."""
    for policy in doc.identity_policies(graph):
        for statement in doc.statements(policy.document):
            if doc.is_allow(statement):
                yield policy, statement


@control("IAM.1", "No IAM policy allows all actions ('*', or NotAction in an Allow)")
def iam_no_full_admin(graph: StackGraph) -> Iterator[Finding]:
    # Stricter than FSBP (which needs Resource "*" too): C2 allows no "*" action at all.
    for policy in doc.identity_policies(graph):
        if policy.document is None:
            yield policy.resource, f"{policy.location} is not a readable policy document"
        for statement in doc.statements(policy.document):
            if not doc.is_allow(statement):
                continue
            if "NotAction" in statement:
                yield policy.resource, f"{policy.location} allows everything except {statement['NotAction']}"
            if any(a in {"*", "*:*"} for a in doc.actions(statement)):
                yield policy.resource, f"{policy.location} allows Action '*'"


@control("IAM.21", "No IAM policy allows a service-wide wildcard such as 'sqs:*'")
def iam_no_service_wildcards(graph: StackGraph) -> Iterator[Finding]:
    # FSBP checks customer-managed policies only; inline role policies carry the same risk here.
    for policy, statement in _allow_statements(graph):
        wildcards = [a for a in doc.actions(statement) if a.split(":", 1)[-1] == "*" and ":" in a]
        if wildcards:
            yield policy.resource, f"{policy.location} allows {wildcards}"


@control("TAP-IAM-RESOURCES", "No '*' resource except for actions without resource-level permissions")
def iam_named_resources(graph: StackGraph) -> Iterator[Finding]:
    for policy, statement in _allow_statements(graph):
        sid = statement.get("Sid", "(no Sid)")
        if "NotResource" in statement:
            yield policy.resource, f"{policy.location} statement {sid} uses NotResource in an Allow"
            continue
        if "*" not in doc.resources(statement):
            continue
        broad = [a for a in doc.actions(statement) if a.lower() not in NO_RESOURCE_LEVEL_ACTIONS]
        if broad or "NotAction" in statement:
            yield policy.resource, f"{policy.location} statement {sid} allows {broad} on Resource '*'"

"""Reading IAM and resource policy documents the way AWS evaluates them.

The graph holds policies as JSON strings (or, from hand-built graphs, as dicts). AWS accepts a single
value wherever a list is allowed (`Action`, `Resource`, `Statement`, principals), so every helper
here normalises to lists first; a check that forgot that would pass a policy AWS treats as broad.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from lib.graph import RecordedResource, StackGraph

MANAGED_POLICY = "aws:iam/policy:Policy"
INLINE_POLICY_TYPES = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
ROLE = "aws:iam/role:Role"

Statement = dict[str, Any]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_document(value: Any) -> dict[str, Any] | None:
    """The document as a dict, or None when it is missing or not JSON (a check cannot vouch for it)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def statements(document: dict[str, Any] | None) -> list[Statement]:
    if document is None:
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


@dataclass(frozen=True)
class PolicyDocument:
    """One identity policy in the graph: where it lives and what it says (None when unreadable)."""

    resource: RecordedResource
    location: str
    document: dict[str, Any] | None
    managed: bool


def identity_policies(graph: StackGraph) -> Iterator[PolicyDocument]:
    """Managed and inline identity policies, including inline policies declared on a Role itself."""
    for resource in graph.of_type(MANAGED_POLICY):
        yield PolicyDocument(resource, "policy", parse_document(resource.inputs.get("policy")), True)
    for type_token in INLINE_POLICY_TYPES:
        for resource in graph.of_type(type_token):
            yield PolicyDocument(resource, "policy", parse_document(resource.inputs.get("policy")), False)
    for role in graph.of_type(ROLE):
        for index, inline in enumerate(as_list(role.inputs.get("inlinePolicies"))):
            if isinstance(inline, dict) and inline.get("policy"):
                location = f"inlinePolicies[{index}]"
                yield PolicyDocument(role, location, parse_document(inline["policy"]), False)


def is_allow(statement: Statement) -> bool:
    return statement.get("Effect") == "Allow"


def matches(pattern: str, value: str) -> bool:
    """IAM wildcard match; action names are case-insensitive in IAM, ARNs are not."""
    if ":" in pattern and pattern.split(":", 1)[0].startswith("arn"):
        return fnmatchcase(value, pattern)
    return fnmatchcase(value.lower(), pattern.lower())


def grants_action(statement: Statement, action: str) -> bool:
    """Whether the statement's Action (or NotAction) covers `action`."""
    if "NotAction" in statement:
        return not any(matches(p, action) for p in as_list(statement["NotAction"]))
    return any(matches(p, action) for p in as_list(statement.get("Action")))


def actions(statement: Statement) -> list[str]:
    return [a for a in as_list(statement.get("Action")) if isinstance(a, str)]


def resources(statement: Statement) -> list[str]:
    return [r for r in as_list(statement.get("Resource")) if isinstance(r, str)]


def principals(statement: Statement) -> list[str]:
    """Every principal value named, whatever its kind (`"*"`, AWS, Service, Federated)."""
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        return [p for values in principal.values() for p in as_list(values) if isinstance(p, str)]
    return [p for p in as_list(principal) if isinstance(p, str)]


def has_wildcard_principal(statement: Statement) -> bool:
    return "NotPrincipal" in statement or any(p == "*" for p in principals(statement))


# Condition keys that pin a wildcard principal to this account, organisation or a calling resource.
# With one of them a `"*"` principal is not public (it is how AWS documents service access).
RESTRICTING_CONDITION_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOwner",
        "aws:PrincipalAccount",
        "aws:PrincipalOrgID",
        "aws:PrincipalArn",
        "aws:SourceVpc",
        "aws:SourceVpce",
    )
)


def condition_keys(statement: Statement) -> set[str]:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return set()
    return {key.lower() for block in condition.values() if isinstance(block, dict) for key in block}


def is_public_allow(statement: Statement) -> bool:
    """An Allow any AWS principal can use: wildcard principal and no condition naming who."""
    return (
        is_allow(statement)
        and has_wildcard_principal(statement)
        and not (condition_keys(statement) & RESTRICTING_CONDITION_KEYS)
    )


def denies_insecure_transport(statement: Statement, action: str, resource_arn: str | None) -> bool:
    """A Deny for everyone when `aws:SecureTransport` is false, covering `action` on the resource."""
    if statement.get("Effect") != "Deny" or not has_wildcard_principal(statement):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    secure_transport_false = any(
        operator.lower() in {"bool", "boolifexists"}
        and isinstance(block, dict)
        and any(
            key.lower() == "aws:securetransport" and str(value).lower() == "false"
            for key, values in block.items()
            for value in as_list(values)
        )
        for operator, block in condition.items()
    )
    if not secure_transport_false or not grants_action(statement, action):
        return False
    return resource_arn is not None and any(matches(p, resource_arn) for p in resources(statement))

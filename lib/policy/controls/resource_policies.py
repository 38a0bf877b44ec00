"""Checks shared by services with resource policies (SQS, SNS): KMS at rest, not public, TLS only.

`policies(graph, resource)` returns the policy resources attached to one queue or topic; a policy
inline on the resource itself counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from lib.graph import RecordedResource, StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import Finding, arn_of, policy_statements

AttachedPolicies = Callable[[StackGraph, RecordedResource], list[RecordedResource]]


def _resource_policy_statements(
    owner: RecordedResource, attached: list[RecordedResource]
) -> Iterator[tuple[RecordedResource, list[doc.Statement] | None]]:
    """The owner's inline `policy` (if any) and each attached policy resource, with statements."""
    if owner.inputs.get("policy"):
        yield owner, policy_statements(owner)
    for policy in attached:
        yield policy, policy_statements(policy)


def unencrypted(graph: StackGraph, type_token: str) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        if not resource.inputs.get("kmsMasterKeyId"):
            yield resource, "no kmsMasterKeyId"


def public_statements(graph: StackGraph, type_token: str, policies: AttachedPolicies) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        for source, statements in _resource_policy_statements(resource, policies(graph, resource)):
            for statement in statements or []:
                if doc.is_public_allow(statement):
                    yield source, f"statement {statement.get('Sid', '(no Sid)')} allows any principal"


def without_tls_deny(
    graph: StackGraph, type_token: str, policies: AttachedPolicies, action: str
) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        denied = any(
            doc.denies_insecure_transport(s, action, arn_of(resource))
            for _, statements in _resource_policy_statements(resource, policies(graph, resource))
            for s in statements or []
        )
        if not denied:
            yield resource, f"no policy denies {action} on this resource when aws:SecureTransport is false"

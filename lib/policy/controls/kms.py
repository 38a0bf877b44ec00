"""KMS: no identity policy decrypts with every key; keys rotate and have an explicit, closed key policy."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, arn_of, policy_statements

KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"

CONTROLS = ControlList()
control = CONTROLS.add


def stack_key_references(graph: StackGraph) -> set[str]:
    """Every way an input can name one of the stack's own CMKs: id, key id, ARN, alias name/ARN."""
    refs: set[str] = set()
    for key in graph.of_type(KMS_KEY):
        refs |= {v for v in (key.id, key.state.get("keyId"), arn_of(key)) if v}
    for alias in graph.of_type(KMS_ALIAS):
        if alias.inputs.get("targetKeyId") in refs:
            refs |= {v for v in (alias.inputs.get("name"), arn_of(alias)) if v}
    return refs


def _decrypts_all_keys(statement: doc.Statement) -> bool:
    if not doc.is_allow(statement):
        return False
    if not any(doc.grants_action(statement, a) for a in ("kms:Decrypt", "kms:ReEncryptFrom")):
        return False
    if "NotResource" in statement:
        return True
    return any(
        r == "*" or (":kms:" in r and r.rsplit(":", 1)[-1] in {"*", "key/*"})
        for r in doc.resources(statement)
    )


def _policies_decrypting_all_keys(graph: StackGraph, *, managed: bool) -> Iterator[Finding]:
    for policy in doc.identity_policies(graph):
        if policy.managed == managed and any(_decrypts_all_keys(s) for s in doc.statements(policy.document)):
            yield policy.resource, f"{policy.location} allows kms:Decrypt/ReEncryptFrom on all keys"


@control("KMS.1", "Customer-managed IAM policies do not allow kms:Decrypt on all keys")
def kms_decrypt_managed(graph: StackGraph) -> Iterator[Finding]:
    return _policies_decrypting_all_keys(graph, managed=True)


@control("KMS.2", "Inline IAM policies do not allow kms:Decrypt on all keys")
def kms_decrypt_inline(graph: StackGraph) -> Iterator[Finding]:
    return _policies_decrypting_all_keys(graph, managed=False)


@control("KMS.4", "KMS key rotation is enabled")
def kms_rotation(graph: StackGraph) -> Iterator[Finding]:
    for key in graph.of_type(KMS_KEY):
        spec = key.inputs.get("customerMasterKeySpec") or key.inputs.get("keySpec") or "SYMMETRIC_DEFAULT"
        if spec == "SYMMETRIC_DEFAULT" and key.inputs.get("enableKeyRotation") is not True:
            yield key, "enableKeyRotation is not true"


@control("TAP-KMS-POLICY", "Every KMS key has an explicit key policy with no wildcard principal")
def kms_key_policy(graph: StackGraph) -> Iterator[Finding]:
    for key in graph.of_type(KMS_KEY):
        statements = policy_statements(key)
        if statements is None:
            yield key, "no explicit key policy (the default grants the whole account kms:*)"
            continue
        for statement in statements:
            if doc.is_allow(statement) and doc.has_wildcard_principal(statement):
                yield key, f"statement {statement.get('Sid', '(no Sid)')} allows a wildcard principal"

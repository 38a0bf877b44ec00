"""Across services: everything that holds data is encrypted with a customer-managed key of this stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lib.graph import StackGraph
from lib.policy.controls.base import ControlList, Finding
from lib.policy.controls.cloudwatch import LOG_GROUP
from lib.policy.controls.dynamodb import TABLE
from lib.policy.controls.kms import stack_key_references
from lib.policy.controls.lambda_ import FUNCTION
from lib.policy.controls.secretsmanager import SECRETS_MANAGER_SECRET
from lib.policy.controls.sns import TOPIC
from lib.policy.controls.sqs import QUEUE

# Each type with the input that names its key, and that input's name for the message.
_CMK_INPUTS: tuple[tuple[str, Callable[[dict[str, Any]], Any], str], ...] = (
    (
        TABLE,
        lambda i: (i.get("serverSideEncryption") or {}).get("kmsKeyArn"),
        "serverSideEncryption.kmsKeyArn",
    ),
    (QUEUE, lambda i: i.get("kmsMasterKeyId"), "kmsMasterKeyId"),
    (TOPIC, lambda i: i.get("kmsMasterKeyId"), "kmsMasterKeyId"),
    (LOG_GROUP, lambda i: i.get("kmsKeyId"), "kmsKeyId"),
    (SECRETS_MANAGER_SECRET, lambda i: i.get("kmsKeyId"), "kmsKeyId"),
    (FUNCTION, lambda i: i.get("kmsKeyArn"), "kmsKeyArn"),
)

CONTROLS = ControlList()
control = CONTROLS.add


@control("TAP-ENCRYPTION", "Tables, queues, topics, log groups, secrets and function env use the stack's CMK")
def encrypted_with_stack_key(graph: StackGraph) -> Iterator[Finding]:
    # AWS-owned and AWS-managed keys (alias/aws/...) cannot be scoped or audited per key policy (C3).
    keys = stack_key_references(graph)
    for type_token, read, field in _CMK_INPUTS:
        for resource in graph.of_type(type_token):
            if type_token == FUNCTION and not (resource.inputs.get("environment") or {}).get("variables"):
                continue  # no environment variables to encrypt
            if (
                type_token == TABLE
                and (resource.inputs.get("serverSideEncryption") or {}).get("enabled") is not True
            ):
                yield resource, "serverSideEncryption.enabled is not true (AWS-owned key)"
                continue
            value = read(resource.inputs)
            if value not in keys:
                yield resource, f"{field} is {value!r}, not a customer-managed key of this stack"

"""SQS: queues encrypted with KMS, queue policies not public and denying requests without TLS."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import RecordedResource, StackGraph
from lib.policy.controls.base import ControlList, Finding
from lib.policy.controls.resource_policies import public_statements, unencrypted, without_tls_deny

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"

CONTROLS = ControlList()
control = CONTROLS.add


def _queue_policies(graph: StackGraph, queue: RecordedResource) -> list[RecordedResource]:
    url = queue.state.get("url") or queue.id
    return [p for p in graph.of_type(QUEUE_POLICY) if p.inputs.get("queueUrl") == url]


@control("SQS.1", "SQS queues are encrypted at rest with a KMS key")
def sqs_encrypted(graph: StackGraph) -> Iterator[Finding]:
    # Stricter than FSBP (which accepts SSE-SQS): C3 asks for KMS, TAP-ENCRYPTION for our CMK.
    return unencrypted(graph, QUEUE)


@control("SQS.3", "SQS queue policies do not allow public access")
def sqs_not_public(graph: StackGraph) -> Iterator[Finding]:
    return public_statements(graph, QUEUE, _queue_policies)


@control("TAP-SQS-TLS", "Every queue policy denies requests without TLS (aws:SecureTransport)")
def sqs_tls_only(graph: StackGraph) -> Iterator[Finding]:
    return without_tls_deny(graph, QUEUE, _queue_policies, "sqs:*")

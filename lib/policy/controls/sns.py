"""SNS: topics encrypted with KMS, topic policies not public and denying publishing without TLS."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import RecordedResource, StackGraph
from lib.policy.controls.base import ControlList, Finding, arn_of
from lib.policy.controls.resource_policies import public_statements, unencrypted, without_tls_deny

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"

CONTROLS = ControlList()
control = CONTROLS.add


def _topic_policies(graph: StackGraph, topic: RecordedResource) -> list[RecordedResource]:
    return [p for p in graph.of_type(TOPIC_POLICY) if p.inputs.get("arn") == arn_of(topic)]


@control("SNS.1", "SNS topics are encrypted at rest with a KMS key")
def sns_encrypted(graph: StackGraph) -> Iterator[Finding]:
    return unencrypted(graph, TOPIC)


@control("SNS.4", "SNS topic policies do not allow public access")
def sns_not_public(graph: StackGraph) -> Iterator[Finding]:
    return public_statements(graph, TOPIC, _topic_policies)


@control("TAP-SNS-TLS", "Every topic policy denies publishing without TLS (aws:SecureTransport)")
def sns_tls_only(graph: StackGraph) -> Iterator[Finding]:
    # sns:Publish is the action AWS's own encryption-in-transit example denies; the stack only publishes.
    return without_tls_deny(graph, TOPIC, _topic_policies, "sns:Publish")

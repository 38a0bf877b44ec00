"""Secrets Manager: secrets rotate automatically."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy.controls.base import ControlList, Finding, arn_of

SECRETS_MANAGER_SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token, not a secret
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"  # noqa: S105 - a type token

CONTROLS = ControlList()
control = CONTROLS.add


@control("SecretsManager.1", "Secrets Manager secrets have automatic rotation enabled")
def secret_rotation(graph: StackGraph) -> Iterator[Finding]:
    rotated = {r.inputs.get("secretId") for r in graph.of_type(SECRET_ROTATION)}
    for secret in graph.of_type(SECRETS_MANAGER_SECRET):
        if not ({secret.id, arn_of(secret)} & rotated):
            yield secret, "no automatic rotation configured"

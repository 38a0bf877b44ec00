"""moto's ``RotateSecret`` as AWS starts a rotation, leaving the rotation function's steps to the caller.

Why this exists: moto 5.2.5's ``rotate_secret`` either invokes the rotation function through moto's
own Lambda (which needs Docker, and knows nothing of the functions the local pipeline runs) or, with
no function, labels a new *empty* version ``AWSCURRENT``, which would leave the card-fingerprint
secret without a value. It also refuses a new rotation exactly when the last one succeeded
(``AWSPENDING`` and ``AWSCURRENT`` on one version, which AWS documents as the finished state).

With this correction, a secret with a rotation function (given now or configured before) rotates as
AWS begins it: the rotation rules are recorded and rotation enabled, a rotation still in progress
(``AWSPENDING`` on a version that is not ``AWSCURRENT``) is refused, and, to rotate immediately, the
new version id is labelled ``AWSPENDING`` with no value and returned. Invoking the function's
``createSecret``, ``setSecret``, ``testSecret`` and ``finishSecret`` is left to the caller
(``python -m tap_local rotate-key``, and the tests), which run the same handler as Lambda would.
A secret without a rotation function keeps moto's own behaviour.

Upstream note: "rotate_secret with RotationLambdaARN should create the AWSPENDING version and let
the function label AWSCURRENT; the in-progress check should allow AWSPENDING on the AWSCURRENT
version (the documented finished state)."
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from moto.secretsmanager.exceptions import (
    InvalidParameterException,
    InvalidRequestException,
    SecretNotFoundException,
)
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

from tap_local.moto_fixes.patching import Patch

PENDING, CURRENT = "AWSPENDING", "AWSCURRENT"


def _rotate_secret(
    self: SecretsManagerBackend,
    secret_id: str,
    client_request_token: str | None = None,
    rotation_lambda_arn: str | None = None,
    rotation_rules: dict[str, Any] | None = None,
    rotate_immediately: bool = True,
) -> str:
    if not self._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    if not isinstance(secret, FakeSecret):  # a replica: moto's own refusal
        return _original(
            self, secret_id, client_request_token, rotation_lambda_arn, rotation_rules, rotate_immediately
        )
    function_arn = rotation_lambda_arn or getattr(secret, "rotation_lambda_arn", "")
    if not function_arn or not secret.versions:
        return _original(
            self, secret_id, client_request_token, rotation_lambda_arn, rotation_rules, rotate_immediately
        )
    if secret.is_deleted():
        raise InvalidRequestException("You can't rotate a secret that's marked for deletion.")
    for version in secret.versions.values():
        if PENDING in version["version_stages"] and CURRENT not in version["version_stages"]:
            raise InvalidRequestException(
                "A previous rotation isn't complete. That rotation will be reattempted."
            )
    days = (rotation_rules or {}).get("AutomaticallyAfterDays")
    if days is not None:
        if not 1 <= int(days) <= 1000:
            raise InvalidParameterException("RotationRules.AutomaticallyAfterDays must be within 1-1000.")
        secret.auto_rotate_after_days = int(days)
        secret.next_rotation_date = int(time.time()) + int(days) * 86400
    secret.rotation_lambda_arn = function_arn
    secret.rotation_enabled = True
    secret.rotation_requested = True  # moto describes the rotation only once this is set
    if not rotate_immediately:
        return secret.to_short_dict(include_version_id=False)
    token = client_request_token or str(uuid.uuid4())
    if client_request_token:
        self._client_request_token_validator(client_request_token)
    secret.remove_version_stages_from_old_versions([PENDING])
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": [PENDING],
    }
    secret.last_rotation_date = int(time.time())
    return secret.to_short_dict(version_id=token)


def _original(self: SecretsManagerBackend, *args: Any) -> str:
    result: str = _PATCH.original(self, *args)
    return result


_PATCH = Patch(SecretsManagerBackend, "rotate_secret", _rotate_secret)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    _PATCH.uninstall()

"""The card-fingerprint key ring in Secrets Manager: read by the validator, rotated by the rotation function.

The keys never appear in code, environment variables or logs: the environment only names the
secret (``CARD_FINGERPRINT_SECRET_ARN``). Powertools caches the value in memory for
``KEY_CACHE_SECONDS`` so the validator makes one Secrets Manager call per execution environment
every few minutes, not one per request, and still picks up a rotated ring. The whole ring is one
secret value (see :mod:`tap_contract.card_keys`), so that one cached ``GetSecretValue`` of
``AWSCURRENT`` gives every key: Powertools' cache key ignores the version stage, so reading
``AWSPREVIOUS`` as well would collide with it in the cache.

:class:`SecretVersions` is the rotation function's access to the same secret (describe, read a
version, write ``AWSPENDING``, move ``AWSCURRENT``), with plain boto3 and no cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from tap_contract.card_keys import KEY_CACHE_SECONDS
from tap_pipeline.card import KeyRing, KeyRingError
from tap_pipeline.data import clients
from tap_pipeline.settings import ConfigurationError, validator_settings

__all__ = ["KEY_CACHE_SECONDS", "SecretVersions", "clear_cache", "fingerprint_key", "key_ring"]


@cache
def _provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=clients.secretsmanager())


def key_ring() -> KeyRing:
    """Every card-fingerprint key in use (cached by Powertools for ``KEY_CACHE_SECONDS``)."""
    arn = validator_settings().card_fingerprint_secret_arn
    # AWSCURRENT named explicitly (AWS's default anyway): moto does not move its default version
    # when a rotation moves the label, and the rotation function reads stages explicitly too.
    raw = _provider().get(arn, max_age=KEY_CACHE_SECONDS, VersionStage="AWSCURRENT")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return KeyRing.parse(text)
    except KeyRingError as exc:
        raise ConfigurationError(f"card fingerprint secret: {exc}") from None


def fingerprint_key(at: datetime | None = None) -> bytes:
    """The HMAC key primary at ``at`` (default now)."""
    return key_ring().primary_at(at or datetime.now(UTC)).key


def clear_cache() -> None:
    """Forget the provider and its cached secret (tests; a new container)."""
    _provider.cache_clear()


@dataclass(frozen=True)
class SecretVersion:
    version_id: str
    stages: tuple[str, ...]
    text: str


class SecretVersions:
    """The rotation function's calls on the one secret it rotates (no caching: it must see each
    step's own writes)."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id

    def describe(self) -> dict[str, Any]:
        description: dict[str, Any] = clients.secretsmanager().describe_secret(SecretId=self.secret_id)
        return description

    def get(self, stage: str, version_id: str | None = None) -> SecretVersion | None:
        """The version labelled ``stage`` (and with id ``version_id``, if given); None when there is
        none or it holds no value yet (the token Secrets Manager labels AWSPENDING before createSecret)."""
        client = clients.secretsmanager()
        kwargs: dict[str, Any] = {"SecretId": self.secret_id, "VersionStage": stage}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = client.get_secret_value(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return None
        return SecretVersion(
            version_id=response["VersionId"],
            stages=tuple(response.get("VersionStages") or ()),
            text=str(response.get("SecretString") or ""),
        )

    def put_pending(self, token: str, text: str) -> None:
        """Store ``text`` as version ``token`` labelled AWSPENDING (same token and text: no-op)."""
        clients.secretsmanager().put_secret_value(
            SecretId=self.secret_id, ClientRequestToken=token, SecretString=text, VersionStages=["AWSPENDING"]
        )

    def make_current(self, token: str, current_version_id: str) -> None:
        """Move AWSCURRENT to ``token`` (Secrets Manager labels the old one AWSPREVIOUS)."""
        clients.secretsmanager().update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current_version_id,
        )

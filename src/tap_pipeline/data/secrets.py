"""The card-fingerprint key, fetched from Secrets Manager through Powertools parameters.

The key never appears in code, environment variables or logs: the environment only names the
secret (``CARD_FINGERPRINT_SECRET_ARN``). Powertools caches the value in memory for
``KEY_CACHE_SECONDS`` so the validator makes one Secrets Manager call per execution environment
every few minutes, not one per request, and still picks up a rotated value.

The secret string is either the key itself or a JSON object ``{"key": "..."}``; at least 32 bytes.
"""

from __future__ import annotations

import json
from functools import cache

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from tap_pipeline.card import MIN_KEY_BYTES
from tap_pipeline.data import clients
from tap_pipeline.settings import ConfigurationError, validator_settings

KEY_CACHE_SECONDS = 300


@cache
def _provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=clients.secretsmanager())


def fingerprint_key() -> bytes:
    """The HMAC key for card fingerprints (cached by Powertools for ``KEY_CACHE_SECONDS``)."""
    arn = validator_settings().card_fingerprint_secret_arn
    raw = _provider().get(arn, max_age=KEY_CACHE_SECONDS)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if text.lstrip().startswith("{"):
        try:
            text = str(json.loads(text)["key"])
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError("card fingerprint secret is JSON without a 'key' field") from None
    key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"card fingerprint secret must hold at least {MIN_KEY_BYTES} bytes")
    return key


def clear_cache() -> None:
    """Forget the provider and its cached secret (tests)."""
    _provider.cache_clear()

"""Powertools idempotency plumbing shared by the side effects that use it.

Used for the side effects that have no natural conditional write of their own: the fraud-alert
publish (one alert per flagged transaction) and the ops notice of the failed handler (one per
FAILED record), both keyed by ``transaction_id``. The validator does *not*
use it: its conditional write of the RECEIVED record already is the API's idempotency record (see
:mod:`tap_pipeline.intake`), which saves two DynamoDB requests per transaction.

The persistence layer (:mod:`tap_pipeline.data.idempotency_store`) is built lazily because it
creates a boto3 client and needs the table name from the environment; the wrapped functions are
built once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from tap_pipeline.data.idempotency_store import persistence_layer

# Longer than a message can stay replayable: a dead letter can sit in the transaction DLQ and then
# the parking DLQ (14 days' retention each) before an operator redrives it, and a redriven message
# starts afresh. Within the window a replay finds the record of the first, successful side effect;
# after it, an alert or notice would be sent again.
SIDE_EFFECT_WINDOW_SECONDS = 30 * 24 * 3600


# Every side effect is keyed by the transaction record's key, whichever function performs it.
KEY_PATH = "transaction_id"

# Created at import (it needs no environment) so every handler can register its Lambda context
# *before* the first idempotent call: with the context, Powertools gives in-progress records an
# expiry at the end of the invocation, so a crash mid-publish blocks the retry only until then
# instead of for the whole idempotency window. One config for all: a Powertools persistence layer
# takes its key path from the first config it is used with.
_config = IdempotencyConfig(
    event_key_jmespath=KEY_PATH,
    raise_on_no_idempotency_key=True,
    expires_after_seconds=SIDE_EFFECT_WINDOW_SECONDS,
)


def register_lambda_context(context: Any) -> None:
    """Let Powertools size in-progress locks to the remaining invocation time."""
    _config.register_lambda_context(context)


def make_idempotent(
    function: Callable[..., Any], *, data_keyword: str, side_effect: str
) -> Callable[..., Any]:
    """Wrap ``function`` so that calls with the same ``transaction_id`` in ``data_keyword`` run once.

    ``side_effect`` is the key prefix. Powertools' default prefix is the Lambda function's name plus
    the Python function's, so the fraud detector and the failed handler would each send "their own"
    alert for one transaction; a fixed prefix makes the guarantee hold across functions and renames.
    """
    wrapped: Callable[..., Any] = idempotent_function(
        function,
        data_keyword_argument=data_keyword,
        persistence_store=persistence_layer(),
        config=_config,
        key_prefix=side_effect,
    )
    return wrapped


def clear_cache() -> None:
    persistence_layer.cache_clear()

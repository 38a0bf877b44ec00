"""AWS SDK clients, created once per process and reused across invocations.

Creating a boto3 client costs tens of milliseconds and a credentials lookup, so every client is
built lazily on first use (keeps cold start light for code paths that never need it) and then
cached for the life of the execution environment. The DynamoDB client is the *resource's* client,
which (de)serialises plain Python values (``str``, ``Decimal``, ``list``…) for every operation,
including ``BatchGetItem`` and ``TransactWriteItems``.

Retries use the SDK's ``standard`` mode with short timeouts: a call that hangs must fail well
inside the 60-second function timeout so the message can be reported as a batch item failure.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=10,
)


@cache
def dynamodb_resource() -> Any:
    return boto3.resource("dynamodb", config=_CONFIG)


def dynamodb() -> Any:
    """DynamoDB client that accepts and returns native Python types."""
    return dynamodb_resource().meta.client


@cache
def sqs() -> Any:
    return boto3.client("sqs", config=_CONFIG)


@cache
def sns() -> Any:
    return boto3.client("sns", config=_CONFIG)


@cache
def secretsmanager() -> Any:
    return boto3.client("secretsmanager", config=_CONFIG)


# The idempotency layer marks a side effect COMPLETED right after it happened (an alert published):
# if that write fails, the record stays INPROGRESS and a retry repeats the side effect. More
# attempts make that window far less likely under throttling (7 attempts in all instead of 4:
# 0.05^7 instead of 0.05^4 at a 5 % throttle rate); the timeouts still bound the call well inside
# the function timeout.
_IDEMPOTENCY_CONFIG = _CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 6}))


@cache
def raw_dynamodb() -> Any:
    """Plain DynamoDB client (AttributeValue wire format), for Powertools' idempotency layer."""
    return boto3.client("dynamodb", config=_IDEMPOTENCY_CONFIG)


def clear_cache() -> None:
    """Drop cached clients (tests start a fresh moto backend per case)."""
    for factory in (dynamodb_resource, sqs, sns, secretsmanager, raw_dynamodb):
        factory.cache_clear()

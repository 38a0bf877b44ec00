"""Rotating the card-fingerprint key of the function-test backend, as Secrets Manager would.

:func:`enable_rotation` configures rotation on the backend's secret (moto's ``RotateSecret`` as
corrected by :mod:`tap_local.moto_rotation`, so it labels a pending version and invokes nothing),
and :func:`rotate_key` starts a rotation and runs the real rotation handler's four steps
in-process, through the same driver ``python -m tap_local rotate-key`` uses. Call inside
``moto.mock_aws()`` with a backend from :func:`tap_testing.backend.build_pipeline`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lib.graph import DEFAULT_ACCOUNT_ID
from tap_local import moto_rotation
from tap_local.rotation import RotationReport, rotate
from tap_testing.backend import REGION, SUFFIX, FakeContext, Pipeline, moto_client

ROTATION_FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:tap-key-rotation-{SUFFIX}"


@contextmanager
def rotation_enabled(pipe: Pipeline, days: int = 90) -> Iterator[None]:
    """The backend's secret with automatic rotation configured (no rotation started)."""
    moto_rotation.install()
    try:
        moto_client("secretsmanager").rotate_secret(
            SecretId=pipe.secret_arn,
            RotationLambdaARN=ROTATION_FUNCTION_ARN,
            RotationRules={"AutomaticallyAfterDays": days},
            RotateImmediately=False,
        )
        yield
    finally:
        moto_rotation.uninstall()


def invoke_rotation_step(event: dict[str, str]) -> dict[str, Any]:
    from tap_pipeline.handlers import key_rotation

    result: dict[str, Any] = key_rotation.handler(event, FakeContext("key-rotation"))
    return result


def rotate_key(pipe: Pipeline) -> RotationReport:
    """One whole rotation of the backend's card-fingerprint key (needs :func:`rotation_enabled`)."""
    return rotate(moto_client("secretsmanager"), pipe.secret_arn, invoke_rotation_step)


def start_rotation(pipe: Pipeline) -> str:
    """Only Secrets Manager's part: a new version labelled AWSPENDING; returns its token."""
    return str(moto_client("secretsmanager").rotate_secret(SecretId=pipe.secret_arn)["VersionId"])

"""tap_local.moto_rotation: moto's RotateSecret starts a rotation as AWS does, and invokes nothing."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tap_local import moto_rotation

FUNCTION = "arn:aws:lambda:us-east-2:123456789012:function:rotator"


@pytest.fixture
def secrets_client():
    with mock_aws():
        moto_rotation.install()
        try:
            yield boto3.client(
                "secretsmanager",
                region_name="us-east-2",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        finally:
            moto_rotation.uninstall()


def stages(client, arn):
    return client.describe_secret(SecretId=arn)["VersionIdsToStages"]


def test_configuring_rotation_enables_it_without_touching_the_value(secrets_client):
    arn = secrets_client.create_secret(Name="k", SecretString="v" * 40)["ARN"]
    before = stages(secrets_client, arn)
    secrets_client.rotate_secret(
        SecretId=arn,
        RotationLambdaARN=FUNCTION,
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    described = secrets_client.describe_secret(SecretId=arn)
    assert described["RotationEnabled"] is True
    assert described["RotationLambdaARN"] == FUNCTION
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert stages(secrets_client, arn) == before


def test_a_rotation_labels_a_new_empty_version_pending_and_leaves_current_alone(secrets_client):
    arn = secrets_client.create_secret(Name="k", SecretString="v" * 40)["ARN"]
    secrets_client.rotate_secret(SecretId=arn, RotationLambdaARN=FUNCTION, RotateImmediately=False)
    token = secrets_client.rotate_secret(SecretId=arn)["VersionId"]
    assert stages(secrets_client, arn)[token] == ["AWSPENDING"]
    assert (
        secrets_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"] == "v" * 40
    )
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        secrets_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    # Still pending and not current: AWS refuses a new rotation until it completes.
    with pytest.raises(ClientError, match="previous rotation isn't complete"):
        secrets_client.rotate_secret(SecretId=arn)
    # What finishSecret does; then, as AWS documents, the next rotation may start.
    secrets_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString="w" * 40, VersionStages=["AWSPENDING"]
    )
    current = next(v for v, labels in stages(secrets_client, arn).items() if "AWSCURRENT" in labels)
    secrets_client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    assert secrets_client.rotate_secret(SecretId=arn)["VersionId"] != token


def test_without_a_rotation_function_moto_keeps_its_own_behaviour(secrets_client):
    arn = secrets_client.create_secret(Name="k", SecretString="v" * 40)["ARN"]
    token = secrets_client.rotate_secret(SecretId=arn, RotateImmediately=False)["VersionId"]
    assert "AWSCURRENT" in stages(secrets_client, arn)[token]  # moto as released: no function, no steps


def test_install_is_idempotent_and_uninstall_restores_moto():
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.rotate_secret
    moto_rotation.install()
    moto_rotation.install()
    assert SecretsManagerBackend.rotate_secret is not original
    moto_rotation.uninstall()
    assert SecretsManagerBackend.rotate_secret is original

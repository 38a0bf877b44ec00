"""The card-fingerprint key's rotation function: Secrets Manager's four steps, their checks and
idempotency, what testSecret catches, pruning, metrics, and that no key ever reaches a log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tap_pipeline import card, key_rotation, settings
from tap_pipeline.card import KeyRing
from tap_pipeline.data.secrets import SecretVersions
from tap_pipeline.key_rotation import KEY_RETENTION, RotationRefused, RotationTestFailed
from tap_testing.backend import moto_client
from tap_testing.rotation import invoke_rotation_step, rotate_key, rotation_enabled, start_rotation
from tests.unit.functions.conftest import emitted_metrics

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]


@pytest.fixture
def rotating(pipeline):
    with rotation_enabled(pipeline):
        yield pipeline


def current_ring(pipe) -> KeyRing:
    text = moto_client("secretsmanager").get_secret_value(SecretId=pipe.secret_arn, VersionStage="AWSCURRENT")
    return KeyRing.parse(text["SecretString"])


def stages(pipe) -> dict[str, list[str]]:
    return moto_client("secretsmanager").describe_secret(SecretId=pipe.secret_arn)["VersionIdsToStages"]


def step(pipe, name: str, token: str) -> dict:
    return invoke_rotation_step({"Step": name, "SecretId": pipe.secret_arn, "ClientRequestToken": token})


def test_a_rotation_adds_a_random_key_taking_over_after_the_switch_delay(rotating, monkeypatch, capsys):
    monkeypatch.setenv("CARD_KEY_SWITCH_DELAY_SECONDS", "600")
    settings.clear_cache()
    before = current_ring(rotating)
    started = datetime.now(UTC)
    report = rotate_key(rotating)
    after = current_ring(rotating)

    assert [k.version for k in after.keys] == [report.new_version, before.newest.version]
    new = after.newest
    assert len(bytes.fromhex(new.key.decode())) == 32 and new.version == card.key_version(new.key)
    assert started + timedelta(seconds=600) <= new.use_from <= datetime.now(UTC) + timedelta(seconds=601)
    assert after.primary_at(datetime.now(UTC)) == before.newest  # nothing switches before the delay
    labels = stages(rotating)
    assert "AWSCURRENT" in labels[report.token]
    assert any("AWSPREVIOUS" in v for t, v in labels.items() if t != report.token)
    assert emitted_metrics(capsys.readouterr().out).get("KeyRotated") == 1


def test_every_step_is_idempotent(rotating):
    token = start_rotation(rotating)
    created = step(rotating, "createSecret", token)
    again = step(rotating, "createSecret", token)
    assert again["done"] == "already created" and again["new_version"] == created["new_version"]
    assert step(rotating, "setSecret", token)["done"] == "nothing to set"
    assert step(rotating, "testSecret", token)["done"] == "tested"
    assert step(rotating, "testSecret", token)["done"] == "tested"
    assert step(rotating, "finishSecret", token)["done"] == "finished"
    for name in STEPS:  # Secrets Manager may call any step again: the version is current, done
        assert step(rotating, name, token)["done"] == "already current"
    assert current_ring(rotating).newest.version == created["new_version"]


def test_each_rotation_adds_one_key_and_keys_in_use_are_never_lost(rotating):
    versions = []
    for _ in range(3):
        versions.insert(0, rotate_key(rotating).new_version)
    ring = current_ring(rotating)
    assert [k.version for k in ring.keys][:3] == versions and len(ring.keys) == 4


@pytest.mark.parametrize("name", STEPS)
def test_a_token_that_is_not_a_version_of_the_secret_is_refused(rotating, name):
    with pytest.raises(RotationRefused, match="has no stage for rotation"):
        step(rotating, name, "00000000-0000-0000-0000-000000000000")


def test_a_token_that_is_not_pending_is_refused(rotating):
    token = start_rotation(rotating)
    step(rotating, "createSecret", token)
    previous = next(t for t, labels in stages(rotating).items() if "AWSCURRENT" in labels)
    client = moto_client("secretsmanager")
    client.update_secret_version_stage(
        SecretId=rotating.secret_arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=previous,
    )
    client.update_secret_version_stage(
        SecretId=rotating.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    with pytest.raises(RotationRefused, match="is not AWSPENDING"):
        step(rotating, "createSecret", previous)


def test_a_secret_without_rotation_enabled_is_refused(pipeline):
    with pytest.raises(RotationRefused, match="not enabled for rotation"):
        step(pipeline, "createSecret", "00000000-0000-0000-0000-000000000000")


def test_only_the_configured_secret_is_rotated(rotating, monkeypatch):
    other = moto_client("secretsmanager").create_secret(Name="someone-elses", SecretString="x" * 40)["ARN"]
    with pytest.raises(RotationRefused, match="rotates only"):
        invoke_rotation_step({"Step": "createSecret", "SecretId": other, "ClientRequestToken": "t" * 36})


def test_an_unknown_step_is_refused(rotating):
    token = start_rotation(rotating)
    with pytest.raises(RotationRefused, match="unknown rotation step"):
        step(rotating, "dropSecret", token)


def pending_with(pipe, token: str, ring: KeyRing) -> None:
    SecretVersions(pipe.secret_arn).put_pending(token, ring.dumps())


def test_test_secret_refuses_a_pending_ring_that_lost_a_key_in_use(rotating):
    token = start_rotation(rotating)
    fresh = key_rotation.new_key()
    pending_with(rotating, token, KeyRing((card.ring_key(fresh, datetime.now(UTC) + timedelta(minutes=10)),)))
    with pytest.raises(RotationTestFailed, match="lost or changed key"):
        step(rotating, "testSecret", token)


@pytest.mark.parametrize(
    ("material", "problem"),
    [
        (b"a" * 64, "does not look random"),
        (b"0123456789abcdef" * 2 + b"fedcba98", "fewer than 32 random bytes"),
        (b"z" * 64, "not hex-encoded"),
    ],
)
def test_test_secret_refuses_a_short_or_non_random_new_key(rotating, material, problem):
    current = current_ring(rotating)
    later = datetime.now(UTC) + timedelta(minutes=10)
    token = start_rotation(rotating)
    pending_with(rotating, token, current.rotated(material, later))
    with pytest.raises(RotationTestFailed, match=problem):
        step(rotating, "testSecret", token)


def test_test_secret_refuses_a_ring_without_a_new_key(rotating):
    token = start_rotation(rotating)
    pending_with(rotating, token, current_ring(rotating))
    with pytest.raises(RotationTestFailed, match="no new key"):
        step(rotating, "testSecret", token)


def test_test_secret_refuses_a_pending_version_never_created(rotating):
    token = start_rotation(rotating)
    with pytest.raises(RotationTestFailed, match="createSecret did not run"):
        step(rotating, "testSecret", token)


def test_keys_no_guard_can_need_are_pruned(rotating):
    """A key stays for KEY_RETENTION after its successor took over (request guards live 30 days)."""
    secret = rotating.secret_arn
    now = datetime.now(UTC)
    legacy = current_ring(rotating).newest

    def rotate_at(at: datetime) -> str:
        token = start_rotation(rotating)
        for name in STEPS:
            outcome = key_rotation.rotate(name, secret, token, now=at)
        assert outcome.done == "finished"
        return current_ring(rotating).newest.version

    first = rotate_at(now)
    second = rotate_at(now + KEY_RETENTION - timedelta(days=1))
    assert [k.version for k in current_ring(rotating).keys] == [second, first, legacy.version]
    third = rotate_at(now + KEY_RETENTION + timedelta(days=1))
    assert [k.version for k in current_ring(rotating).keys] == [third, second, first]


def test_a_failed_step_raises_counts_a_failure_and_logs_no_key(rotating, capsys, logs):
    token = start_rotation(rotating)
    with pytest.raises(RotationTestFailed):
        step(rotating, "testSecret", token)
    assert emitted_metrics(capsys.readouterr().out).get("KeyRotationFailed") == 1
    client = moto_client("secretsmanager")
    client.update_secret_version_stage(
        SecretId=rotating.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    rotate_key_report = rotate_key(rotating)
    assert rotate_key_report.new_version
    for k in current_ring(rotating).keys:
        assert k.key.decode() not in logs.text
    assert rotate_key_report.new_version in logs.text  # versions are logged, keys never


def test_the_rotation_result_holds_no_key_material(rotating):
    report = rotate_key(rotating)
    text = json.dumps(report.steps)
    for k in current_ring(rotating).keys:
        assert k.key.decode() not in text

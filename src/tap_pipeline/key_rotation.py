"""Rotating the card-fingerprint key: Secrets Manager's four rotation steps over the key ring.

Secrets Manager starts a rotation by labelling a new version id (the ``ClientRequestToken``)
``AWSPENDING`` and then invokes the rotation function once per step, in order:

``createSecret``
    Read ``AWSCURRENT``, drop the keys nothing can need any more (:data:`KEY_RETENTION`), add a new
    key of :data:`~tap_contract.card_keys.NEW_KEY_RANDOM_BYTES` random bytes taking over
    ``switch delay`` from now, and store that ring as the ``AWSPENDING`` version. A re-run finds the
    pending version and changes nothing.
``setSecret``
    Nothing: the key is only ever used by this pipeline, which reads it from the secret; no
    database or third party has to be told.
``testSecret``
    The pending ring parses, its newest key is new, random-sized and usable, and every key of the
    current ring that is still needed is in it unchanged (a rotation can never lose a key).
``finishSecret``
    Move ``AWSCURRENT`` to the token (Secrets Manager labels the old version ``AWSPREVIOUS``).

As in AWS's rotation template, every step first checks that rotation is enabled, that the token is
a version of the secret, and that it is ``AWSPENDING`` (or already ``AWSCURRENT``: a repeated
``finishSecret``, nothing to do); anything else is refused. The function rotates only the secret its
environment names. Keys and fingerprints are never logged; versions and switch times are.

Why the new key is not primary at once: validators cache the ring for
:data:`~tap_contract.card_keys.KEY_CACHE_SECONDS`; with a switch delay longer than that, every
container holds the new ring before any of them starts fingerprinting with the new key, so at any
moment all of them agree on the primary key (see :mod:`tap_pipeline.card`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tap_contract.card_keys import NEW_KEY_RANDOM_BYTES
from tap_pipeline import card
from tap_pipeline.card import KeyRing, KeyRingError, RingKey
from tap_pipeline.data.fraud_state import HOUR
from tap_pipeline.data.secrets import SecretVersions
from tap_pipeline.data.transactions import GUARD_RETENTION_SECONDS
from tap_pipeline.observability import logger
from tap_pipeline.settings import key_rotation_settings

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
# How long a key stays in the ring after its successor took over: a request guard written just
# before the switch is replayed with its own key for GUARD_RETENTION_SECONDS (30 days), and DynamoDB
# deletes an expired guard up to a few days late; that also covers the card-history hour.
KEY_RETENTION = timedelta(seconds=max(GUARD_RETENTION_SECONDS, HOUR)) + timedelta(days=3)


class Step(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


class RotationRefused(Exception):
    """The step was not run: wrong secret, rotation disabled, or a token not pending rotation."""


class RotationTestFailed(Exception):
    """The pending key ring is not safe to make current."""


@dataclass(frozen=True)
class StepOutcome:
    """What a step did, without key material: safe to log and to return to Secrets Manager."""

    step: Step
    token: str
    done: str
    new_version: str | None = None
    use_from: str | None = None

    def as_dict(self) -> dict[str, str]:
        fields = {"step": self.step.value, "token": self.token, "done": self.done}
        if self.new_version is not None:
            fields["new_version"] = self.new_version
        if self.use_from is not None:
            fields["use_from"] = self.use_from
        return fields


def new_key() -> bytes:
    """A fresh HMAC key: NEW_KEY_RANDOM_BYTES from the OS's CSPRNG, hex encoded."""
    return os.urandom(NEW_KEY_RANDOM_BYTES).hex().encode()


def rotate(step: str, secret_id: str, token: str, now: datetime | None = None) -> StepOutcome:
    """Run one rotation step for ``secret_id`` and version ``token`` (refused unless it may run)."""
    now = now or datetime.now(UTC)
    try:
        which = Step(step)
    except ValueError:
        raise RotationRefused(f"unknown rotation step {step!r}") from None
    settings = key_rotation_settings()
    store = SecretVersions(secret_id)
    metadata = store.describe()
    if metadata.get("ARN") != settings.card_fingerprint_secret_arn:
        raise RotationRefused(f"this function rotates only {settings.card_fingerprint_secret_arn}")
    if not metadata.get("RotationEnabled"):
        raise RotationRefused(f"secret {metadata.get('ARN')} is not enabled for rotation")
    stages = (metadata.get("VersionIdsToStages") or {}).get(token)
    if stages is None:
        raise RotationRefused(f"version {token} has no stage for rotation of the secret")
    if CURRENT in stages:
        logger.info("version is already AWSCURRENT; nothing to do", extra={"step": which.value})
        return StepOutcome(which, token, "already current")
    if PENDING not in stages:
        raise RotationRefused(f"version {token} is not AWSPENDING for rotation of the secret")
    if which is Step.CREATE:
        return create(store, token, now, timedelta(seconds=settings.switch_delay_seconds))
    if which is Step.SET:
        logger.info("setSecret: nothing downstream holds the key; nothing to set")
        return StepOutcome(which, token, "nothing to set")
    if which is Step.TEST:
        return test(store, token, now)
    return finish(store, token, metadata)


def _current_ring(store: SecretVersions) -> tuple[str, KeyRing]:
    current = store.get(CURRENT)
    if current is None:
        raise RotationRefused("the secret has no AWSCURRENT value")
    try:
        return current.version_id, KeyRing.parse(current.text)
    except KeyRingError as exc:
        raise RotationRefused(f"the current key ring is unusable: {exc}") from None


def next_ring(ring: KeyRing, key: bytes, now: datetime, switch_delay: timedelta) -> KeyRing:
    """``ring`` without keys past :data:`KEY_RETENTION`, plus ``key`` primary from ``now + switch_delay``
    (or just after the newest key, if that one has not taken over yet), in whole milliseconds as
    stored, rounded up: a switch is never earlier than the delay, so never before the rotation."""
    use_from = max(
        card.whole_millisecond_after(now + switch_delay), ring.newest.use_from + timedelta(milliseconds=1)
    )
    return ring.pruned(now, KEY_RETENTION).rotated(key, use_from)


def create(store: SecretVersions, token: str, now: datetime, switch_delay: timedelta) -> StepOutcome:
    _, ring = _current_ring(store)
    pending = store.get(PENDING, token)
    if pending is not None:
        logger.info("createSecret: the pending key ring exists already")
        newest = _parse_pending(pending.text).newest
        return StepOutcome(Step.CREATE, token, "already created", newest.version, _iso(newest.use_from))
    rotated = next_ring(ring, new_key(), now, switch_delay)
    store.put_pending(token, rotated.dumps())
    newest = rotated.newest
    logger.info(
        "createSecret: new card fingerprint key written as AWSPENDING",
        extra={
            "new_version": newest.version,
            "use_from": _iso(newest.use_from),
            "ring_versions": [k.version for k in rotated.keys],
            "pruned_versions": sorted({k.version for k in ring.keys} - {k.version for k in rotated.keys}),
        },
    )
    return StepOutcome(Step.CREATE, token, "created", newest.version, _iso(newest.use_from))


def _parse_pending(text: str) -> KeyRing:
    try:
        return KeyRing.parse(text)
    except KeyRingError as exc:
        raise RotationTestFailed(f"the pending key ring does not parse: {exc}") from None


def test(store: SecretVersions, token: str, now: datetime) -> StepOutcome:
    _, current = _current_ring(store)
    pending_version = store.get(PENDING, token)
    if pending_version is None:
        raise RotationTestFailed("no AWSPENDING value for this version (createSecret did not run)")
    pending = _parse_pending(pending_version.text)
    newest = pending.newest
    check_new_key(newest, current)
    needed = current.pruned(now, KEY_RETENTION)
    for key in needed.keys:
        kept = pending.by_version(key.version)
        if kept is None or kept.key != key.key or kept.use_from != key.use_from:
            raise RotationTestFailed(f"the pending ring lost or changed key {key.version}, still needed")
    logger.info(
        "testSecret: pending key ring is sound",
        extra={"new_version": newest.version, "use_from": _iso(newest.use_from)},
    )
    return StepOutcome(Step.TEST, token, "tested", newest.version, _iso(newest.use_from))


def check_new_key(newest: RingKey, current: KeyRing) -> None:
    """The pending ring's newest key is new, at least NEW_KEY_RANDOM_BYTES of randomness, versioned
    by its own material, takes over after every current key, and fingerprints."""
    if current.by_version(newest.version) is not None:
        raise RotationTestFailed("the pending ring has no new key")
    try:
        material = bytes.fromhex(newest.key.decode())
    except ValueError:
        raise RotationTestFailed("the new key is not hex-encoded random bytes") from None
    if len(material) < NEW_KEY_RANDOM_BYTES:
        raise RotationTestFailed(f"the new key holds fewer than {NEW_KEY_RANDOM_BYTES} random bytes")
    if len(set(material)) < 8:
        raise RotationTestFailed("the new key does not look random")
    if newest.version != card.key_version(newest.key):
        raise RotationTestFailed("the new key's version does not match its material")
    if newest.use_from <= current.newest.use_from:
        raise RotationTestFailed("the new key does not take over after the current keys")
    probe = card.fingerprint(newest.key, "pan", "rotation-self-test")
    if probe == card.fingerprint(current.newest.key, "pan", "rotation-self-test"):
        raise RotationTestFailed("the new key fingerprints like the current one")


def finish(store: SecretVersions, token: str, metadata: dict[str, object]) -> StepOutcome:
    stages = metadata.get("VersionIdsToStages")
    assert isinstance(stages, dict)
    current_version = next((version for version, labels in stages.items() if CURRENT in labels), None)
    if current_version is None:
        raise RotationRefused("the secret has no AWSCURRENT version to move from")
    store.make_current(token, current_version)
    logger.info("finishSecret: AWSCURRENT moved to the new version", extra={"previous": current_version})
    return StepOutcome(Step.FINISH, token, "finished")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""The card-fingerprint key ring: stored forms, the primary key at a time, the lookback set, pruning."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pipeline import card
from tap_pipeline.card import EPOCH, KeyRing, KeyRingError, ring_key

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def key(seed: int) -> bytes:
    return random.Random(seed).randbytes(32).hex().encode()


def ring(*offsets_minutes: int) -> KeyRing:
    """Keys taking over at T0 + each offset (minutes); key(i) for the i-th."""
    return KeyRing(tuple(ring_key(key(i), T0 + timedelta(minutes=m)) for i, m in enumerate(offsets_minutes)))


def test_a_plain_string_secret_is_one_key_in_use_since_the_epoch():
    legacy = KeyRing.parse(key(1).decode())
    assert [(k.key, k.use_from) for k in legacy.keys] == [(key(1), EPOCH)]
    assert legacy.primary_at(T0).version == card.key_version(key(1))


def test_a_key_field_secret_is_one_key_in_use_since_the_epoch():
    legacy = KeyRing.parse(json.dumps({"key": key(2).decode()}))
    assert legacy.newest.key == key(2) and legacy.newest.use_from == EPOCH


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("short", "at least 32 bytes"),
        ('{"secret": "x"}', "without a 'keys' or 'key' field"),
        ('{"keys": []}', "holds no key"),
        ('{"keys": {}}', "is not a list"),
        ('{"keys": [{"use_from": "2026-01-01T00:00:00Z"}]}', "no 'key' string"),
        ("{not json", "not valid JSON"),
        ("[1]", None),  # a JSON list is read as a plain key string only if long enough
    ],
)
def test_unusable_secrets_are_refused_without_showing_key_material(text, problem):
    if problem is None:
        with pytest.raises(KeyRingError):
            KeyRing.parse(text)
        return
    with pytest.raises(KeyRingError, match=problem) as caught:
        KeyRing.parse(text)
    assert key(1).decode() not in str(caught.value)


def test_a_version_that_does_not_match_its_key_is_refused():
    text = json.dumps(
        {"keys": [{"version": "000000000000", "key": key(1).decode(), "use_from": "2026-01-01T00:00:00Z"}]}
    )
    with pytest.raises(KeyRingError, match="does not match"):
        KeyRing.parse(text)


def test_the_ring_round_trips_newest_first_and_repr_hides_keys():
    original = ring(0, -60, 30)
    text = original.dumps()
    parsed = KeyRing.parse(text)
    assert parsed == original
    assert [k.use_from for k in parsed.keys] == sorted((k.use_from for k in parsed.keys), reverse=True)
    assert json.loads(text)["keys"][0]["version"] == parsed.newest.version
    assert all(k.key.decode() not in repr(parsed) for k in parsed.keys)


def test_the_primary_key_is_the_newest_in_use_at_that_time():
    keys = ring(-120, 0, 10)  # key(0) from T0-2h, key(1) from T0, key(2) from T0+10 min
    assert keys.primary_at(T0 - timedelta(minutes=1)).key == key(0)
    assert keys.primary_at(T0).key == key(1)
    assert keys.primary_at(T0 + timedelta(minutes=9, seconds=59)).key == key(1)
    assert keys.primary_at(T0 + timedelta(minutes=10)).key == key(2)
    assert keys.primary_at(T0 - timedelta(days=1)).key == key(0)  # before any: the oldest


def test_lookback_holds_the_keys_primary_within_the_window_only_after_a_switch():
    keys = ring(-180, 0)  # key(1) took over at T0
    assert keys.lookback_at(T0 - timedelta(minutes=1), HOUR) == []  # before the switch
    assert [k.key for k in keys.lookback_at(T0 + timedelta(minutes=59), HOUR)] == [key(0)]
    assert keys.lookback_at(T0 + HOUR, HOUR) == []  # an hour after: the overlap is over
    # A key scheduled but not yet primary is never looked back to.
    scheduled = ring(-180, 10)
    assert scheduled.lookback_at(T0, HOUR) == []


def brute_force_lookback(keys: KeyRing, at: datetime, window: timedelta) -> set[str]:
    """Keys primary at any whole second of [at - window, at], other than the primary at `at`."""
    seen = set()
    moment = at - window
    while moment <= at:
        seen.add(keys.primary_at(moment).version)
        moment += timedelta(seconds=30)
    seen.add(keys.primary_at(at).version)
    return seen - {keys.primary_at(at).version}


@given(
    offsets=st.lists(st.integers(min_value=-600, max_value=600), min_size=1, max_size=6, unique=True),
    at=st.integers(min_value=-700, max_value=700),
)
def test_lookback_is_exactly_the_other_keys_primary_within_the_window(offsets, at):
    keys = ring(*offsets)
    moment = T0 + timedelta(minutes=at)
    found = {k.version for k in keys.lookback_at(moment, HOUR)}
    assert found == brute_force_lookback(keys, moment, HOUR)
    assert keys.primary_at(moment).version not in found


@given(
    offsets=st.lists(st.integers(min_value=-100_000, max_value=0), min_size=1, max_size=8, unique=True),
    keep_days=st.integers(min_value=0, max_value=60),
)
def test_pruning_keeps_the_primary_and_every_key_replaced_within_the_retention(offsets, keep_days):
    keys = ring(*offsets)
    keep_for = timedelta(days=keep_days)
    pruned = keys.pruned(T0, keep_for)
    assert pruned.primary_at(T0) == keys.primary_at(T0)
    for k in keys.keys:
        until = keys.primary_until(k)
        needed = until is None or until + keep_for > T0
        assert (pruned.by_version(k.version) is not None) == needed


def test_a_new_key_must_take_over_after_the_newest():
    keys = ring(0)
    with pytest.raises(KeyRingError, match="after the newest key"):
        keys.rotated(key(9), T0)
    assert keys.rotated(key(9), T0 + timedelta(milliseconds=1)).newest.key == key(9)


def test_fingerprints_differ_per_key_and_the_snapshot_carries_the_lookback():
    keys = ring(-120, 0)
    pan = "4111111111111111"
    during = card.snapshot(keys, T0 + timedelta(minutes=5), HOUR, "pan", pan, bin=pan[:6], last4=pan[-4:])
    assert during.fingerprint == card.fingerprint(key(1), "pan", pan)
    assert during.key_version == card.key_version(key(1))
    assert during.lookback_fingerprints == (card.fingerprint(key(0), "pan", pan),)
    later = card.snapshot(keys, T0 + 2 * HOUR, HOUR, "pan", pan)
    assert later.lookback_fingerprints == () and later.fingerprint == during.fingerprint
    assert pan not in repr(during) and pan not in during.model_dump_json()


def test_key_versions_are_stable_and_reveal_nothing_of_the_fingerprint():
    assert card.key_version(key(1)) == card.key_version(key(1)) != card.key_version(key(2))
    assert len(card.key_version(key(1))) == 12
    assert card.key_version(key(1)) not in card.fingerprint(key(1), "pan", "4111111111111111")


def test_messages_from_before_key_rotation_still_parse_with_no_version_and_no_lookback():
    from tap_contract.messages import TransactionMessage

    old = {
        "transaction_id": "t-1",
        "timestamp": "2026-06-01T12:00:00.000Z",
        "merchant_id": "m",
        "merchant_shard": "m#0",
        "amount": "25.00",
        "currency": "USD",
        "card": {"fingerprint": "ab" * 32, "kind": "pan", "bin": "411111", "last4": "1111"},
    }
    message = TransactionMessage.model_validate(old)
    assert message.card.key_version == "" and message.card.lookback_fingerprints == ()


@given(
    rotated_at=st.integers(min_value=0, max_value=10_000),
    loaded_before=st.integers(min_value=0, max_value=10_000),
    later=st.integers(min_value=0, max_value=299),
)
def test_with_the_stack_switch_delay_stale_and_fresh_containers_agree_on_the_key(
    rotated_at, loaded_before, later
):
    """Why the new key waits SWITCH_DELAY_SECONDS: a container that read the ring before the
    rotation keeps it for up to KEY_CACHE_SECONDS, and in that time it must pick the same key as a
    container holding the new ring, for every transaction."""
    from tap_contract.card_keys import KEY_CACHE_SECONDS, SWITCH_DELAY_SECONDS
    from tap_pipeline.key_rotation import next_ring

    old = ring(-100_000)
    rotation = T0 + timedelta(seconds=rotated_at)
    new = next_ring(old, key(7), rotation, timedelta(seconds=SWITCH_DELAY_SECONDS))
    loaded = rotation - timedelta(seconds=loaded_before)  # when the stale container read the ring
    moment = max(rotation, loaded) + timedelta(seconds=later)
    assert later < KEY_CACHE_SECONDS
    if moment < loaded + timedelta(seconds=KEY_CACHE_SECONDS):  # the stale ring is still in use
        assert old.primary_at(moment) == new.primary_at(moment)


def test_without_a_switch_delay_a_stale_container_would_pick_the_old_key():
    from tap_pipeline.key_rotation import next_ring

    old = ring(-100_000)
    new = next_ring(old, key(7), T0, timedelta(0))
    moment = T0 + timedelta(seconds=1)  # a container that read the ring a minute ago still has `old`
    assert old.primary_at(moment) != new.primary_at(moment)

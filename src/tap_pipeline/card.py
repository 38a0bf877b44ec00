"""Card data handling: keyed fingerprint, BIN + last 4.

PCI DSS 3.5.1.2: disk encryption alone does not make a stored PAN unreadable, so the PAN is
replaced *at the edge* (in the validator, before anything is stored, queued or logged) by

* an HMAC-SHA256 fingerprint under a secret key (Secrets Manager): stable per card so velocity and
  duplicate rules work, but not reversible and not brute-forceable without the key — an unkeyed
  hash of a 16-digit PAN is (the BIN and Luhn digit leave ~10^9 candidates);
* the BIN (first 6) and last 4 digits, the most PCI DSS allows to be displayed.

Provider tokens are fingerprinted the same way (with a different domain prefix) and never stored
either: a token can be usable for charging with its provider. The CVV is validated for shape by the
request model and then dropped; no function in this package accepts it. The Luhn check and PAN
detection are part of the API contract (:mod:`tap_contract.card_numbers`).

The key rotates (PCI DSS 3.6/3.7): :class:`KeyRing` is the set of keys still in use, each with a
version and the time from which it is primary (:mod:`tap_contract.card_keys` describes the stored
form). A fingerprint is always computed with the key primary at the transaction's receive time, and
for the hour after a switch the card's fingerprints under the keys primary earlier in that hour
travel with it (:func:`snapshot`), so card history stays continuous.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tap_contract.messages import CardSnapshot

MIN_KEY_BYTES = 32
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class KeyRingError(ValueError):
    """The secret does not hold a usable key ring (the message never includes key material)."""


def key_version(key: bytes) -> str:
    """A key's version id: 12 hex digits of a domain-separated SHA-256 of the key.

    Derived rather than random so a key has the same version wherever it is read, including keys
    stored before versions existed (a plain-string secret), without rewriting the secret. 48 bits
    of a hash of a 256-bit random key tell nothing about the key or about any fingerprint.
    """
    return hashlib.sha256(b"tap-key-version:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class RingKey:
    """One key of the ring; ``key`` stays out of ``repr`` so it cannot reach a log by accident."""

    version: str
    key: bytes = field(repr=False)
    use_from: datetime


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def whole_millisecond_after(at: datetime) -> datetime:
    """``at`` rounded up to the millisecond (the precision the ring stores): never earlier."""
    extra = at.microsecond % 1000
    return at if not extra else at + timedelta(microseconds=1000 - extra)


def _parse_time(text: object) -> datetime:
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        raise KeyRingError("a key's use_from is not an ISO-8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def ring_key(key: bytes, use_from: datetime) -> RingKey:
    if len(key) < MIN_KEY_BYTES:
        raise KeyRingError(f"card fingerprint keys must hold at least {MIN_KEY_BYTES} bytes")
    return RingKey(version=key_version(key), key=key, use_from=use_from)


@dataclass(frozen=True)
class KeyRing:
    """The card-fingerprint keys still in use, newest ``use_from`` first (never empty)."""

    keys: tuple[RingKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the card fingerprint key ring holds no key")
        ordered = tuple(sorted(self.keys, key=lambda k: k.use_from, reverse=True))
        object.__setattr__(self, "keys", ordered)
        if len({k.version for k in ordered}) != len(ordered):
            raise KeyRingError("the card fingerprint key ring holds the same key twice")

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """The ring from the secret's string: the ring JSON, or (before rotation) the key itself or
        ``{"key": ...}``, read as one key in use since the epoch."""
        if not text.lstrip().startswith("{"):
            return cls((ring_key(text.encode(), EPOCH),))
        try:
            document = json.loads(text)
        except ValueError:
            raise KeyRingError("card fingerprint secret is not valid JSON") from None
        if not isinstance(document, dict):
            raise KeyRingError("card fingerprint secret is not a JSON object")
        if "keys" not in document:
            if not isinstance(document.get("key"), str):
                raise KeyRingError("card fingerprint secret is JSON without a 'keys' or 'key' field")
            return cls((ring_key(document["key"].encode(), EPOCH),))
        entries = document["keys"]
        if not isinstance(entries, list):
            raise KeyRingError("card fingerprint secret's 'keys' is not a list")
        keys = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise KeyRingError("a key of the card fingerprint ring has no 'key' string")
            parsed = ring_key(entry["key"].encode(), _parse_time(entry.get("use_from", _iso(EPOCH))))
            if entry.get("version") not in (None, parsed.version):
                raise KeyRingError(f"ring key {entry.get('version')!r} does not match its key material")
            keys.append(parsed)
        return cls(tuple(keys))

    def dumps(self) -> str:
        """The secret string for this ring (newest first)."""
        return json.dumps(
            {
                "keys": [
                    {"version": k.version, "key": k.key.decode(), "use_from": _iso(k.use_from)}
                    for k in self.keys
                ]
            },
            separators=(",", ":"),
        )

    @property
    def newest(self) -> RingKey:
        return self.keys[0]

    def primary_at(self, at: datetime) -> RingKey:
        """The key fingerprints are computed with at ``at``: the newest one in use by then (the
        oldest key if none is, which only a hand-made ring can cause)."""
        for key in self.keys:
            if key.use_from <= at:
                return key
        return self.keys[-1]

    def primary_until(self, key: RingKey) -> datetime | None:
        """When ``key`` stopped being primary (its successor's ``use_from``); None while it still is
        or will be."""
        index = self.keys.index(key)
        return self.keys[index - 1].use_from if index > 0 else None

    def lookback_at(self, at: datetime, window: timedelta) -> list[RingKey]:
        """The keys other than the primary one that were primary at some moment in
        ``[at - window, at]``, newest first: the card's events of that window are under them."""
        primary = self.primary_at(at)
        found = []
        for key in self.keys:
            if key is primary or key.use_from > at:
                continue
            until = self.primary_until(key)
            if until is not None and until > at - window:
                found.append(key)
        return found

    def by_version(self, version: str) -> RingKey | None:
        return next((k for k in self.keys if k.version == version), None)

    def rotated(self, new_key: bytes, use_from: datetime) -> KeyRing:
        """This ring with ``new_key`` primary from ``use_from`` (the newest key must stay newest)."""
        added = ring_key(new_key, use_from)
        if use_from <= self.newest.use_from:
            raise KeyRingError("a new key must take over after the newest key of the ring")
        return KeyRing((added, *self.keys))

    def pruned(self, now: datetime, keep_for: timedelta) -> KeyRing:
        """Without the keys nothing can need any more: those whose successor took over more than
        ``keep_for`` before ``now`` (the guard retention, which covers the history window)."""
        kept = [k for k in self.keys if (until := self.primary_until(k)) is None or until + keep_for > now]
        return KeyRing(tuple(kept))


def snapshot(
    ring: KeyRing,
    at: datetime,
    lookback: timedelta,
    kind: str,
    value: str,
    bin: str | None = None,
    last4: str | None = None,
) -> CardSnapshot:
    """The card at receive time ``at``: its fingerprint under the primary key, and under each key
    primary earlier within ``lookback`` (the detector's card-history window)."""
    primary = ring.primary_at(at)
    return CardSnapshot(
        fingerprint=fingerprint(primary.key, kind, value),
        kind=kind,
        bin=bin,
        last4=last4,
        key_version=primary.version,
        lookback_fingerprints=tuple(fingerprint(k.key, kind, value) for k in ring.lookback_at(at, lookback)),
    )


def fingerprint(key: bytes, kind: str, value: str) -> str:
    """Keyed HMAC-SHA256 of a PAN or token, hex encoded. ``kind`` separates the two domains."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"card fingerprint key must be at least {MIN_KEY_BYTES} bytes")
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def snapshot_of_pan(key: bytes, pan: str) -> CardSnapshot:
    return CardSnapshot(fingerprint=fingerprint(key, "pan", pan), kind="pan", bin=pan[:6], last4=pan[-4:])


def snapshot_of_token(key: bytes, token: str) -> CardSnapshot:
    return CardSnapshot(fingerprint=fingerprint(key, "token", token), kind="token")

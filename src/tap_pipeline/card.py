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
"""

from __future__ import annotations

import hashlib
import hmac

from tap_contract.messages import CardSnapshot

MIN_KEY_BYTES = 32


def fingerprint(key: bytes, kind: str, value: str) -> str:
    """Keyed HMAC-SHA256 of a PAN or token, hex encoded. ``kind`` separates the two domains."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"card fingerprint key must be at least {MIN_KEY_BYTES} bytes")
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def snapshot_of_pan(key: bytes, pan: str) -> CardSnapshot:
    return CardSnapshot(fingerprint=fingerprint(key, "pan", pan), kind="pan", bin=pan[:6], last4=pan[-4:])


def snapshot_of_token(key: bytes, token: str) -> CardSnapshot:
    return CardSnapshot(fingerprint=fingerprint(key, "token", token), kind="token")

"""The card-fingerprint key ring: how it is stored, cached and rotated (PCI DSS v4.0 3.6/3.7).

One Secrets Manager secret holds every key still in use, newest first, as JSON::

    {"keys": [{"version": "<12 hex>", "key": "<64 hex>", "use_from": "<ISO-8601 UTC>"}, ...]}

A key is the UTF-8 bytes of its ``key`` string (as before rotation existed: a plain-string secret or
``{"key": ...}`` is read as a ring of one key in use since the epoch). At time ``t`` the *primary*
key, the one new fingerprints are computed with, is the newest key whose ``use_from`` is not after
``t``. The rotation function writes a new key with ``use_from`` :data:`SWITCH_DELAY_SECONDS` ahead,
so every validator container has reloaded the ring (:data:`KEY_CACHE_SECONDS`) before any of them
switches. Shared by the stack (which sets the rotation function's switch delay) and the functions.
"""

from __future__ import annotations

# How long a validator container reuses the secret it read (Powertools' cache, max_age).
KEY_CACHE_SECONDS = 300
# How far ahead of its writing a new key takes over: the cache period plus a margin for a container
# that read the old ring just before the rotation wrote the new one, and for clock skew.
SWITCH_DELAY_SECONDS = KEY_CACHE_SECONDS + 300
# The rotation function's environment variable holding the switch delay (compressible for tests).
SWITCH_DELAY_VARIABLE = "CARD_KEY_SWITCH_DELAY_SECONDS"
# Random bytes of a generated key (hex encoded into the ring, so the key is 64 bytes of hex).
NEW_KEY_RANDOM_BYTES = 32

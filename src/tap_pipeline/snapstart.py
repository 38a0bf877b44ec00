"""SnapStart runtime hooks: what runs before Lambda takes the snapshot, and after it restores one.

With SnapStart on (lib/components/functions.py, config ``snapStart``), Lambda runs a function's
init once, when a version is published, snapshots the initialised execution environment and
resumes every new environment of that version from the snapshot
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html). Whatever init leaves in memory is
therefore shared by every environment restored from it, possibly for a long time. The hooks are
registered through ``snapshot_restore_py``, the library Lambda's Python runtimes read them from
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html; pinned in the
layer, requirements/functions.txt). A module registering hooks must be imported by the handler
module, which is why each handler calls :func:`install` at import.

Before the snapshot (:func:`before_snapshot`), counted in the init that SnapStart moves out of the
cold start: every module the handler needs is imported already (nothing is deferred, see
``tap_pipeline.handlers``); the hook builds the AWS clients the function uses (loading botocore's
service models and endpoint rules, the larger part of a client's cost) and runs the handler's
warmers (its pydantic models on a canned, card-free document). It makes **no** AWS call: no
secret, merchant configuration or amount profile is fetched into a cache, so nothing in the
snapshot is data with a TTL, and no connection is open when the snapshot is taken.

After a restore (:func:`after_restore`), before the first request, within the 10 s that Lambda
gives restore hooks (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html):

* ``random`` is reseeded from the operating system: every environment restored from one snapshot
  would otherwise draw the same pseudo-random sequence (X-Ray's sampling decisions, jitter), which
  AWS's uniqueness guidance warns about
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html). ``uuid.uuid4`` (the
  transaction ids) and ``secrets`` read ``os.urandom`` on every call and need nothing;
* every per-environment cache is dropped, whatever its TTL: the fingerprint key (Powertools'
  SecretsProvider), merchant configurations, amount profiles, the transaction store, the
  idempotency persistence layer and the idempotent publishers that hold it. Their clocks
  (``time.monotonic``) and contents belong to the environment that was snapshotted, which may be
  hours old; the next request reads them afresh, as a fresh container would;
* the AWS clients are rebuilt, so no client, connection pool or credential object from the
  snapshot is used after it (the rebuild reuses the botocore loader's cached service models, so it
  costs a fraction of the first build; BENCHMARKS.md section 1 measures both sides). For SnapStart
  functions Lambda serves the execution role's credentials from the container credentials
  endpoint rather than environment variables
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-activate.html#snapstart-credentials),
  which botocore's default chain refreshes by itself; rebuilding also covers a client that
  resolved credentials before the snapshot.

Without SnapStart (the consumers' default) Lambda never calls the hooks: registering them costs a
list append, and the function initialises as before.
"""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

from tap_contract.environment import (
    FAILED_HANDLER,
    FRAUD_DETECTOR,
    HANDLERS,
    KEY_ROTATION,
    RECONCILER,
    VALIDATOR,
)
from tap_pipeline.data import clients

Warmer = Callable[[], object]

# The clients each function builds on its main path (bench/cold_start.py builds the same ones).
CLIENTS: Mapping[str, tuple[Callable[[], Any], ...]] = {
    VALIDATOR: (clients.dynamodb_resource, clients.sqs, clients.secretsmanager),
    FRAUD_DETECTOR: (clients.dynamodb_resource, clients.sns, clients.raw_dynamodb),
    FAILED_HANDLER: (clients.dynamodb_resource, clients.sns, clients.raw_dynamodb),
    RECONCILER: (clients.dynamodb_resource, clients.sqs, clients.sns, clients.raw_dynamodb),
    KEY_ROTATION: (clients.secretsmanager,),
}


def build_clients(function: str) -> None:
    """Create ``function``'s AWS clients (no request is sent)."""
    for factory in CLIENTS.get(function, ()):
        factory()


# Module -> how to drop the per-environment state it caches. Only modules the function imported hold
# any, so they are looked up in sys.modules rather than imported here: importing, say, the secrets
# module into a consumer would add Powertools' parameters utility to its init for nothing.
CACHE_OWNERS: Mapping[str, tuple[str, ...]] = {
    "tap_pipeline.data.secrets": ("clear_cache",),  # the fingerprint key (SecretsProvider)
    "tap_pipeline.data.merchants": ("directory.cache_clear",),  # merchant configurations
    "tap_pipeline.data.transactions": ("store.cache_clear",),
    "tap_pipeline.data.fraud_state": ("state.cache_clear",),  # merchant amount profiles
    # The idempotent publishers wrap the persistence layer, which holds a DynamoDB client.
    "tap_pipeline.alerts": ("clear_cache",),
    "tap_pipeline.idempotency": ("clear_cache",),
}


def forget_environment_state() -> None:
    """Drop every per-environment cache that holds data with a TTL or a client, so the next request
    reads and builds them afresh. Settings (the function's environment variables) are kept: they
    are the published version's and do not change between snapshot and restore."""
    for module_name, clearers in CACHE_OWNERS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for path in clearers:
            target: Any = module
            for attribute in path.split("."):
                target = getattr(target, attribute)
            target()


def before_snapshot(function: str, warmers: Sequence[Warmer]) -> None:
    """Warm what init can warm without AWS: clients and models (see the module docstring)."""
    build_clients(function)
    for warm in warmers:
        warm()
    # What the hooks created joins init's frozen objects (tap_pipeline.handlers): a collection after
    # a restore does not walk the snapshot's pages (https://docs.python.org/3/library/gc.html#gc.freeze).
    gc.freeze()


def after_restore(function: str) -> None:
    """Make this environment unique and current again (see the module docstring)."""
    random.seed()  # from os.urandom
    forget_environment_state()
    clients.clear_cache()
    build_clients(function)


def install(function: str, warmers: Sequence[Warmer] = ()) -> None:
    """Register ``function``'s hooks with the runtime; called once, by its handler module at import."""
    if function not in HANDLERS:  # the contract's functions; one without CLIENTS warms none
        raise ValueError(f"no SnapStart hooks for {function!r}; expected one of {sorted(HANDLERS)}")
    register_before_snapshot(before_snapshot, function, tuple(warmers))
    register_after_restore(after_restore, function)

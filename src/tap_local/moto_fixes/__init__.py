"""Narrow corrections to moto's cost per call, so the local pipeline's cost per transaction does
not grow with the data it holds (issue 9). One module per correction, each with the moto version it
was written against, why it is needed, what it changes, and a note fit for an upstream report.

The local pipeline's embedded emulator installs them, and so does the in-process fraud evaluation
(`fraud_eval.inprocess`, for the duration of its run); the function tests run on moto as released.
`ttl_expiry` is not a patch but a sweep the emulator runs on a timer (moto never expires items).
`MOTO_VERSION` pins what they were checked against: the tests refuse another version, so
an upgrade of moto makes someone look again (the fix may be upstream by then).
"""

from __future__ import annotations

from tap_local.moto_fixes import (
    attribute_value_serializer,
    backend_lookup,
    instance_tracking,
    item_memory,
    query_partition,
    sqs_retention,
    transact_snapshot,
)

MOTO_VERSION = "5.2.5"
FIXES = (
    transact_snapshot,
    query_partition,
    sqs_retention,
    backend_lookup,
    attribute_value_serializer,
    item_memory,
    instance_tracking,
)


def install() -> None:
    """Apply every correction in this process (idempotent)."""
    for fix in FIXES:
        fix.install()


def uninstall() -> None:
    for fix in FIXES:
        fix.uninstall()

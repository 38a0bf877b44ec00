"""Metric names the functions emit and the stack's alarms watch.

A renamed metric would leave its alarm watching nothing, silently; both sides import the names
from here instead.
"""

from __future__ import annotations

NAMESPACE = "TapTransactionPipeline"
"""CloudWatch namespace of every custom metric (``POWERTOOLS_METRICS_NAMESPACE``)."""

INTERNAL_ERROR = "InternalError"
"""An error of the validator it answered itself (a 503), which Lambda's ``Errors`` never counts."""

RECORD_PROCESSING_FAILED = "RecordProcessingFailed"
RECORD_PROCESSING_SUCCEEDED = "RecordProcessingSucceeded"
"""Per SQS record of the two consumers; partial batch failures never reach Lambda's ``Errors``."""

STALE_RECEIVED = "StaleReceivedRecords"
"""Per reconciler run: records it found still RECEIVED past the stale bound (0 on a healthy system;
at most its batch limit)."""

RECONCILED = "ReconciledTransaction"
"""Per record the reconciler acted on, with dimension ``action`` (requeued / waiting / failed / notified)."""
KEY_ROTATION_FAILED = "KeyRotationFailed"
"""A step of the card-fingerprint key rotation failed (Secrets Manager records the rotation as failed)."""

KEY_ROTATED = "KeyRotated"
"""A card-fingerprint key rotation finished (AWSCURRENT moved to the new key ring)."""

"""No transaction left RECEIVED forever (the reconciler's domain logic).

A record stays RECEIVED without a message when the enqueue failed after the write and the client
never retried (it got a 503), or when the validator died between the write and the send. Nothing
else would ever touch it. A scheduled run of the reconciler:

1. lists the records *pending* (RECEIVED) since before the stale bound from the sparse
   ``pending-index`` (one Query per shard, bounded per run; never a scan);
2. reads each back (strongly consistent, the index lags) and decides (:func:`decide`):

   * still RECEIVED, re-enqueued fewer than ``max_requeues`` times -> **re-enqueue** the message
     rebuilt from the record, then restart its stale clock. Safe with a message still in flight:
     the detector's transition is conditional on RECEIVED, so a duplicate changes nothing;
   * still RECEIVED after ``max_requeues`` re-enqueues and one more stale period -> **FAILED** with
     a reason, then one ops notice (idempotent per transaction, shared with the failed handler);
   * FAILED by an earlier run whose notice did not go out -> **notify** (the record stays in the
     index until its notice is published);
   * anything else (scored meanwhile, index lag) -> left alone.

Every write is conditional on what was read, so overlapping runs act once per record. The message
is sent *before* the re-enqueue is counted: a run that dies in between sends a duplicate next time
(harmless), never counts a re-enqueue that did not happen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from tap_contract import queues, tables
from tap_contract.api import Status
from tap_pipeline import alerts
from tap_pipeline.data import queue, transactions
from tap_pipeline.data.items import iso_millis
from tap_pipeline.data.transactions import RECONCILER_FAILED_BY, message_from_record
from tap_pipeline.observability import logger
from tap_pipeline.settings import reconciler_settings


class Action(StrEnum):
    REQUEUE = "requeued"
    FAIL = "failed"
    NOTIFY = "notified"
    SKIP = "skipped"


@dataclass
class RunResult:
    """What one run found and did; ``errors`` are records it must retry (the run then fails)."""

    stale: int = 0
    actions: dict[Action, int] = field(default_factory=lambda: dict.fromkeys(Action, 0))
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "stale": self.stale,
            **{a.value: n for a, n in self.actions.items()},
            "errors": len(self.errors),
        }


def decide(record: dict[str, Any] | None, cutoff: str, max_requeues: int) -> Action:
    """What to do with a record the pending index listed as stale (pure: the read decides)."""
    if record is None:
        return Action.SKIP
    since = record.get(tables.PENDING_SINCE)
    status = record.get("status")
    if status == Status.FAILED.value and record.get("failed_by") == RECONCILER_FAILED_BY and since:
        return Action.NOTIFY
    if status != Status.RECEIVED.value or since is None or str(since) >= cutoff:
        return Action.SKIP
    if int(record.get("requeue_count") or 0) < max_requeues:
        return Action.REQUEUE
    return Action.FAIL


def failure_reason(record: dict[str, Any]) -> str:
    requeues = int(record.get("requeue_count") or 0)
    return (
        f"not processed: still RECEIVED after {requeues} re-enqueues by the reconciler "
        f"(received {record.get('timestamp')})"
    )


def run(now: datetime | None = None) -> RunResult:
    """One reconciliation pass over the stale pending records (at most ``batch_limit``)."""
    settings = reconciler_settings()
    now = now or datetime.now(UTC)
    at = iso_millis(now)
    cutoff = iso_millis(now - timedelta(seconds=settings.stale_after_seconds))
    per_shard = max(1, math.ceil(settings.batch_limit / tables.PENDING_INDEX_SHARDS))
    store = transactions.store()
    result = RunResult()
    for key in store.stale_pending(cutoff, per_shard):
        record = store.get_record(*key)
        action = decide(record, cutoff, settings.max_requeues)
        if action is not Action.SKIP:
            result.stale += 1
        try:
            action = _act(action, key, record or {}, at)
        except Exception as exc:
            # One record's failure must not stop the others; the run reports it and fails.
            logger.exception("could not reconcile a stale record", extra={"transaction_id": key[0]})
            result.errors.append(f"{key[0]}: {type(exc).__name__}")
            continue
        result.actions[action] += 1
    return result


def _act(action: Action, key: tuple[str, str], record: dict[str, Any], at: str) -> Action:
    store = transactions.store()
    since = str(record.get(tables.PENDING_SINCE))
    if action is Action.REQUEUE:
        try:
            message = message_from_record(record)
        except (KeyError, ValueError, TypeError):
            logger.warning("stale record cannot be rebuilt as a message", extra={"transaction_id": key[0]})
            reason = "not processed: the record cannot be rebuilt as a queue message"
            return _fail(key, record, since, reason, at)
        queue.send_transaction(message, reconciler_settings().transaction_queue_url, queues.ORIGIN_RECONCILER)
        if not store.note_requeued(key, since, at):
            return Action.SKIP  # another run counted it, or the record was scored meanwhile
        logger.info("stale RECEIVED transaction re-enqueued", extra={"transaction_id": key[0]})
        return Action.REQUEUE
    if action is Action.FAIL:
        return _fail(key, record, since, failure_reason(record), at)
    if action is Action.NOTIFY:
        _notify(key, record, str(record.get("failure_reason")))
        return Action.NOTIFY
    return Action.SKIP


def _fail(key: tuple[str, str], record: dict[str, Any], since: str, reason: str, at: str) -> Action:
    if not transactions.store().fail_stale(key, since, reason, at):
        return Action.SKIP
    logger.warning("stale RECEIVED transaction recorded as FAILED", extra={"transaction_id": key[0]})
    _notify(key, record, reason)
    return Action.FAIL


def _notify(key: tuple[str, str], record: dict[str, Any], reason: str) -> None:
    """The FAILED record's one ops notice, then out of the pending index (in that order)."""
    notice = {
        "kind": "failed_transaction",
        "transaction_id": key[0],
        "outcome": Action.FAIL.value,
        "reason": reason,
        "requeue_count": int(record.get("requeue_count") or 0),
        "received_at": key[1],
        "source": "reconciler",
    }
    alerts.publish_ops_notice(notice, reconciler_settings().ops_alert_topic_arn)
    transactions.store().clear_pending(key)

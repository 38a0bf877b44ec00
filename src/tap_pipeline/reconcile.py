"""No transaction left RECEIVED forever (the reconciler's domain logic).

A record stays RECEIVED without a message when the enqueue failed after the write and the client
never retried (it got a 503), or when the validator died between the write and the send. Nothing
else would ever touch it. A scheduled run of the reconciler:

1. lists the records *pending* (RECEIVED) since before the stale bound from the sparse
   ``pending-index`` (one Query per shard, ``batch_limit`` records at most; never a scan);
2. reads each back (strongly consistent, the index lags) and decides (:func:`decide`):

   * still RECEIVED, never seen by the detector, re-enqueued fewer than ``max_requeues`` times ->
     **re-enqueue** the message rebuilt from the record, then restart its stale clock. Safe with a
     message still in flight: the detector's transition is conditional on RECEIVED, so a duplicate
     changes nothing;
   * still RECEIVED but the detector has seen it (``processing_attempts``: its message exists and
     the queue's retries and DLQ own it) or its re-enqueues are spent -> **wait**: its stale clock is
     moved so it is listed again when failing it becomes due;
   * still RECEIVED ``fail_after`` seconds after it was received -> **FAILED** with a reason (the
     detector's last error if it recorded one), then one ops notice (idempotent per transaction,
     shared with the failed handler). ``fail_after`` is derived by the stack so that every message
     sent for the record, the last re-enqueue included, has used up the transaction queue's whole
     delivery budget (visibility timeout x maxReceiveCount) first: a record whose message is merely
     far behind in a backlog is never failed while that message can still be delivered;
   * FAILED by an earlier run whose notice did not go out -> **notify** (the record stays in the
     index until its notice is published);
   * anything else (scored meanwhile, index lag) -> left alone.

Every write but the final index removal is conditional on what was read, so overlapping runs act
once per record. The message is sent *before* the re-enqueue is counted: a run that dies in
between sends a duplicate next time (harmless), never counts a re-enqueue that did not happen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from tap_pipeline.settings import ReconcilerSettings, reconciler_settings

# A run stops starting records when less than this is left of its invocation (or a quarter of what
# it started with, for short timeouts), so it ends cleanly (metrics flushed) instead of timing out;
# the next run continues.
RESERVED_MILLISECONDS = 10_000
# The schedule's period equals the stale bound by default, and runs start with some jitter: without
# slack, a record re-enqueued by one run would be stale at the next only half the time.
JITTER_SHARE = 0.1


class Action(StrEnum):
    REQUEUE = "requeued"
    WAIT = "waiting"
    FAIL = "failed"
    NOTIFY = "notified"
    SKIP = "skipped"


@dataclass
class RunResult:
    """What one run found and did; ``errors`` are records it must retry (the run then fails)."""

    stale: int = 0
    actions: dict[Action, int] = field(default_factory=lambda: dict.fromkeys(Action, 0))
    errors: list[str] = field(default_factory=list)
    out_of_time: bool = False

    def summary(self) -> dict[str, Any]:
        counts = {action.value: count for action, count in self.actions.items()}
        return {"stale": self.stale, **counts, "errors": len(self.errors), "out_of_time": self.out_of_time}


@dataclass(frozen=True)
class Bounds:
    """The times a run compares records with (ISO, as the table stores them)."""

    stale_cutoff: str  # pending since before this: stale
    fail_cutoff: str  # received before this: failing it is due
    max_requeues: int


def utc_now() -> datetime:
    """The run's clock (one name, so tests can set it for a whole handler invocation)."""
    return datetime.now(UTC)


def stale_window(settings: ReconcilerSettings) -> timedelta:
    """How long after its ``pending_since`` a record is listed as stale (the bound less the slack)."""
    return timedelta(seconds=settings.stale_after_seconds * (1 - JITTER_SHARE))


def bounds(settings: ReconcilerSettings, now: datetime) -> Bounds:
    return Bounds(
        stale_cutoff=iso_millis(now - stale_window(settings)),
        fail_cutoff=iso_millis(now - timedelta(seconds=settings.fail_after_seconds)),
        max_requeues=settings.max_requeues,
    )


def decide(record: dict[str, Any] | None, limits: Bounds) -> Action:
    """What to do with a record the pending index listed as stale (pure: the read decides)."""
    if record is None:
        return Action.SKIP
    since = record.get(tables.PENDING_SINCE)
    status = record.get("status")
    if status == Status.FAILED.value and record.get("failed_by") == RECONCILER_FAILED_BY and since:
        return Action.NOTIFY
    if status != Status.RECEIVED.value or since is None or str(since) >= limits.stale_cutoff:
        return Action.SKIP
    if str(record.get("timestamp", "")) < limits.fail_cutoff:
        return Action.FAIL
    seen_by_detector = int(record.get("processing_attempts") or 0) > 0
    if not seen_by_detector and int(record.get("requeue_count") or 0) < limits.max_requeues:
        return Action.REQUEUE
    return Action.WAIT


def failure_reason(record: dict[str, Any]) -> str:
    requeues = int(record.get("requeue_count") or 0)
    return (
        f"not processed: still RECEIVED after {requeues} re-enqueues by the reconciler "
        f"(received {record.get('timestamp')})"
    )


def run(now: datetime | None = None, remaining_ms: Callable[[], int] | None = None) -> RunResult:
    """One reconciliation pass over at most ``batch_limit`` stale pending records."""
    settings = reconciler_settings()
    now = now or utc_now()
    limits = bounds(settings, now)
    per_shard = max(1, math.ceil(settings.batch_limit / tables.PENDING_INDEX_SHARDS))
    store = transactions.store()
    result = RunResult()
    reserve = min(RESERVED_MILLISECONDS, remaining_ms() // 4) if remaining_ms is not None else 0
    keys = store.stale_pending(limits.stale_cutoff, per_shard)[: settings.batch_limit]
    for key in keys:
        if remaining_ms is not None and remaining_ms() < reserve:
            result.out_of_time = True
            logger.warning("run ends early to finish in time; the next run continues")
            break
        try:
            record = store.get_record(*key)
            action = decide(record, limits)
            if action in (Action.REQUEUE, Action.WAIT, Action.FAIL):
                result.stale += 1
            action = _act(action, key, record or {}, now, settings)
        except Exception as exc:
            # One record's failure must not stop the others; the run reports it and fails.
            logger.exception("could not reconcile a stale record", extra={"transaction_id": key[0]})
            result.errors.append(f"{key[0]}: {type(exc).__name__}")
            continue
        result.actions[action] += 1
    return result


def _act(
    action: Action, key: tuple[str, str], record: dict[str, Any], now: datetime, settings: ReconcilerSettings
) -> Action:
    store = transactions.store()
    since, at = str(record.get(tables.PENDING_SINCE)), iso_millis(now)
    if action is Action.REQUEUE:
        try:
            message = message_from_record(record)
        except (KeyError, ValueError, TypeError, ArithmeticError):
            logger.warning("stale record cannot be rebuilt as a message", extra={"transaction_id": key[0]})
            reason = "not processed: the record cannot be rebuilt as a queue message"
            return _fail(key, record, since, reason, at, settings)
        queue.send_transaction(message, settings.transaction_queue_url, queues.ORIGIN_RECONCILER)
        if not store.note_requeued(key, since, at):
            return Action.SKIP  # another run counted it, or the record was scored meanwhile
        logger.info("stale RECEIVED transaction re-enqueued", extra={"transaction_id": key[0]})
        return Action.REQUEUE
    if action is Action.WAIT:
        # Listed again exactly when failing it is due (not every run until then).
        received = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        due = received + timedelta(seconds=settings.fail_after_seconds) - stale_window(settings)
        moved = store.move_stale_clock(key, since, iso_millis(max(due, now)))
        return Action.WAIT if moved else Action.SKIP
    if action is Action.FAIL:
        return _fail(key, record, since, failure_reason(record), at, settings)
    if action is Action.NOTIFY:
        _notify(key, record, str(record.get("failure_reason")), settings)
        return Action.NOTIFY
    return Action.SKIP


def _fail(
    key: tuple[str, str],
    record: dict[str, Any],
    since: str,
    reason: str,
    at: str,
    settings: ReconcilerSettings,
) -> Action:
    if not transactions.store().fail_stale(key, since, reason, at):
        return Action.SKIP
    logger.warning("stale RECEIVED transaction recorded as FAILED", extra={"transaction_id": key[0]})
    _notify(key, record, str(record.get("last_error") or reason), settings)
    return Action.FAIL


def _notify(key: tuple[str, str], record: dict[str, Any], reason: str, settings: ReconcilerSettings) -> None:
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
    alerts.publish_ops_notice(notice, settings.ops_alert_topic_arn)
    transactions.store().clear_pending(key)

"""Reconciler (issue 12 item 2): no transaction stays RECEIVED forever, and nothing is scanned.

A record whose message was never sent (the enqueue failed after the write and the client never
retried) is re-enqueued once stale, at most ``RECONCILER_MAX_REQUEUES`` times, then FAILED with a
reason and one ops notice. Records leave the sparse pending index with every transition out of
RECEIVED, so the reconciler reads only what is pending.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tap_contract import queues, tables
from tap_pipeline import reconcile
from tap_pipeline.reconcile import Action, decide
from tap_testing.backend import UnreachableSns, transaction
from tests.unit.functions.conftest import emitted_metrics

STALE = timedelta(seconds=301)  # just past the backend's STALE_RECEIVED_AFTER_SECONDS (300)
FAIL_AFTER = timedelta(seconds=2700)  # the backend's STALE_RECEIVED_FAIL_AFTER_SECONDS


@pytest.fixture
def lost_enqueue(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The validator's SendMessage fails (its record stays RECEIVED); the reconciler's goes through."""
    from tap_pipeline.data import queue

    real_send = queue.send_transaction

    def send(message: Any, queue_url: str, origin: str) -> None:
        if origin == queues.ORIGIN_INTAKE:
            raise ConnectionError("validator died between the write and the send")
        real_send(message, queue_url, origin)

    monkeypatch.setattr(queue, "send_transaction", send)


def _received(pipeline: Any, transaction_id: str) -> tuple[dict[str, Any], datetime]:
    response = pipeline.post(transaction(transaction_id=transaction_id))
    assert response["statusCode"] == 503  # the client got an error and (here) never retries
    record = pipeline.record(transaction_id)
    assert record["status"] == "RECEIVED"
    return record, datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


def _received_at(pipeline: Any, transaction_id: str) -> datetime:
    return datetime.fromisoformat(pipeline.record(transaction_id)["timestamp"].replace("Z", "+00:00"))


def _queued_ids(pipeline: Any) -> list[tuple[str, str]]:
    messages = pipeline.drain(pipeline.queue_url)
    return [
        (json.loads(m["Body"])["transaction_id"], m["MessageAttributes"]["origin"]["StringValue"])
        for m in messages
    ]


def test_a_received_record_carries_the_pending_index_keys_until_it_is_scored(pipeline):
    assert pipeline.post(transaction(transaction_id="pending-1"))["statusCode"] == 202
    record = pipeline.record("pending-1")
    assert record[tables.PENDING_SHARD].startswith("pending#")
    assert record[tables.PENDING_SINCE] == record["timestamp"]

    pipeline.run_detector()

    scored = pipeline.record("pending-1")
    assert scored["status"] == "CLEARED"
    assert tables.PENDING_SHARD not in scored and tables.PENDING_SINCE not in scored


def test_a_dead_lettered_record_leaves_the_pending_index(pipeline):
    assert pipeline.post(transaction(transaction_id="pending-2"))["statusCode"] == 202
    message = pipeline.drain(pipeline.queue_url)[0]
    pipeline.run_failed_handler([message])

    failed = pipeline.record("pending-2")
    assert failed["status"] == "FAILED"
    assert tables.PENDING_SHARD not in failed and tables.PENDING_SINCE not in failed


def test_a_fresh_received_record_is_left_alone(pipeline, lost_enqueue):
    _, received = _received(pipeline, "fresh-1")

    result = reconcile.run(now=received + timedelta(seconds=60))

    assert result.stale == 0 and result.actions[Action.REQUEUE] == 0
    assert _queued_ids(pipeline) == []


def test_a_stale_received_record_is_requeued_then_scored_by_the_detector(pipeline, lost_enqueue):
    _, received = _received(pipeline, "stale-1")

    result = reconcile.run(now=received + STALE)

    assert result.stale == 1 and result.actions[Action.REQUEUE] == 1 and not result.errors
    messages = pipeline.drain(pipeline.queue_url)
    assert [json.loads(m["Body"])["transaction_id"] for m in messages] == ["stale-1"]
    assert messages[0]["MessageAttributes"]["origin"]["StringValue"] == queues.ORIGIN_RECONCILER
    record = pipeline.record("stale-1")
    assert record["requeue_count"] == 1
    assert record[tables.PENDING_SINCE] > record["timestamp"]  # its stale clock restarted

    pipeline.run_detector(messages)

    assert pipeline.record("stale-1")["status"] == "CLEARED"
    assert reconcile.run(now=received + 10 * STALE).stale == 0


def test_a_requeued_record_is_not_requeued_again_within_the_stale_period(pipeline, lost_enqueue):
    _, received = _received(pipeline, "stale-2")
    assert reconcile.run(now=received + STALE).actions[Action.REQUEUE] == 1

    again = reconcile.run(now=received + STALE + timedelta(seconds=60))

    assert again.stale == 0
    assert _queued_ids(pipeline) == [("stale-2", queues.ORIGIN_RECONCILER)]


def _requeue_until_spent(pipeline: Any, transaction_id: str, received: datetime) -> datetime:
    """Three stale runs re-enqueue (each message lost again), the fourth finds the re-enqueues spent."""
    at = received
    for _ in range(3):  # RECONCILER_MAX_REQUEUES
        at += STALE
        assert reconcile.run(now=at).actions[Action.REQUEUE] == 1
        assert _queued_ids(pipeline) == [(transaction_id, queues.ORIGIN_RECONCILER)]
    at += STALE
    assert reconcile.run(now=at).actions[Action.WAIT] == 1
    return at


def test_requeues_are_bounded_then_the_record_is_failed_only_when_failing_is_due_with_one_ops_notice(
    pipeline, lost_enqueue
):
    _, received = _received(pipeline, "stale-3")
    at = _requeue_until_spent(pipeline, "stale-3", received)

    # Waiting: not listed again (no reads) until failing it is due.
    assert reconcile.run(now=at + STALE).stale == 0
    assert reconcile.run(now=received + FAIL_AFTER - timedelta(seconds=1)).stale == 0
    result = reconcile.run(now=received + FAIL_AFTER + timedelta(seconds=1))

    assert result.actions[Action.FAIL] == 1
    record = pipeline.record("stale-3")
    assert record["status"] == "FAILED"
    assert record["failed_by"] == "reconciler"
    assert "still RECEIVED after 3 re-enqueues" in record["failure_reason"]
    assert tables.PENDING_SHARD not in record
    notices = pipeline.published(pipeline.ops_capture_url)
    assert [(n["transaction_id"], n["outcome"], n["source"]) for n in notices] == [
        ("stale-3", "failed", "reconciler")
    ]
    assert reconcile.run(now=received + 10 * FAIL_AFTER).stale == 0
    assert pipeline.published(pipeline.ops_capture_url) == []
    assert pipeline.get("stale-3")["json"]["failure_reason"] == record["failure_reason"]


def test_a_backlogged_message_is_never_failed_while_the_queue_could_still_deliver_it(pipeline):
    """The detector is stalled: the message waits in the queue. Re-enqueues are bounded, and the
    record is not FAILED before every message sent for it has used up the queue's delivery budget,
    so the detector's late verdict still lands."""
    assert pipeline.post(transaction(transaction_id="backlog-1"))["statusCode"] == 202
    received = _received_at(pipeline, "backlog-1")
    at = received
    for _ in range(4):
        at += STALE
        reconcile.run(now=at)
    assert pipeline.record("backlog-1")["requeue_count"] == 3
    reconcile.run(now=received + FAIL_AFTER - timedelta(seconds=1))
    assert pipeline.record("backlog-1")["status"] == "RECEIVED"

    pipeline.run_detector()  # the backlog drains: original + 3 duplicates, one verdict

    assert pipeline.record("backlog-1")["status"] == "CLEARED"
    assert reconcile.run(now=received + 2 * FAIL_AFTER).stale == 0


def test_a_record_the_detector_has_seen_is_left_to_the_queue_and_failed_with_its_last_error(
    pipeline, monkeypatch
):
    from tap_pipeline.data import fraud_state

    assert pipeline.post(transaction(transaction_id="seen-1"))["statusCode"] == 202
    received = _received_at(pipeline, "seen-1")
    message = pipeline.drain(pipeline.queue_url)[0]

    def failing_read(self: Any, message: Any) -> Any:
        raise TimeoutError("fraud state read timed out")

    monkeypatch.setattr(fraud_state.FraudState, "card_history", failing_read)
    pipeline.run_detector([message])  # fails: the record notes the error, SQS will retry the message

    first = reconcile.run(now=received + STALE)
    assert first.actions[Action.WAIT] == 1 and first.actions[Action.REQUEUE] == 0
    assert pipeline.queue_depth(pipeline.queue_url) == 0  # no duplicate: the queue owns its message
    result = reconcile.run(now=received + FAIL_AFTER + timedelta(seconds=1))

    assert result.actions[Action.FAIL] == 1
    record = pipeline.record("seen-1")
    assert record["failure_reason"] == "TimeoutError: fraud state read timed out"
    (notice,) = pipeline.published(pipeline.ops_capture_url)
    assert notice["reason"] == record["failure_reason"]


def test_a_failed_notice_keeps_the_record_in_the_index_and_the_next_run_sends_it(
    pipeline, lost_enqueue, monkeypatch
):
    from tap_pipeline.data import clients

    _, received = _received(pipeline, "stale-4")
    _requeue_until_spent(pipeline, "stale-4", received)
    real_sns = clients.sns()
    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())

    at = received + FAIL_AFTER + timedelta(seconds=1)
    broken = reconcile.run(now=at)

    assert broken.errors and pipeline.record("stale-4")["status"] == "FAILED"
    assert pipeline.record("stale-4")[tables.PENDING_SHARD]  # still listed: a notice is owed

    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    healed = reconcile.run(now=at + STALE)

    assert healed.actions[Action.NOTIFY] == 1 and not healed.errors
    assert [n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url)] == ["stale-4"]
    assert tables.PENDING_SHARD not in pipeline.record("stale-4")


def test_a_verdict_between_the_read_and_the_count_makes_the_requeue_count_nothing(pipeline, lost_enqueue):
    from tap_pipeline.data import transactions

    record, received = _received(pipeline, "race-1")
    reconcile.run(now=received + STALE)  # re-enqueued once
    pipeline.run_detector()  # scored
    since = record[tables.PENDING_SINCE]

    assert (
        transactions.store().note_requeued(("race-1", record["timestamp"]), since, "2099-01-01T00:00:00.000Z")
        is False
    )
    assert transactions.store().fail_stale(("race-1", record["timestamp"]), since, "x", "2099") is False
    assert pipeline.record("race-1")["status"] == "CLEARED"


def test_the_reconciler_queries_the_pending_index_and_never_scans(pipeline, lost_enqueue, api_calls):
    for n in range(5):
        _received(pipeline, f"scan-{n}")
    api_calls.clear()

    result = reconcile.run(now=datetime.now(UTC) + STALE)

    assert result.actions[Action.REQUEUE] == 5
    assert api_calls["dynamodb.Scan"] == 0
    assert api_calls["dynamodb.Query"] == tables.PENDING_INDEX_SHARDS
    assert api_calls["sqs.SendMessage"] == 5


def test_a_run_handles_at_most_its_batch_limit_spread_over_the_shards(pipeline, lost_enqueue, monkeypatch):
    from tap_pipeline import settings

    monkeypatch.setenv("RECONCILER_BATCH_LIMIT", "5")
    settings.clear_cache()
    for n in range(24):
        _received(pipeline, f"limit-{n}")

    later = datetime.now(UTC) + STALE
    handled = 0
    while handled < 24:
        step = reconcile.run(now=later).actions[Action.REQUEUE]
        assert 0 < step <= 5
        handled += step
    assert sorted(t for t, _ in _queued_ids(pipeline)) == sorted(f"limit-{n}" for n in range(24))


def test_handler_emits_the_stale_metric_and_fails_the_run_when_a_record_could_not_be_handled(
    pipeline, lost_enqueue, monkeypatch, capsys
):
    from tap_pipeline.data import clients
    from tap_pipeline.handlers import reconciler

    _received(pipeline, "handler-1")
    monkeypatch.setattr(reconcile, "utc_now", lambda: datetime.now(UTC) + STALE)
    capsys.readouterr()

    summary = pipeline.run_reconciler()

    assert summary["requeued"] == 1 and summary["stale"] == 1
    emitted = emitted_metrics(capsys.readouterr().out)
    assert emitted.get("StaleReceivedRecords") == 1
    assert emitted.get("ReconciledTransaction") == 1

    real_sqs = clients.sqs()

    class BrokenSqs:
        def send_message(self, **kwargs: Any) -> Any:
            raise real_sqs.exceptions.QueueDoesNotExist({"Error": {"Code": "Throttling"}}, "SendMessage")

    monkeypatch.setattr(clients, "sqs", lambda: BrokenSqs())
    monkeypatch.setattr(reconcile, "utc_now", lambda: datetime.now(UTC) + 3 * STALE)
    with pytest.raises(reconciler.ReconcileIncomplete, match="1 stale records"):
        pipeline.run_reconciler()
    assert pipeline.record("handler-1")["requeue_count"] == 1  # a failed send counts nothing


OLD = "2026-01-01T00:00:00.000Z"
LIMITS = reconcile.Bounds(
    stale_cutoff="2026-01-01T00:05:00.000Z", fail_cutoff="2025-12-31T23:30:00.000Z", max_requeues=3
)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, Action.SKIP),
        ({"status": "CLEARED", tables.PENDING_SINCE: OLD, "timestamp": OLD}, Action.SKIP),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:10:00.000Z", "timestamp": OLD},
            Action.SKIP,
        ),
        ({"status": "RECEIVED", "timestamp": OLD}, Action.SKIP),
        ({"status": "RECEIVED", tables.PENDING_SINCE: OLD, "timestamp": OLD}, Action.REQUEUE),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: OLD, "timestamp": OLD, "requeue_count": 2},
            Action.REQUEUE,
        ),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: OLD, "timestamp": OLD, "requeue_count": 3},
            Action.WAIT,
        ),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: OLD, "timestamp": OLD, "processing_attempts": 1},
            Action.WAIT,
        ),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: OLD, "timestamp": "2025-12-31T23:00:00.000Z"},
            Action.FAIL,
        ),
        ({"status": "FAILED", "failed_by": "reconciler", tables.PENDING_SINCE: OLD}, Action.NOTIFY),
        ({"status": "FAILED", tables.PENDING_SINCE: OLD}, Action.SKIP),
    ],
)
def test_decide(record, expected):
    assert decide(record, LIMITS) is expected


def test_a_record_pending_for_exactly_one_schedule_period_is_stale_despite_jitter(pipeline):
    """The schedule's period equals the stale bound: the run one period later must see the record."""
    from tap_pipeline.settings import reconciler_settings

    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    record = {"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:00:00.500Z", "timestamp": OLD}
    assert decide(record, reconcile.bounds(reconciler_settings(), now)) is Action.REQUEUE


def test_a_run_stops_starting_records_when_its_invocation_is_nearly_over(pipeline, lost_enqueue):
    for n in range(3):
        _received(pipeline, f"time-{n}")
    budget = iter([60_000, 60_000, 60_000, 9_000, 9_000])  # the start, two records, then too little

    result = reconcile.run(now=datetime.now(UTC) + STALE, remaining_ms=lambda: next(budget))

    assert result.out_of_time and result.actions[Action.REQUEUE] == 2
    assert reconcile.run(now=datetime.now(UTC) + STALE).actions[Action.REQUEUE] == 1

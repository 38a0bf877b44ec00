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


def test_requeues_are_bounded_then_the_record_is_failed_with_a_reason_and_one_ops_notice(
    pipeline, lost_enqueue
):
    _, received = _received(pipeline, "stale-3")
    at = received
    for _ in range(3):  # RECONCILER_MAX_REQUEUES; each message is lost again (drained, never scored)
        at += STALE
        assert reconcile.run(now=at).actions[Action.REQUEUE] == 1
        assert _queued_ids(pipeline) == [("stale-3", queues.ORIGIN_RECONCILER)]

    at += STALE
    result = reconcile.run(now=at)

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
    assert reconcile.run(now=at + 10 * STALE).stale == 0
    assert pipeline.published(pipeline.ops_capture_url) == []
    assert pipeline.get("stale-3")["json"]["failure_reason"] == record["failure_reason"]


def test_a_failed_notice_keeps_the_record_in_the_index_and_the_next_run_sends_it(
    pipeline, lost_enqueue, monkeypatch
):
    from tap_pipeline.data import clients

    _, received = _received(pipeline, "stale-4")
    at = received
    for _ in range(3):
        at += STALE
        reconcile.run(now=at)
    pipeline.drain(pipeline.queue_url)
    real_sns = clients.sns()
    monkeypatch.setattr(clients, "sns", lambda: UnreachableSns())

    at += STALE
    broken = reconcile.run(now=at)

    assert broken.errors and pipeline.record("stale-4")["status"] == "FAILED"
    assert pipeline.record("stale-4")[tables.PENDING_SHARD]  # still listed: a notice is owed

    monkeypatch.setattr(clients, "sns", lambda: real_sns)
    healed = reconcile.run(now=at + STALE)

    assert healed.actions[Action.NOTIFY] == 1 and not healed.errors
    assert [n["transaction_id"] for n in pipeline.published(pipeline.ops_capture_url)] == ["stale-4"]
    assert tables.PENDING_SHARD not in pipeline.record("stale-4")


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

    monkeypatch.setenv("RECONCILER_BATCH_LIMIT", "8")  # one per shard
    settings.clear_cache()
    for n in range(24):
        _received(pipeline, f"limit-{n}")

    first = reconcile.run(now=datetime.now(UTC) + STALE)

    assert first.actions[Action.REQUEUE] <= tables.PENDING_INDEX_SHARDS
    handled = first.actions[Action.REQUEUE]
    later = datetime.now(UTC) + STALE
    while handled < 24:
        step = reconcile.run(now=later).actions[Action.REQUEUE]
        assert step > 0
        handled += step
    assert sorted(t for t, _ in _queued_ids(pipeline)) == sorted(f"limit-{n}" for n in range(24))


def test_handler_emits_the_stale_metric_and_fails_the_run_when_a_record_could_not_be_handled(
    pipeline, lost_enqueue, monkeypatch, capsys
):
    from tap_pipeline.data import clients
    from tap_pipeline.handlers import reconciler

    _received(pipeline, "handler-1")
    monkeypatch.setattr(reconcile, "datetime", _FrozenDatetime(datetime.now(UTC) + STALE))
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
    monkeypatch.setattr(reconcile, "datetime", _FrozenDatetime(datetime.now(UTC) + 3 * STALE))
    with pytest.raises(reconciler.ReconcileIncomplete, match="1 stale records"):
        pipeline.run_reconciler()
    assert pipeline.record("handler-1")["requeue_count"] == 1  # a failed send counts nothing


class _FrozenDatetime:
    """``datetime`` as reconcile sees it, with ``now`` fixed (the handler takes no clock argument)."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self, tz: Any = None) -> datetime:
        return self._moment


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, Action.SKIP),
        ({"status": "CLEARED", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z"}, Action.SKIP),
        ({"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:10:00.000Z"}, Action.SKIP),
        ({"status": "RECEIVED"}, Action.SKIP),
        ({"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z"}, Action.REQUEUE),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z", "requeue_count": 2},
            Action.REQUEUE,
        ),
        (
            {"status": "RECEIVED", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z", "requeue_count": 3},
            Action.FAIL,
        ),
        (
            {"status": "FAILED", "failed_by": "reconciler", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z"},
            Action.NOTIFY,
        ),
        ({"status": "FAILED", tables.PENDING_SINCE: "2026-01-01T00:00:00.000Z"}, Action.SKIP),
    ],
)
def test_decide(record, expected):
    assert decide(record, cutoff="2026-01-01T00:05:00.000Z", max_requeues=3) is expected

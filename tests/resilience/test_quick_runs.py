"""The quick versions of every resilience part, asserting the invariants (never timings).

Each test starts its own local pipeline on free loopback ports and prints its figures.
"""

from __future__ import annotations

import pytest

from resilience import card_data, faults_run, fuzz, load, recovery


def test_fuzzing_from_the_contract_no_5xx_every_4xx_explained_no_trace(show):
    result = fuzz.run(300)
    show("fuzz", result.lines())
    assert result.cases == 300
    assert result.by_status.get(202, 0) > 0  # some generated requests were valid and accepted
    assert result.server_errors == []
    assert result.unexplained_4xx == []
    assert result.traces_of_rejected == []


def test_faults_lose_nothing_and_duplicate_nothing(show):
    result = faults_run.run(100, rate=0.05)
    show("faults", result.lines())
    report = result.conservation
    assert sum(result.faults.values()) > 0
    assert result.refused == {}
    assert report.lost == []
    assert report.not_final == []
    assert report.failed_without_reason == []
    assert report.flagged_without_alert == []
    assert not any(report.queued.values())
    assert report.duplicates == []
    if report.duplicate_alerts:
        # Known limit (resilience/README.md, finding 1): a fraud-detector worker killed after SNS
        # accepted the Publish but before Powertools marked the idempotency record COMPLETED
        # publishes the alert again on retry (SNS standard topics cannot deduplicate). Tolerated
        # only for alerts of a batch whose detector died; any other duplicate fails.
        unexplained = [
            tid
            for tid in report.duplicate_alerts
            if not any(
                kind in ("worker_crash", "timeout") and "fraud-detector" in where
                for kind, _, where in (a.partition("@") for a in result.attributed.get(tid, []))
            )
        ]
        assert unexplained == [], f"duplicate alerts not explained by a killed detector: {unexplained}"
        pytest.xfail(f"duplicate fraud alert after a killed detector: {result.notes}")


def test_issue12_lost_sends_to_clients_that_never_retry_are_finished_by_the_reconciler(show):
    """The validator's send is lost after the record was written: half the validators are killed
    mid-send (the client gets a 502), half answer 503; each client walks away. The reconciler
    re-enqueues; every one is scored, nothing is lost or doubled, and nothing that was sent normally
    was touched by the reconciler."""
    result = faults_run.run(40, rate=0.0, invocation_rate=0.0, lost_enqueue_rate=0.3)
    show("lost enqueues", result.lines())
    report = result.conservation
    assert len(result.walked_away) == result.faults["lost_enqueue"] > 0
    assert 0 < result.killed_validators < len(result.walked_away)
    assert result.refused == {}
    assert report.lost == [] and report.not_final == []
    assert report.duplicates == [] and report.duplicate_alerts == []
    assert report.flagged_without_alert == []
    assert not any(report.queued.values())
    by_id = {str(r["transaction_id"]): r for r in result.records}
    assert {by_id[tid]["status"] for tid in result.walked_away} <= {"CLEARED", "FLAGGED"}
    assert all(int(by_id[tid].get("requeue_count", 0)) >= 1 for tid in result.walked_away)
    untouched = set(by_id) - set(result.walked_away)
    assert not [tid for tid in untouched if by_id[tid].get("requeue_count") or by_id[tid].get("failed_by")]


def test_issue12_without_the_reconciler_the_same_run_leaves_them_received(show):
    """The check above can fail: with the reconciler's schedule switched off, the walked-away
    transactions stay RECEIVED and are reported lost."""
    result = faults_run.run(30, rate=0.0, invocation_rate=0.0, lost_enqueue_rate=0.3, reconciler_seconds=1e6)
    show("lost enqueues, no reconciler", result.lines())
    assert result.walked_away
    assert result.conservation.not_final == result.conservation.lost == sorted(result.walked_away)


def test_bounded_load_conserves_every_transaction(show):
    result = load.run(seconds=10, rate=10)
    show("load", result.lines())
    assert result.sent > 0
    assert result.conservation.ok, result.conservation.lines()


def test_no_pan_or_cvv_anywhere(show):
    findings, sent, accepted = card_data.run(12)
    show("card data", [f"sent {sent}, accepted {accepted}", f"scanned {findings.places}"])
    assert accepted == sent
    assert {"table item", "queue message to tap-fraud-detector-local", "file line"} <= set(findings.places)
    assert findings.pans == []
    assert findings.cvvs == []


def test_parked_messages_are_redriven_and_replay_keeps_one_final_state_and_one_alert(show):
    result = recovery.run()
    show("recovery", result.lines())
    assert result.parked == result.moved_first > 0
    assert result.transactions_idempotent
    assert result.after_first["poison_records"] == 1
    assert result.idempotent  # ops notices and poison records too: a redrive's new message ids change nothing
    assert (
        result.after_first["fraud_alerts"] == 1
    )  # the alert owed since the SNS outage, from the plain redrive
    assert result.alert_recovered  # re-scoring the parked message twice sends no second alert

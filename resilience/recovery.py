"""Recovery: dead letters parked while a dependency was down are replayed with the documented command.

Scenario (all real pipeline behaviour, no message is planted where the pipeline would not put it):
SNS is failing (every Publish answered `Throttled`/`InternalError` by the fault proxy), so a
flagged transaction cannot get its alert out and a poison message cannot get its ops notice out;
both go transaction queue -> transaction DLQ -> failed handler -> parking DLQ. Then the cause is
fixed (the fault rate drops to 0) and `python -m tap_local redrive --from parking` moves them back.
Replay is then done a second time with the same bodies (an operator running the command twice,
or a crash mid-redrive) to show what a replay of already-processed messages changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from resilience import harness
from tap_contract.api import FINAL_STATUSES
from tap_local.faults import FaultPlan
from tap_local.pipeline import REPO_ROOT, LocalPipeline
from tap_local.scenarios import DEFAULT_MERCHANT, STRICT_MERCHANT, transaction

# tap_pipeline.failures.POISON_PREFIX, not imported: the runner stays out of the function package
# (importing it would initialise Powertools in this process with the runner's environment).
POISON_PREFIX = "sqs-body#"


@dataclass
class RecoveryResult:
    parked: int = 0
    moved_first: int = 0
    moved_replay: int = 0
    after_first: dict[str, Any] = field(default_factory=dict)
    after_replay: dict[str, Any] = field(default_factory=dict)
    after_alert_replay: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def transactions_idempotent(self) -> bool:
        """The invariant: one final state per transaction and no second fraud alert after a replay."""
        first, again = self.after_first, self.after_replay
        return (
            bool(first)
            and first["records"] == again["records"]
            and all(len(states) == 1 for states in again["records"].values())
            and first["fraud_alerts"] == again["fraud_alerts"]
        )

    @property
    def idempotent(self) -> bool:
        """Everything, including ops notices and poison-message records, unchanged by a replay."""
        return bool(self.after_first) and self.after_first == self.after_replay

    def lines(self) -> list[str]:
        return [
            f"messages parked while SNS was failing: {self.parked}",
            f"redrive --from parking moved:          {self.moved_first}",
            f"state after redrive:                   {json.dumps(self.after_first, sort_keys=True)}",
            f"replayed again (same bodies):          {self.moved_replay}",
            f"state after replay:                    {json.dumps(self.after_replay, sort_keys=True)}",
            "replay idempotent for transactions (one final state, no 2nd alert): "
            + ("yes" if self.transactions_idempotent else "NO"),
            "replay idempotent for everything (ops notices, poison records too):  "
            + ("yes" if self.idempotent else "NO (see findings)"),
            "flagged transaction's parked message replayed twice to the fraud detector"
            " (--to transaction-queue):",
            f"  state after:                         {json.dumps(self.after_alert_replay, sort_keys=True)}",
            f"  missed fraud alert now delivered exactly once: {'yes' if self.alert_recovered else 'NO'}",
            *self.notes,
        ]

    @property
    def alert_recovered(self) -> bool:
        return (
            bool(self.after_alert_replay)
            and self.after_alert_replay["fraud_alerts"] == 1
            and all(len(states) == 1 for states in self.after_alert_replay["records"].values())
        )


def _depth(running: LocalPipeline, url: str) -> int:
    attributes = running.emulator.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _summary(running: LocalPipeline, ids: list[str]) -> dict[str, Any]:
    items = harness.scan(running, "transactions_table_name")
    ops_topic = running.outputs["ops_topic_arn"]
    emails = harness.outbox(running)
    return {
        "records": {
            tid: sorted(str(i.get("status")) for i in items if i["transaction_id"] == tid) for tid in ids
        },
        "poison_records": sum(1 for i in items if str(i["transaction_id"]).startswith(POISON_PREFIX)),
        "fraud_alerts": len(harness.fraud_alerts(running)),
        "ops_notices": sum(1 for e in emails if e["topic"] == ops_topic),
    }


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def _run_cli(running: LocalPipeline, *extra: str) -> int:
    """The documented command, as an operator would run it against the running pipeline."""
    completed = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", "tap_local", "redrive", "--from", "parking", *extra,
         "--outputs", str(running.config.outputs_path)],
        cwd=REPO_ROOT, env={"PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return int(completed.stdout.split()[1])  # "moved N message(s) ..."


def run(timeout: float = 150) -> RecoveryResult:
    result = RecoveryResult()
    plan = FaultPlan(
        rate=1.0, dynamodb_throttling=False, worker_crash=False, timeout=False, duplicate_delivery=False
    )
    with harness.pipeline(faults=plan) as running:
        client = harness.Client(running.outputs)
        flagged = {**transaction(STRICT_MERCHANT, "1500.00"), "transaction_id": harness.new_transaction_id()}
        cleared = {**transaction(DEFAULT_MERCHANT, "10.00"), "transaction_id": harness.new_transaction_id()}
        for body in (flagged, cleared):
            response, _ = client.post(body)
            if response.status_code >= 300:
                result.notes.append(f"POST refused: {response.status_code} {response.text[:200]}")
        sqs = running.emulator.client("sqs")
        sqs.send_message(
            QueueUrl=running.outputs["transaction_queue_url"], MessageBody='{"not": "a transaction"}'
        )
        parking = harness.parking_queue_url(running)
        ids = [flagged["transaction_id"], cleared["transaction_id"]]
        if not _wait(lambda: _depth(running, parking) >= 2, timeout):
            result.notes.append(
                f"only {_depth(running, parking)} message(s) reached parking in {timeout:.0f} s"
            )
        time.sleep(2)  # nothing else in flight
        # Keep copies of what was parked, to replay the same bodies a second time later.
        parked = sqs.receive_message(QueueUrl=parking, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        result.parked = _depth(running, parking)
        plan.rate = 0.0  # the cause is fixed
        result.moved_first = _run_cli(running)
        harness.settle(running, set(ids), timeout=60, require_alerts=False)
        _wait(
            lambda: all(s and s[0] in FINAL_STATUSES for s in _summary(running, ids)["records"].values()), 30
        )
        time.sleep(3)
        result.after_first = _summary(running, ids)
        for message in parked:
            sqs.send_message(QueueUrl=parking, MessageBody=message["Body"])
        result.moved_replay = _run_cli(running)
        harness.settle(running, set(ids), timeout=60, require_alerts=False)
        time.sleep(3)
        result.after_replay = _summary(running, ids)
        flagged_bodies = [m["Body"] for m in parked if flagged["transaction_id"] in m["Body"]]
        for body in flagged_bodies * 2:
            sqs.send_message(QueueUrl=parking, MessageBody=body)
        _run_cli(running, "--to", "transaction-queue")
        harness.settle(running, set(ids), timeout=60)
        _wait(lambda: _summary(running, ids)["fraud_alerts"] >= 1, 30)
        time.sleep(3)
        result.after_alert_replay = _summary(running, ids)
    return result

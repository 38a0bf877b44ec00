"""N transactions through a pipeline injecting faults at a set rate, then the conservation check.

Faults: DynamoDB throttling and SNS publish errors (real AWS error responses from the fault proxy
in front of the emulator), a worker killed mid-batch, an invocation timing out, a batch delivered
twice, and (with ``lost_enqueue_rate``) the validator's send lost after its record was written, to
a client that then walks away instead of retrying: only the reconciler can finish those, and the
conservation check counts them as owed like any accepted transaction. The mix of requests is
ordinary and fraud-flagging traffic (the strict test merchant flags on a single rule), so alerts
are exercised under faults too.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from resilience import harness
from resilience.conservation import ConservationReport, check
from tap_local.faults import FaultPlan
from tap_local.scenarios import DEFAULT_MERCHANT, STRICT_MERCHANT, transaction


@dataclass
class FaultRunResult:
    sent: int
    accepted: int
    refused: dict[int, int]
    client_retries: int
    faults: dict[str, int]
    settle_seconds: float
    # Sends lost after the write, to clients that did not retry: owed, and finished by the reconciler.
    walked_away: list[str]
    killed_validators: int
    conservation: ConservationReport
    # The transactions table as it ended (what the reconciler wrote on each record included).
    records: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # transaction id -> the invocation faults its batches got (only for ids the check reported)
    attributed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.conservation.ok and not self.refused

    def lines(self) -> list[str]:
        return [
            f"transactions sent:           {self.sent}",
            f"owed a verdict:              {self.accepted} (2xx, or a 503 after a written record)",
            f"refused after client retries:{' ' if self.refused else ''} {self.refused or 0}",
            f"client retries (429/5xx):    {self.client_retries}",
            f"lost sends, client walked away: {len(self.walked_away)} "
            f"({self.killed_validators} validators killed mid-send, the rest answered 503)",
            f"faults injected:             {sum(self.faults.values())} {dict(sorted(self.faults.items()))}",
            f"settled in:                  {self.settle_seconds:.1f} s",
            *self.conservation.lines(),
            *self.notes,
        ]


# A schedule this slow never runs within a fault run: the reconciler is off.
RECONCILER_OFF_SECONDS = 1e6


def request_mix(count: int, seed: int) -> list[dict]:
    """~70 % ordinary (clears), ~30 % over the strict merchant's limit (flags)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic mix
    requests_ = []
    for _ in range(count):
        if rng.random() < 0.3:
            body = transaction(STRICT_MERCHANT, "1500.00")
        else:
            body = transaction(DEFAULT_MERCHANT, f"{rng.randint(5, 90)}.{rng.randint(0, 99):02d}")
        # Seeded ids: which sends the plan loses is decided from the id, so a run is reproducible.
        requests_.append({**body, "transaction_id": f"res-{rng.getrandbits(128):032x}"})
    return requests_


def run(
    count: int,
    rate: float = 0.05,
    invocation_rate: float = 0.15,
    seed: int = 5,
    settle_timeout: float = 180,
    lost_enqueue_rate: float = 0.0,
    reconciler_seconds: float | None = None,
) -> FaultRunResult:
    """``reconciler_seconds``: how often the reconciler runs. By default it runs (every second) only
    when sends are lost: in the other runs it would mask a message the pipeline itself dropped,
    which the conservation check must see. A huge value switches it off, to show that the check
    then finds the walked-away transactions stuck in RECEIVED."""
    if reconciler_seconds is None:
        reconciler_seconds = (
            harness.FAULT_RUN_SCHEDULE_SECONDS if lost_enqueue_rate else RECONCILER_OFF_SECONDS
        )
    plan = FaultPlan(
        rate=rate, invocation_rate=invocation_rate, seed=seed, lost_enqueue_rate=lost_enqueue_rate
    )
    with harness.pipeline(faults=plan, schedule_seconds=reconciler_seconds) as running:
        client = harness.Client(running.outputs)
        bodies = request_mix(count, seed)
        accepted: set[str] = set()
        refused: dict[int, int] = {}
        retries = 0
        walked_away: set[str] = set()

        def send(body: dict) -> tuple[str, int, int]:
            # A client whose request hits a lost send takes whatever first answer it gets and walks away.
            attempts = 1 if plan.chooses_lost_enqueue(body["transaction_id"]) else 6
            response, retried = client.post(body, attempts=attempts)
            return body["transaction_id"], response.status_code, retried

        with ThreadPoolExecutor(max_workers=4) as pool:
            for transaction_id, status, attempts in pool.map(send, bodies):
                retries += attempts
                if 200 <= status < 300:
                    accepted.add(transaction_id)
                elif status >= 500 and transaction_id in plan.lost_enqueues:
                    # The record was written before the send was lost: the pipeline owes it a verdict.
                    accepted.add(transaction_id)
                    walked_away.add(transaction_id)
                else:
                    refused[status] = refused.get(status, 0) + 1
        # Without the reconciler the walked-away transactions never settle: wait for the others.
        reconciling = reconciler_seconds < RECONCILER_OFF_SECONDS
        settle_seconds = harness.settle(
            running, accepted if reconciling else accepted - walked_away, settle_timeout
        )
        time.sleep(0.5)
        state = harness.snapshot(running)
        report = check(accepted, state)
        suspects = set(
            report.lost
            + report.duplicates
            + report.duplicate_alerts
            + report.not_final
            + report.flagged_without_alert
        )
        notes = [
            f"  {tid}: in a batch that got fault {kind} ({function})"
            for kind, function, ids in plan.events
            for tid in ids
            if tid in suspects
        ]
        attributed: dict[str, list[str]] = {}
        for kind, function, ids in plan.events:
            for tid in set(ids) & suspects:
                attributed.setdefault(tid, []).append(f"{kind}@{function}")
        return FaultRunResult(
            attributed=attributed,
            notes=notes,
            sent=len(bodies),
            accepted=len(accepted),
            refused=refused,
            client_retries=retries,
            faults=dict(plan.counts),
            settle_seconds=settle_seconds,
            walked_away=sorted(walked_away),
            records=state.transactions,
            killed_validators=sum(1 for tid in walked_away if plan.kills_validator(tid)),
            conservation=report,
        )

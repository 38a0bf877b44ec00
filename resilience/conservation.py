"""The conservation check: nothing accepted is lost, nothing is done twice, nothing is left over.

Pure functions over a `PipelineState` snapshot, so the check itself can be shown to fail on a
planted loss or duplicate (tests/resilience/test_checks_can_fail.py) as well as to pass on a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tap_contract.api import FINAL_STATUSES


@dataclass
class PipelineState:
    """What the pipeline holds after a run: table items, delivered alerts, messages still queued."""

    transactions: list[dict[str, Any]]
    fraud_alerts: list[dict[str, Any]]
    queued: dict[str, int] = field(default_factory=dict)  # queue name -> visible + in flight + delayed


@dataclass
class ConservationReport:
    transactions: int
    final: Counter[str]
    lost: list[str]
    duplicates: list[str]
    duplicate_alerts: list[str]
    flagged_without_alert: list[str]
    alerts_without_flag: list[str]
    failed_without_reason: list[str]
    not_final: list[str]
    queued: dict[str, int]

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.duplicate_alerts
            or self.flagged_without_alert
            or self.alerts_without_flag
            or self.failed_without_reason
            or self.not_final
            or any(self.queued.values())
        )

    @property
    def duplicate_count(self) -> int:
        return len(self.duplicates) + len(self.duplicate_alerts)

    def lines(self) -> list[str]:
        queued = sum(self.queued.values())
        return [
            f"accepted transactions:       {self.transactions}",
            "final states:                " + ", ".join(f"{k} {v}" for k, v in sorted(self.final.items())),
            f"lost (must be 0):            {len(self.lost)}",
            f"duplicates (must be 0):      {self.duplicate_count}"
            f" (records {len(self.duplicates)}, alerts {len(self.duplicate_alerts)})",
            f"flagged without alert:       {len(self.flagged_without_alert)}",
            f"alert without FLAGGED:       {len(self.alerts_without_flag)}",
            f"FAILED without reason:       {len(self.failed_without_reason)}",
            f"records not final:           {len(self.not_final)}",
            f"messages left in queues:     {queued} {self.queued if queued else ''}".rstrip(),
        ]


def check(accepted_ids: set[str], state: PipelineState) -> ConservationReport:
    """Every accepted id in exactly one final state, one alert per FLAGGED, reasons on FAILED."""
    records: dict[str, list[dict[str, Any]]] = {}
    for item in state.transactions:
        records.setdefault(str(item["transaction_id"]), []).append(item)
    alerts = Counter(str(a.get("transaction_id")) for a in state.fraud_alerts)

    lost = sorted(
        tid
        for tid in accepted_ids
        if not any(r.get("status") in FINAL_STATUSES for r in records.get(tid, []))
    )
    duplicates = sorted(tid for tid, items in records.items() if len(items) > 1)
    flagged = {tid for tid, items in records.items() if any(r.get("status") == "FLAGGED" for r in items)}
    final = Counter(str(r.get("status")) for items in records.values() for r in items)
    return ConservationReport(
        transactions=len(accepted_ids),
        final=final,
        lost=lost,
        duplicates=duplicates,
        duplicate_alerts=sorted(tid for tid, n in alerts.items() if n > 1),
        flagged_without_alert=sorted(tid for tid in flagged if alerts[tid] == 0),
        alerts_without_flag=sorted(tid for tid in alerts if tid not in flagged),
        failed_without_reason=sorted(
            tid
            for tid, items in records.items()
            for r in items
            if r.get("status") == "FAILED" and not r.get("failure_reason")
        ),
        not_final=sorted(
            tid for tid, items in records.items() for r in items if r.get("status") not in FINAL_STATUSES
        ),
        queued=dict(state.queued),
    )

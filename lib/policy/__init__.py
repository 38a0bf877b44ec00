"""The security baseline (REQUIREMENTS.md, 'Security baseline the stack must meet') as executable controls.

    report = run_controls(graph)       # graph: lib.graph.StackGraph of the evaluated program
    assert report.passed, report.summary()

Controls live in `controls/`, one module per AWS service (FSBP IDs, `TAP-…` for the rest), waivers
in `waivers.py`. The tests and any command-line runner share this entry point, so both judge the
stack the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lib.graph import StackGraph
from lib.policy.controls import CONTROLS, Control, Violation, controls_by_id
from lib.policy.waivers import WAIVERS, Waiver

__all__ = [
    "CONTROLS",
    "WAIVERS",
    "Control",
    "Report",
    "Violation",
    "WaivedViolation",
    "Waiver",
    "controls_by_id",
    "run_controls",
]


@dataclass(frozen=True)
class WaivedViolation:
    violation: Violation
    waiver: Waiver

    def __str__(self) -> str:
        return f"{self.violation}  -- WAIVED: {self.waiver.justification}"


@dataclass
class Report:
    """What the run found: open violations, waived ones (kept visible), and waivers that matched nothing."""

    violations: list[Violation] = field(default_factory=list)
    waived: list[WaivedViolation] = field(default_factory=list)
    unused_waivers: list[Waiver] = field(default_factory=list)
    controls_run: int = 0

    @property
    def passed(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [
            f"{self.controls_run} controls: {len(self.violations)} violation(s), {len(self.waived)} waived, "
            f"{len(self.unused_waivers)} unused waiver(s)"
        ]
        lines += [f"  VIOLATION {v}" for v in self.violations]
        lines += [f"  {w}" for w in self.waived]
        lines += [
            f"  UNUSED WAIVER [{w.control_id}] {w.resource_type} {w.resource_name!r}"
            for w in self.unused_waivers
        ]
        return "\n".join(lines)


def run_controls(
    graph: StackGraph,
    controls: Sequence[Control] | None = None,
    waivers: Sequence[Waiver] | None = None,
) -> Report:
    """Run the controls (default: all) over the graph and sort each violation into open or waived."""
    controls = CONTROLS if controls is None else controls
    waivers = WAIVERS if waivers is None else waivers
    known = {c.id for c in controls}
    unknown = sorted({w.control_id for w in waivers} - known)
    if unknown:
        raise ValueError(f"waivers name controls that do not exist: {unknown}")
    report = Report(controls_run=len(controls))
    used: set[Waiver] = set()
    for control in controls:
        for violation in control.check(graph):
            waiver = next((w for w in waivers if w.covers(violation)), None)
            if waiver is None:
                report.violations.append(violation)
            else:
                used.add(waiver)
                report.waived.append(WaivedViolation(violation, waiver))
    report.unused_waivers = [w for w in waivers if w not in used]
    return report

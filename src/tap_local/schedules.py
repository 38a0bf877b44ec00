"""EventBridge Scheduler schedules, run locally: one timer thread per schedule the stack defines.

Each timer invokes its target function's workers the way Scheduler invokes Lambda (an event with
no input of ours), at the schedule's own rate or at a compressed interval for tests and fault runs,
as the pollers' retry delay compresses the visibility timeout.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lib.graph import StackGraph
from tap_local.workers import FunctionWorkers, Invocation

SCHEDULE_TYPE = "aws:scheduler/schedule:Schedule"
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    target_arn: str
    interval_seconds: float


def rate_seconds(expression: str) -> float:
    """Seconds between runs of a ``rate(...)`` expression (the only kind the stack uses)."""
    match = _RATE.match(expression)
    if match is None:
        raise ValueError(f"only rate() schedule expressions run locally, not {expression!r}")
    amount, unit = int(match.group(1)), match.group(2).rstrip("s")
    return float(amount * _UNIT_SECONDS[unit])


def schedule_specs(graph: StackGraph, interval_seconds: float | None = None) -> list[ScheduleSpec]:
    """Every enabled schedule of the stack; ``interval_seconds`` replaces each one's own rate."""
    return [
        ScheduleSpec(
            name=s.inputs["name"],
            target_arn=s.inputs["target"]["arn"],
            interval_seconds=interval_seconds or rate_seconds(s.inputs["scheduleExpression"]),
        )
        for s in graph.of_type(SCHEDULE_TYPE)
        if s.inputs.get("state", "ENABLED") == "ENABLED"
    ]


class ScheduleTimer:
    """Invokes ``workers`` every ``spec.interval_seconds`` until stopped (first run after one interval)."""

    def __init__(
        self, spec: ScheduleSpec, workers: FunctionWorkers, report: Callable[[str, Invocation], None]
    ) -> None:
        self.spec = spec
        self._workers = workers
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{spec.name}", daemon=True)
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=max(0.0, timeout))

    def _run(self) -> None:
        while not self._stop.wait(self.spec.interval_seconds):
            try:
                invocation = self._workers.invoke({})
            except Exception as exc:  # a timer that dies silently would stop reconciling for good
                invocation = Invocation()
                invocation.error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            self.runs += 1
            self._report(self.spec.name, invocation)

"""A bounded, self-stopping load on loopback: a fixed offered rate for a fixed time, then conservation.

An open-loop schedule (request i is due at start + i / rate) served by a small thread pool, so a
slow pipeline shows up as latency and a shortfall in achieved rate rather than as a lower offered
rate. Bounded twice: at most `rate * seconds` requests, and nothing is sent after `seconds`.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from resilience import harness
from resilience.conservation import ConservationReport, check
from tap_local.scenarios import DEFAULT_MERCHANT, STRICT_MERCHANT, transaction


@dataclass
class LoadResult:
    seconds: float
    offered_rate: float
    scheduled: int
    sent: int
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    errors: dict[int, int]
    settle_seconds: float
    conservation: ConservationReport
    error_samples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"held for:                    {self.seconds:.1f} s (loopback, self-stopping)",
            f"offered rate:                {self.offered_rate:.1f} req/s",
            f"requests scheduled / sent:   {self.scheduled} / {self.sent}"
            + (
                " (the pipeline could not keep up; the rest were not sent)"
                if self.sent < self.scheduled
                else ""
            ),
            f"achieved rate (2xx):         {self.achieved_rate:.1f} req/s",
            f"latency p50 / p99:           {self.p50_ms:.0f} ms / {self.p99_ms:.0f} ms",
            f"errors (non-2xx):            {sum(self.errors.values())} {self.errors or ''}".rstrip(),
            f"settled in:                  {self.settle_seconds:.1f} s",
            *[f"  {sample}" for sample in self.error_samples],
            *self.conservation.lines(),
        ]


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(seconds: float, rate: float, threads: int = 8, settle_timeout: float = 300) -> LoadResult:
    with harness.pipeline() as running:
        client = harness.Client(running.outputs)
        lock = threading.Lock()
        latencies: list[float] = []
        errors: dict[int, int] = {}
        accepted: set[str] = set()
        error_samples: list[str] = []
        total = int(rate * seconds)
        start = time.monotonic()
        stop_at = start + seconds

        def one(index: int) -> None:
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= stop_at:
                return
            merchant, amount = (
                (STRICT_MERCHANT, "1500.00") if index % 10 == 0 else (DEFAULT_MERCHANT, "19.99")
            )
            body = {**transaction(merchant, amount), "transaction_id": harness.new_transaction_id()}
            began = time.perf_counter()
            response, _ = client.post(body, attempts=1)
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(elapsed)
                if 200 <= response.status_code < 300:
                    accepted.add(body["transaction_id"])
                else:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1
                    if len(error_samples) < 5:
                        error_samples.append(f"{response.status_code} {response.text[:200]} for {body}")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(total)))
        held = min(time.monotonic(), stop_at) - start
        settle_seconds = harness.settle(running, accepted, settle_timeout)
        report = check(accepted, harness.snapshot(running))
        return LoadResult(
            seconds=held,
            offered_rate=rate,
            scheduled=total,
            sent=len(latencies),
            achieved_rate=len(accepted) / held if held else 0.0,
            p50_ms=statistics.median(latencies) if latencies else 0.0,
            p99_ms=_percentile(latencies, 0.99),
            errors=errors,
            settle_seconds=settle_seconds,
            conservation=report,
            error_samples=error_samples,
        )

"""Soak: N transactions through the local pipeline over HTTP, measured per tenth of N.

`python -m bench.soak --transactions N` (`make soak N=...`) starts `python -m tap_local up` as a
user would (its own process tree, free loopback ports, a temporary workdir), or with `--attach`
uses the pipeline `make local` is running. Client threads POST transactions (card tokens from a
seeded pool of repeat customers, lognormal amounts around 40 USD) while at most WINDOW are
unsettled; poller threads GET each accepted transaction until it is final (CLEARED, FLAGGED or
FAILED), as a payment provider polling for results would, so those GETs are part of the load.
WINDOW more than N are sent, so the load does not tail off before the N-th settles. Tenths are
taken in settle order: the k-th tenth is the k-th tenth of N to become final, its settle rate is
its size over the time since the previous tenth's last settle (the first tenth's from its own
first settle, which leaves out start-up and the window's fill), its latency is from POST to the
GET that first saw the final state (polled every POLL_INTERVAL s, so that coarse), and its memory
is the peak resident memory of the pipeline's process tree meanwhile (the sum of every process's
proportional set size, so shared pages count once). At the end: zero lost (every 202
final), zero duplicate alerts (the outbox, per transaction id), the CPU each process of the tree
used per transaction, and, for a pipeline it started, how long SIGTERM took to stop it and
whether any process of its session was left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.common import REPO_ROOT, Mode
from bench.pipeline_process import PipelineProcess, tree_cpu_seconds, tree_memory_mb

CLIENT_THREADS = 8
POLL_THREADS = 4
WINDOW = 200  # unsettled transactions at most: a closed loop, so the settle rate is the throughput
POLL_INTERVAL = 0.25
CARD_POOL = 5_000  # repeat customers: card-scoped fraud state is read and written, not only created
FINAL = frozenset({"CLEARED", "FLAGGED", "FAILED"})
RETRYABLE = frozenset({429, 500, 502, 503, 504})
SEED = 20261201
SETTLE_TIMEOUT = 300.0
# Targets (issue 9), checked by the report: never by a test.
TARGET_EMPTY_RATE = 50.0
TARGET_RATE_RETAINED = 0.8
TARGET_RSS_MB = 1536.0
TARGET_STOP_SECONDS = 5.0
PLOT_NAME = "bench/soak.png"  # relative to the repository root, as BENCHMARKS.md links it


@dataclass
class Tenth:
    index: int
    stored_before: int
    transactions: int
    settle_rate: float
    p50_ms: float
    p99_ms: float
    peak_memory_mb: float


@dataclass
class SoakResult:
    transactions: int
    accepted: int
    rejected: dict[int, int]
    lost: int
    duplicate_alerts: int
    alerts: int
    statuses: dict[str, int]
    seconds: float
    tenths: list[Tenth] = field(default_factory=list)
    stop_seconds: float | None = None  # SIGTERM to exit, for a pipeline the soak started
    processes_left: int | None = None
    workers_per_function: int = 0
    cpu_ms_per_transaction: dict[str, float] = field(default_factory=dict)  # by process role

    @property
    def empty_rate(self) -> float:
        return self.tenths[0].settle_rate if self.tenths else 0.0

    @property
    def last_rate(self) -> float:
        return self.tenths[-1].settle_rate if self.tenths else 0.0

    @property
    def peak_memory_mb(self) -> float:
        return max((t.peak_memory_mb for t in self.tenths), default=0.0)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["tenths"] = [t.__dict__ for t in self.tenths]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoakResult:
        data = dict(data)
        tenths = [Tenth(**t) for t in data.pop("tenths")]
        data["rejected"] = {int(k): v for k, v in data["rejected"].items()}
        return cls(**data, tenths=tenths)


# -- load --------------------------------------------------------------------------------------------


@dataclass
class _Tracked:
    index: int
    transaction_id: str
    posted: float
    settled: float | None = None
    status: str | None = None


class Soak:
    def __init__(self, outputs: dict[str, Any], transactions: int, pipeline_pid: int | None):
        self.url, self.key = outputs["api_url"], outputs["api_key_value"]
        self.merchant = json.loads(outputs["sample_transaction"])["merchant_id"]
        self.total = transactions
        self.to_send = transactions + WINDOW  # the tail keeps the load on until the N-th settles
        self.pipeline_pid = pipeline_pid
        self.random = random.Random(SEED)  # noqa: S311 - seeded test data, not secrets
        self.cards = [f"tok_soak_{self.random.getrandbits(64):016x}" for _ in range(CARD_POOL)]
        self.lock = threading.Lock()
        self.window = threading.BoundedSemaphore(WINDOW)
        self.next_index = 0
        self.tracked: list[_Tracked | None] = [None] * self.to_send
        self.pending: deque[tuple[float, _Tracked]] = deque()
        self.rejected: Counter[int] = Counter()
        self.posting_done = threading.Event()
        self.stop = threading.Event()
        self.peak_memory = [0.0] * 10
        self.settled = 0
        self.cpu_first: dict[int, tuple[str, float]] = {}
        self.cpu_last: dict[int, tuple[str, float]] = {}
        self.tenth_of = lambda index: min(9, index * 10 // max(1, transactions))
        self.run_id = f"{self.random.getrandbits(48):012x}"

    def _body(self, index: int) -> dict[str, Any]:
        with self.lock:
            card = self.random.choice(self.cards)
            cents = int(self.random.lognormvariate(3.6, 0.6) * 100)  # around 40 USD
        return {
            "transaction_id": f"soak-{self.run_id}-{index:07d}",
            "merchant_id": self.merchant,
            "amount": f"{max(cents, 100) // 100}.{max(cents, 100) % 100:02d}",
            "currency": "USD",
            "card": {"token": card},
        }

    def _post(self, session: requests.Session, body: dict[str, Any]) -> int:
        headers = {"content-type": "application/json", "x-api-key": self.key}
        for attempt in range(8):
            response = session.post(self.url, data=json.dumps(body), headers=headers, timeout=120)
            if response.status_code not in RETRYABLE:
                return response.status_code
            time.sleep(min(2.0, 0.1 * 2**attempt))  # same id: the retry is idempotent
        return response.status_code

    def _poster(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            with self.lock:
                index = self.next_index
                if index >= self.to_send:
                    return
                self.next_index += 1
            self.window.acquire()
            body = self._body(index)
            posted = time.monotonic()
            status = self._post(session, body)
            if status != 202:
                with self.lock:
                    self.rejected[status] += 1
                self.window.release()
                continue
            tracked = _Tracked(index, body["transaction_id"], posted)
            with self.lock:
                self.tracked[index] = tracked
                self.pending.append((posted + POLL_INTERVAL, tracked))

    def _poller(self) -> None:
        session = requests.Session()
        headers = {"x-api-key": self.key}
        while not self.stop.is_set():
            with self.lock:
                item = self.pending.popleft() if self.pending else None
            if item is None:
                if self.posting_done.is_set():
                    return
                time.sleep(0.02)
                continue
            due, tracked = item
            if due > time.monotonic():
                time.sleep(min(POLL_INTERVAL, due - time.monotonic()))
            try:
                response = session.get(f"{self.url}/{tracked.transaction_id}", headers=headers, timeout=120)
                status = response.json().get("status") if response.status_code == 200 else None
            except (requests.RequestException, ValueError):
                status = None
            if status in FINAL:
                tracked.settled, tracked.status = time.monotonic(), status
                with self.lock:
                    self.settled += 1
                self.window.release()
            else:
                with self.lock:
                    self.pending.append((time.monotonic() + POLL_INTERVAL, tracked))

    def _sample_memory(self) -> None:
        """Peak resident memory per tenth, and each process's CPU seconds over the run."""
        while self.pipeline_pid is not None:
            with self.lock:
                tenth = self.tenth_of(self.settled)
            self.peak_memory[tenth] = max(self.peak_memory[tenth], tree_memory_mb(self.pipeline_pid))
            for pid, (role, seconds) in tree_cpu_seconds(self.pipeline_pid).items():
                first = self.cpu_first.setdefault(pid, (role, seconds))
                self.cpu_last[pid] = (first[0], seconds)
            if self.stop.wait(1.0):
                return

    def cpu_by_role(self) -> dict[str, float]:
        totals: Counter[str] = Counter()
        for pid, (role, last) in self.cpu_last.items():
            totals[role] += last - self.cpu_first[pid][1]
        return dict(totals)

    def _progress(self, began: float) -> None:
        while not self.stop.wait(1.0):
            settled = self.settled
            width = 40
            filled = int(width * settled / max(1, self.total))
            rate = settled / max(1e-9, time.monotonic() - began)
            print(
                f"\rsoak [{'#' * filled}{'.' * (width - filled)}] {settled}/{self.total} settled"
                f" {rate:.1f} tx/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        print(file=sys.stderr, flush=True)

    def run(self) -> tuple[float, list[_Tracked]]:
        began = time.monotonic()
        helpers = [threading.Thread(target=self._sample_memory, daemon=True)]
        if sys.stderr.isatty() or os.environ.get("SOAK_PROGRESS"):
            helpers.append(threading.Thread(target=self._progress, args=(began,), daemon=True))
        posters = [threading.Thread(target=self._poster) for _ in range(CLIENT_THREADS)]
        pollers = [threading.Thread(target=self._poller) for _ in range(POLL_THREADS)]
        for thread in helpers + posters + pollers:
            thread.start()
        for thread in posters:
            thread.join()
        self.posting_done.set()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        for thread in pollers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        seconds = time.monotonic() - began
        self.stop.set()
        for thread in pollers + helpers:
            thread.join(timeout=5)
        return seconds, [t for t in self.tracked if t is not None]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _tenths(tracked: list[_Tracked], total: int, peak_memory: list[float]) -> list[Tenth]:
    """Tenths in settle order: the k-th tenth is the k-th tenth of N to become final, so its rate
    is the pipeline's throughput while it held k/10 of N (the window's fill is not in it)."""
    settled = sorted((t for t in tracked if t.settled is not None), key=lambda t: t.settled or 0.0)
    tenths: list[Tenth] = []
    previous_end: float | None = None
    size = max(1, total // 10)
    for index in range(10):
        members = settled[index * size : (index + 1) * size if index < 9 else total]
        if not members:
            break
        times = [t.settled or 0.0 for t in members]
        if previous_end is None:  # from the first settle: n - 1 intervals
            rate = (len(members) - 1) / max(1e-9, times[-1] - times[0])
        else:
            rate = len(members) / max(1e-9, times[-1] - previous_end)
        latencies = [((t.settled or 0.0) - t.posted) * 1000 for t in members]
        tenths.append(
            Tenth(
                index=index + 1,
                stored_before=index * size,
                transactions=len(members),
                settle_rate=rate,
                p50_ms=_percentile(latencies, 0.5),
                p99_ms=_percentile(latencies, 0.99),
                peak_memory_mb=peak_memory[index],
            )
        )
        previous_end = times[-1]
    return tenths


def _alerts(outbox: Path, alert_topic: str) -> tuple[int, int]:
    """(alerts, duplicates) in the local outbox, per transaction id."""
    if not outbox.exists():
        return 0, 0
    per_transaction: Counter[str] = Counter()
    for line in outbox.read_text().splitlines():
        record = json.loads(line)
        if record.get("topic") == alert_topic:
            per_transaction[str(json.loads(record["message"]).get("transaction_id"))] += 1
    return sum(per_transaction.values()), sum(n - 1 for n in per_transaction.values())


def run(transactions: int, attach: Path | None = None, workers_per_function: int | None = None) -> SoakResult:
    """One soak, against a pipeline it starts (default) or the one whose outputs file is `attach`."""
    started: PipelineProcess | None = None
    if attach is None:
        started = PipelineProcess(workers_per_function)
        outputs, pid, workdir = started.wait_ready(), started.pid, started.workdir
    else:
        outputs = json.loads(attach.read_text())
        workdir = Path(os.environ.get("TAP_LOCAL_WORKDIR", REPO_ROOT / ".local"))
        pid_file = workdir / "tap_local.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        soak = Soak(outputs, transactions, pid)
        seconds, tracked = soak.run()
        alerts, duplicates = _alerts(workdir / "outbox.jsonl", outputs["alert_topic_arn"])
        result = SoakResult(
            transactions=transactions,
            accepted=len(tracked),
            rejected=dict(soak.rejected),
            lost=sum(1 for t in tracked if t.settled is None),
            duplicate_alerts=duplicates,
            alerts=alerts,
            statuses=dict(Counter(t.status or "not final" for t in tracked)),
            seconds=seconds,
            tenths=_tenths(tracked, transactions, soak.peak_memory),
            cpu_ms_per_transaction={
                role: 1000 * seconds / max(1, len(tracked))
                for role, seconds in sorted(soak.cpu_by_role().items())
            },
            workers_per_function=workers_per_function or int(os.environ.get("TAP_LOCAL_WORKERS", "2")),
        )
    finally:
        if started is not None:
            stop_seconds, left = started.stop()
    if started is not None:
        result.stop_seconds, result.processes_left = stop_seconds, left
    return result


QUICK_TRANSACTIONS = 200  # CI: proves the soak, the plot and the report run; the figures mean nothing


def run_for_mode(mode: Mode) -> SoakResult:
    """`make bench`'s soak: BENCH_SOAK_N transactions (default 100,000) in full mode; in quick mode
    a few, and the plot drawn to a temporary file so that its code runs too."""
    if mode.quick:
        result = run(QUICK_TRANSACTIONS)
        with tempfile.TemporaryDirectory() as scratch:
            plot(result, Path(scratch) / "soak.png")
        return result
    result = run(int(os.environ.get("BENCH_SOAK_N", "100000")))
    (REPO_ROOT / "bench" / "soak-results.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    plot(result, REPO_ROOT / PLOT_NAME)
    return result


# -- report ------------------------------------------------------------------------------------------


def targets(result: SoakResult) -> list[tuple[str, str, bool]]:
    retained = result.last_rate / result.empty_rate if result.empty_rate else 0.0
    rows = [
        (
            f"local settle rate with empty tables >= {TARGET_EMPTY_RATE:.0f} tx/s",
            f"{result.empty_rate:.1f} tx/s",
            result.empty_rate >= TARGET_EMPTY_RATE,
        ),
        (
            f"local settle rate at {result.tenths[-1].stored_before if result.tenths else 0:,} stored "
            f">= {TARGET_RATE_RETAINED:.0%} of the empty-table rate",
            f"{retained:.0%}",
            retained >= TARGET_RATE_RETAINED,
        ),
        (
            f"pipeline process tree resident memory <= {TARGET_RSS_MB:.0f} MB",
            f"{result.peak_memory_mb:.0f} MB",
            0 < result.peak_memory_mb <= TARGET_RSS_MB,
        ),
        (
            "lost transactions = 0, duplicate alerts = 0",
            f"{result.lost}, {result.duplicate_alerts}",
            result.lost == 0 and result.duplicate_alerts == 0,
        ),
    ]
    if result.stop_seconds is not None:
        rows.append(
            (
                f"SIGTERM after the soak: exits within {TARGET_STOP_SECONDS:.0f} s, no process left",
                f"{result.stop_seconds:.1f} s, {result.processes_left} left",
                result.stop_seconds <= TARGET_STOP_SECONDS and result.processes_left == 0,
            )
        )
    return rows


def plot(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stored = [t.stored_before + t.transactions for t in result.tenths]
    figure, rate_axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    rate_axis.plot(
        stored, [t.settle_rate for t in result.tenths], "o-", color="tab:blue", label="settle rate"
    )
    rate_axis.axhline(TARGET_EMPTY_RATE, color="tab:blue", linestyle=":", linewidth=1)
    rate_axis.set_xlabel("transactions stored")
    rate_axis.set_ylabel("settled transactions / s", color="tab:blue")
    rate_axis.set_ylim(bottom=0)
    memory_axis = rate_axis.twinx()
    memory_axis.plot(stored, [t.peak_memory_mb for t in result.tenths], "s-", color="tab:red", label="memory")
    memory_axis.axhline(TARGET_RSS_MB, color="tab:red", linestyle=":", linewidth=1)
    memory_axis.set_ylabel("process tree resident memory, PSS (MB)", color="tab:red")
    memory_axis.set_ylim(bottom=0, top=max(TARGET_RSS_MB * 1.1, result.peak_memory_mb * 1.1))
    rate_axis.set_title(
        f"Local pipeline soak: {result.transactions:,} transactions over HTTP (dotted: targets)"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def render(result: SoakResult, plot_name: str | None) -> list[str]:
    from bench.report import _table, _verdict  # the shared Markdown helpers

    out = [
        "## 4. Local pipeline soak",
        "",
        f"Method: {__doc__.split(chr(10), 2)[2].strip()}".replace("\n", " "),
        "",
        f"This run: {result.transactions:,} transactions (+{WINDOW} tail), {CLIENT_THREADS} POST threads, "
        f"{POLL_THREADS} GET "
        f"threads, window {WINDOW}, {result.workers_per_function} workers per function; "
        f"{result.seconds:.0f} s in all. Accepted {result.accepted:,}; refused "
        f"{sum(result.rejected.values())} {result.rejected or ''}; final states {result.statuses}; "
        f"{result.alerts} fraud alerts.",
        "",
    ]
    out += _table(
        [
            "tenth",
            "stored before",
            "settle rate (tx/s)",
            "p50 POST->final",
            "p99 POST->final",
            "peak memory (tree, PSS)",
        ],
        [
            [
                t.index,
                f"{t.stored_before:,}",
                f"{t.settle_rate:.1f}",
                f"{t.p50_ms:.0f} ms",
                f"{t.p99_ms:.0f} ms",
                f"{t.peak_memory_mb:.0f} MB",
            ]
            for t in result.tenths
        ],
    )
    if result.cpu_ms_per_transaction:
        cpu_total = sum(result.cpu_ms_per_transaction.values())
        out += [
            "",
            f"Where the time goes: CPU per settled transaction by process, over the whole run "
            f"({cpu_total:.1f} ms in all; this machine has {os.cpu_count()} cores, so the CPU-bound "
            f"ceiling is about {1000 * (os.cpu_count() or 1) / max(1e-9, cpu_total):.0f} tx/s, and a single "
            "process, bound to one core by its GIL, caps the rate at 1000 / its ms):",
            "",
            *_table(
                ["process", "CPU ms per transaction", "share"],
                [
                    [role, f"{ms:.1f}", f"{ms / max(1e-9, cpu_total):.0%}"]
                    for role, ms in sorted(result.cpu_ms_per_transaction.items(), key=lambda item: -item[1])
                ],
            ),
        ]
    out += [
        "",
        *_table(["target", "measured", "verdict"], [[n, m, _verdict(ok)] for n, m, ok in targets(result)]),
    ]
    if plot_name:
        out += ["", f"![settle rate and memory against stored transactions]({plot_name})"]
    return [*out, "", ""]


SECTION_BEGIN, SECTION_END = "<!-- soak:begin -->", "<!-- soak:end -->"


def replace_section(document: str, section: list[str]) -> str:
    """BENCHMARKS.md with its soak section replaced (what `make soak` rewrites, nothing else)."""
    block = "\n".join([SECTION_BEGIN, *section, SECTION_END])
    if SECTION_BEGIN in document and SECTION_END in document:
        head, rest = document.split(SECTION_BEGIN, 1)
        return head + block + rest.split(SECTION_END, 1)[1]
    return document.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", "-n", type=int, default=10_000)
    parser.add_argument(
        "--attach", type=Path, help="outputs file of a running `make local` (default: start one)"
    )
    parser.add_argument("--workers", type=int, help="workers per function (default: TAP_LOCAL_WORKERS or 2)")
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="where BENCHMARKS.md and bench/soak.* are written"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("SOAK_PROGRESS", "1")
    result = run(args.transactions, args.attach, args.workers)
    write(result, args.root)
    return 0 if all(ok for _, _, ok in targets(result)) else 1


def write(result: SoakResult, root: Path) -> list[str]:
    """Results JSON, the plot, and the soak section of BENCHMARKS.md under `root`; the section."""
    (root / "bench").mkdir(parents=True, exist_ok=True)
    (root / "bench" / "soak-results.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    plot(result, root / PLOT_NAME)
    section = render(result, PLOT_NAME)
    print("\n".join(section))
    benchmarks = root / "BENCHMARKS.md"
    if benchmarks.exists():
        benchmarks.write_text(replace_section(benchmarks.read_text(), section))
        print(f"soak section written to {benchmarks}")
    return section


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench [--mode quick|full] [--only cold-start]``: run benchmarks, print and write the report.

Full mode writes BENCHMARKS.md at the repo root; quick mode (CI) runs tiny sizes and writes to a
temporary file, because its figures only prove the benchmarks execute. ``--only cold-start`` runs
section 1 alone (a few minutes instead of an hour) and replaces that section, and the cold-start
rows of the summary of targets, in the existing report; the other sections keep the figures of the
full run that wrote them, and section 1 says when and how it was regenerated.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bench import cold_start, cost, cpu, emulators, hot_merchant, report, soak
from bench.common import REPO_ROOT, Mode

T = TypeVar("T")


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence the handlers' JSON logs and EMF metrics (written to fd 1) while a benchmark runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _timed(label: str, timings: dict[str, float], func: Callable[..., T], *args: object) -> T:
    began = time.perf_counter()
    print(f"running {label} ...", file=sys.stderr, flush=True)
    with _quiet_stdout():
        result = func(*args)
    timings[label] = time.perf_counter() - began
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--mode", choices=("quick", "full"), default="full")
    parser.add_argument("--output", type=Path, help="where to write the report (default depends on mode)")
    parser.add_argument("--only", choices=("cold-start",), help="run one benchmark and replace its section")
    args = parser.parse_args(argv)
    mode = Mode(args.mode)
    if args.only == "cold-start":
        return _cold_start_only(mode, args.output)
    began = time.perf_counter()
    timings: dict[str, float] = {}
    results = report.Results(
        mode=mode,
        cold=_timed("cold start", timings, cold_start.run, mode),
        cost=_timed("cost per transaction", timings, cost.run, mode),
        hot=_timed("hot merchant", timings, hot_merchant.run, mode),
        hot_single=_timed("hot merchant (batches of 1)", timings, hot_merchant.run, mode, 1),
        cpu=_timed("handler cpu", timings, cpu.run, mode),
        local=_timed("local soak", timings, soak.run_for_mode, mode),
        emulators=_timed("emulator per-call cost", timings, emulators.run, mode),
        timings=timings,
    )
    results.total_seconds = time.perf_counter() - began
    text = report.render(results)
    if args.output is not None:
        target = args.output
    elif mode.quick:
        target = Path(tempfile.mkstemp(prefix="benchmarks-quick-", suffix=".md")[1])
    else:
        target = REPO_ROOT / "BENCHMARKS.md"
    target.write_text(text)
    print(text)
    print(f"report written to {target}")
    return 0


def _cold_start_only(mode: Mode, output: Path | None) -> int:
    began = time.perf_counter()
    cold = _timed("cold start", {}, cold_start.run, mode)
    note = (
        f"This section was regenerated alone by `python -m bench --mode {mode.name} --only cold-start` "
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M UTC} ({time.perf_counter() - began:.0f} s); the other "
        "sections are from the full run dated above, on the same machine."
    )
    if output is not None:
        target = output
    elif mode.quick:
        target = Path(tempfile.mkstemp(prefix="benchmarks-cold-start-quick-", suffix=".md")[1])
    else:
        target = REPO_ROOT / "BENCHMARKS.md"
    existing = target.read_text() if target.exists() else ""
    if "## 1. Cold start" in existing and "\n## 2. " in existing:
        text = report.replace_cold_section(existing, cold, note)
    else:
        text = "\n".join(report.cold_section(cold, note))
    target.write_text(text)
    print(text)
    print(f"report written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make fraud-eval`: labelled traffic through the real detector; precision/recall/FPR into FRAUD.md.

    python -m fraud_eval [--mode quick|full] [--seeds 1 2 3] [--http OUTPUTS_JSON]

In-process (default): the real validator domain code and fraud-detector handler against moto, on a
simulated clock (fraud_eval.inprocess). ``--http`` sends the traffic to a running `make local`
instead, in real time (fraud_eval.http). Exits 1 when the defaults miss a target.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fraud_eval import report, traffic

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "FRAUD.md"
CHART = "fraud_eval/fraud-eval.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraud-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("quick", "full"), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--http", metavar="OUTPUTS_JSON", help="a running local pipeline's outputs file")
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the real-time run (--http)")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave FRAUD.md alone")
    args = parser.parse_args(argv)
    plan = traffic.QUICK if args.mode == "quick" else traffic.FULL
    seeds = args.seeds or ([1, 2] if args.mode == "quick" else [1, 2, 3])

    if args.http:
        from fraud_eval import http

        return http.main(Path(args.http), seeds[0], write=not args.no_write, minutes=args.minutes)

    from fraud_eval import inprocess

    runs = []
    for seed in seeds:
        began = time.monotonic()
        labelled = traffic.generate(seed, plan)
        verdicts = inprocess.run(labelled, seed, _progress(seed))
        print(f"seed {seed}: {len(labelled):,} transactions in {time.monotonic() - began:.0f} s", flush=True)
        runs.append((seed, labelled, verdicts))
    evaluation = report.evaluate(runs)
    body = report.markdown(evaluation, CHART, args.mode)
    print(body)
    if not args.no_write:
        report.plot(evaluation, ROOT / CHART)
        report.write_section(DOCUMENT, body)
        print(f"wrote {DOCUMENT.name} and {CHART}")
    failures = evaluation.failures()
    for failure in failures:
        print(f"TARGET MISSED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _progress(seed: int) -> Callable[[int, int], None]:
    # stderr: the run captures stdout (the handlers' metrics go there)
    return lambda done, total: print(f"  seed {seed}: {done:,}/{total:,}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

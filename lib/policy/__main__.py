"""`make policy`: evaluate the stack for a region and suffix and run the security baseline over it."""

from __future__ import annotations

import argparse
import sys

from lib.config import DEFAULT_REGION, StackSettings
from lib.graph import AwsLikeAnswers, evaluate
from lib.policy import run_controls
from lib.tap_stack import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.policy", description=__doc__)
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--suffix", default="policy")
    args = parser.parse_args(argv)
    settings = StackSettings(
        environment_suffix=args.suffix, region=args.region, alert_email="policy@example.com"
    )
    graph = evaluate(lambda: build(settings).outputs, AwsLikeAnswers(settings.region))
    report = run_controls(graph)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tap_local up | demo | outbox | redrive | backtest | rotate-key`: the local pipeline's CLI."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tap_local.pipeline import LocalConfig, LocalPipeline
from tap_local.processes import descendants


def _banner(pipeline: LocalPipeline) -> str:
    outputs = pipeline.outputs
    aws_only = Counter(type_token.split(":")[-1] for type_token, _ in pipeline.aws_only_resources())
    return "\n".join(
        [
            "",
            "Local transaction pipeline is up (built from the Pulumi program in lib/).",
            f"  API:       {outputs['api_url']}",
            f"  API key:   {outputs['api_key_value']}",
            f"  emulator:  {pipeline.emulator.endpoint_url} (moto; aws --endpoint-url ... works)",
            f"  outputs:   {pipeline.config.outputs_path}",
            f"  logs:      {pipeline.config.workdir / 'logs'}/<function>.log",
            "",
            "Try it:",
            f"  curl -sS -X POST '{outputs['api_url']}' -H 'x-api-key: {outputs['api_key_value']}' \\",
            "       -H 'content-type: application/json' \\",
            f"       -d '{outputs['sample_transaction']}'",
            f"  curl -sS '{outputs['api_url']}/<transaction_id>' -H 'x-api-key: {outputs['api_key_value']}'",
            "  Alerts (email goes to a local outbox): make outbox   (or python -m tap_local outbox)",
            "  Rotate the card-fingerprint key: make rotate-key   (or python -m tap_local rotate-key)",
            "",
            "Defined by the stack but run only in AWS: "
            + ", ".join(f"{name} x{count}" for name, count in sorted(aws_only.items())),
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


# Ctrl-C or SIGTERM to exit, however busy the pipeline is: `LocalPipeline.stop` normally takes
# about STOP_GRACE_SECONDS; past this, whatever still runs is killed.
STOP_DEADLINE_SECONDS = 4.0


def _stop_watchdog() -> None:
    """Kill every process this one started and exit, if a clean stop has not finished in time."""
    time.sleep(STOP_DEADLINE_SECONDS)
    print("Stop took too long: killing the function workers and exiting.", file=sys.stderr, flush=True)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(1)


def up(_: argparse.Namespace) -> int:
    stopped = threading.Event()

    def request_stop(*_: object) -> None:
        if not stopped.is_set():
            stopped.set()
            threading.Thread(target=_stop_watchdog, name="stop-watchdog", daemon=True).start()

    # Both signals the same way: a KeyboardInterrupt could land anywhere, even inside start-up.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    config = LocalConfig()
    with LocalPipeline(config) as pipeline:
        pid_file = config.workdir / "tap_local.pid"  # for `make soak ATTACH=1`'s memory readings
        pid_file.write_text(f"{os.getpid()}\n")
        print(_banner(pipeline), flush=True)
        while not stopped.wait(0.5):
            pass
        print("\nStopping: API, pollers, function workers, emulator...", flush=True)
        pid_file.unlink(missing_ok=True)
    print("Stopped.", flush=True)
    return 0


def outbox(_: argparse.Namespace) -> int:
    path = LocalConfig().outbox_path
    if not path.exists():
        print(f"No outbox yet at {path}: start the pipeline with `make local`.")
        return 1
    for line in path.read_text().splitlines():
        record = json.loads(line)
        print(f"--- {record['received_at']} to {record['to']}: {record['subject']}")
        print(record["message"])
    return 0


def demo(_: argparse.Namespace) -> int:
    from tap_local.demo import run_demo

    return run_demo()


def redrive(args: argparse.Namespace) -> int:
    from tap_local.redrive import main as redrive_main

    outputs = Path(args.outputs) if args.outputs else LocalConfig().outputs_path
    return redrive_main(args.source, args.endpoint_url, outputs, args.limit, args.to)


def backtest(args: argparse.Namespace) -> int:
    from tap_local.backtest import main as backtest_main

    outputs = Path(args.outputs) if args.outputs else LocalConfig().outputs_path
    return backtest_main(
        merchant_id=args.merchant,
        since=args.since,
        until=args.until,
        overrides=args.overrides,
        flag_threshold=args.flag_threshold,
        as_json=args.json,
        outputs_path=outputs,
        endpoint_url=args.endpoint_url,
        read_limit=args.limit,
    )


def rotate_key(args: argparse.Namespace) -> int:
    from tap_local.rotation import main as rotation_main

    config = LocalConfig()
    outputs = Path(args.outputs) if args.outputs else config.outputs_path
    return rotation_main(outputs, config.workdir, args.switch_delay, args.endpoint_url)


def _add_rotate_key(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = commands.add_parser(
        "rotate-key",
        help="rotate the card-fingerprint key of the running pipeline (Secrets Manager's four steps)",
    )
    rotate.add_argument(
        "--switch-delay",
        type=int,
        help="seconds until the new key takes over (default: the stack's, 600; below the validators' "
        "300-second key cache, containers may briefly disagree on the key)",
    )
    rotate.add_argument("--endpoint-url", help="emulator URL (default: from the outputs file)")
    rotate.add_argument("--outputs", help="outputs file of the running pipeline (default: TAP_LOCAL_OUTPUTS)")
    rotate.set_defaults(run=rotate_key)


def _add_backtest(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "backtest", help="re-score a merchant's transactions with proposed rule settings (writes nothing)"
    )
    check.add_argument("--merchant", required=True, help="merchant id")
    check.add_argument("--since", help="window start, ISO-8601 (UTC if no offset; default: --until - 24 h)")
    check.add_argument("--until", help="window end, ISO-8601 (UTC if no offset; default: now)")
    check.add_argument(
        "--overrides",
        help='proposed rule_overrides as JSON, e.g. \'{"velocity_1m": {"threshold": 2}}\'; '
        "replaces the merchant's override of each rule it names",
    )
    check.add_argument("--flag-threshold", help="proposed flag_threshold, 1-100 (default: the merchant's)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--endpoint-url", help="emulator URL (default: from the outputs file)")
    check.add_argument("--outputs", help="outputs file of the running pipeline (default: TAP_LOCAL_OUTPUTS)")
    check.add_argument("--limit", type=int, help="read at most this many records (default: 10000)")
    check.set_defaults(run=backtest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tap_local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the pipeline until Ctrl-C").set_defaults(run=up)
    commands.add_parser("demo", help="send a mixed batch and print the outcomes").set_defaults(run=demo)
    commands.add_parser("outbox", help="show alert emails delivered locally").set_defaults(run=outbox)
    replay = commands.add_parser(
        "redrive", help="move dead-lettered messages back: parking -> transaction DLQ -> transaction queue"
    )
    replay.add_argument("--from", dest="source", choices=["parking", "transaction-dlq"], required=True)
    replay.add_argument(
        "--to",
        choices=["transaction-dlq", "transaction-queue"],
        help="destination (default: parking -> transaction-dlq, transaction-dlq -> transaction-queue)",
    )
    replay.add_argument("--endpoint-url", help="emulator URL (default: from the outputs file)")
    replay.add_argument("--outputs", help="outputs file of the running pipeline (default: TAP_LOCAL_OUTPUTS)")
    replay.add_argument("--limit", type=int, default=10_000, help="move at most this many messages")
    replay.set_defaults(run=redrive)
    _add_backtest(commands)
    _add_rotate_key(commands)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run  # set by every subcommand's set_defaults
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

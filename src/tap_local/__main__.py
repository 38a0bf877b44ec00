"""`python -m tap_local up | demo | outbox | redrive` — the local pipeline's command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections import Counter

from tap_local.pipeline import LocalConfig, LocalPipeline


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
            "",
            "Defined by the stack but run only in AWS: "
            + ", ".join(f"{name} x{count}" for name, count in sorted(aws_only.items())),
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def up(_: argparse.Namespace) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with LocalPipeline(LocalConfig()) as pipeline:
        print(_banner(pipeline), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        print("\nStopping: API, pollers, function workers, emulator...", flush=True)
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
    from pathlib import Path

    from tap_local.redrive import main as redrive_main

    outputs = Path(args.outputs) if args.outputs else LocalConfig().outputs_path
    return redrive_main(args.source, args.endpoint_url, outputs, args.limit, args.to)


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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Emulator regression benchmark: does a call's cost grow with what the emulator holds?

`python -m bench.emulators` starts the local emulator (`python -m tap_local.emulator`) twice, as
moto is released (`TAP_LOCAL_MOTO_FIXES=none`) and with `tap_local.moto_fixes`, and for each makes
the calls whose cost grew with stored data in moto 5.2.5: 2-Put TransactWriteItems into two tables
(what our validator and detector make per transaction), a partition Query on a table with a sort
key (GET /transaction/{id}), and SendMessage + ReceiveMessage + DeleteMessage on a queue holding a
backlog. Rates are taken over a block of calls at each checkpoint of stored items, and the
emulator's resident memory at the same points. `--url` measures any other emulator already
running (ministack, for one, which cannot share our environment: it pins botocore exactly).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.common import REPO_ROOT, Mode

BLOCK = 300  # calls timed at each checkpoint
BACKLOG = 2_000  # messages left on the queue while receives are timed


@dataclass
class Checkpoint:
    stored: int
    transact_per_second: float
    query_per_second: float
    sqs_round_trips_per_second: float
    rss_mb: float | None


@dataclass
class EmulatorRun:
    name: str
    checkpoints: list[Checkpoint] = field(default_factory=list)


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-2",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - a loopback emulator accepts any
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _rate(calls: int, call: Any) -> float:
    began = time.perf_counter()
    for index in range(calls):
        call(index)
    return calls / (time.perf_counter() - began)


def measure(url: str, name: str, checkpoints: list[int], pid: int | None = None) -> EmulatorRun:
    dynamodb, sqs = _client("dynamodb", url), _client("sqs", url)
    tag = f"bench{int(time.time() * 1000) % 10**8}"
    records, guards = f"{tag}-records", f"{tag}-guards"
    dynamodb.create_table(
        TableName=records,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "ts", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName=guards,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = sqs.create_queue(QueueName=f"{tag}-queue")["QueueUrl"]
    for start in range(0, BACKLOG, 10):
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": f"backlog {start + n}"} for n in range(10)]
        )
    stored = 0

    def transact(index: int) -> None:
        nonlocal stored
        key = f"t{stored:08d}"
        stored += 1
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": records,
                        "Item": {
                            "id": {"S": key},
                            "ts": {"S": "2026-12-01T00:00:00.000Z"},
                            "amount": {"N": "42"},
                        },
                        "ConditionExpression": "attribute_not_exists(id)",
                    }
                },
                {"Put": {"TableName": guards, "Item": {"id": {"S": f"guard#{key}"}}}},
            ]
        )

    def query(index: int) -> None:
        dynamodb.query(
            TableName=records,
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": f"t{index * 7 % max(1, stored):08d}"}},
        )

    def sqs_round_trip(index: int) -> None:
        sqs.send_message(QueueUrl=queue, MessageBody=f"timed {index}")
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    run = EmulatorRun(name)
    for target in checkpoints:
        while stored < target:
            transact(0)
        run.checkpoints.append(
            Checkpoint(
                stored=stored,
                transact_per_second=_rate(BLOCK, transact),
                query_per_second=_rate(BLOCK, query),
                sqs_round_trips_per_second=_rate(BLOCK // 3, sqs_round_trip),
                rss_mb=_rss_mb(pid),
            )
        )
    return run


def _start_emulator(fixes: bool) -> tuple[subprocess.Popen[str], str]:
    environment = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}"}
    if not fixes:
        environment["TAP_LOCAL_MOTO_FIXES"] = "none"
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_local.emulator", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().split()[1])
    return process, f"http://127.0.0.1:{port}"


def checkpoints(mode: Mode, fixes: bool) -> list[int]:
    """Stored items at which calls are timed. Released moto stops at 2,000: each of its transactions
    copies the tables, so filling them to 10,000 would take most of an hour."""
    if mode.quick:
        return [0, 500]
    return [0, 2_000, 10_000] if fixes else [0, 1_000, 2_000]


def run(mode: Mode) -> list[EmulatorRun]:
    runs = []
    for fixes in (False, True):
        process, url = _start_emulator(fixes)
        try:
            name = "moto 5.2.5 + tap_local.moto_fixes" if fixes else "moto 5.2.5 as released"
            runs.append(measure(url, name, checkpoints(mode, fixes), process.pid))
        finally:
            process.kill()
            process.wait(timeout=10)
    return runs


def render(runs: list[EmulatorRun]) -> list[str]:
    from bench.report import _table

    rows = []
    for emulator in runs:
        for point in emulator.checkpoints:
            rows.append(
                [
                    emulator.name,
                    f"{point.stored:,}",
                    f"{point.transact_per_second:.0f}",
                    f"{point.query_per_second:.0f}",
                    f"{point.sqs_round_trips_per_second:.0f}",
                    f"{point.rss_mb:.0f} MB" if point.rss_mb is not None else "-",
                ]
            )
    return [
        "## 5. Emulator cost per call against stored items",
        "",
        f"Method: {__doc__.split(chr(10), 2)[2].strip()}".replace("\n", " "),
        "",
        *_table(
            [
                "emulator",
                "items stored",
                "TransactWriteItems/s",
                "Query/s",
                f"SQS send+receive+delete/s ({BACKLOG:,} backlog)",
                "emulator RSS",
            ],
            rows,
        ),
        "",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulators", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("quick", "full"), default="full")
    parser.add_argument("--url", help="measure only this running emulator (e.g. ministack)")
    parser.add_argument("--name", default="emulator at --url")
    parser.add_argument("--pid", type=int, help="its process id, for its resident memory")
    args = parser.parse_args(argv)
    if args.url:
        runs = [measure(args.url, args.name, checkpoints(Mode(args.mode), fixes=True), args.pid)]
    else:
        runs = run(Mode(args.mode))
    print("\n".join(render(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Local pipeline throughput against moto's own throughput for the same AWS calls, in one run.

Pipeline: client threads POST transactions to the local REST API for a bounded time and count;
the figure is accepted transactions / (first POST -> every one of them CLEARED or FLAGGED), read
from the transactions table. Direct: the same number of threads make, against the same embedded
moto server, the calls one transaction costs end to end (validator TransactWriteItems + SendMessage;
ReceiveMessage, BatchGetItem, TransactWriteItems, DeleteMessage per message; one baseline UpdateItem
per 10), with no API, workers or pollers in between. The ratio is pipeline / direct.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Mode

CLIENT_THREADS = 8
TARGET_RATIO = 2 / 3


@dataclass
class ThroughputResult:
    pipeline_tps: list[float]
    direct_tps: list[float]
    ratios: list[float]
    transactions_per_run: list[int]


def _post(url: str, key: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback URL from our own pipeline
        url,
        data=json.dumps(body).encode(),
        headers={"x-api-key": key, "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _pipeline_run(pipeline: Any, seconds: float, cap: int) -> tuple[float, int]:
    from tap_local import scenarios

    outputs = pipeline.outputs
    url, key = outputs["api_url"], outputs["api_key_value"]
    ddb = pipeline.emulator.client("dynamodb")
    table = outputs["transactions_table_name"]
    before = _final_count(ddb, table)
    accepted = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    sent = [0]

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= cap:
                    return
                sent[0] += 1
            if _post(url, key, scenarios.transaction(amount=f"{20 + sent[0] % 30}.00")) == 202:
                with lock:
                    accepted[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until = time.monotonic() + 60
    while _final_count(ddb, table) - before < accepted[0] and time.monotonic() < wait_until:
        time.sleep(0.2)
    done = _final_count(ddb, table) - before
    return done / (time.monotonic() - began), done


def _final_count(ddb: Any, table: str) -> int:
    count, kwargs = 0, {"TableName": table, "Select": "COUNT", "FilterExpression": "#s IN (:c, :f)"}
    kwargs["ExpressionAttributeNames"] = {"#s": "status"}
    kwargs["ExpressionAttributeValues"] = {":c": {"S": "CLEARED"}, ":f": {"S": "FLAGGED"}}
    while True:
        page = ddb.scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


DIRECT_PROCESSES = 2  # like the pipeline's 2 workers per function: client CPU off the emulator's GIL


def _direct_run(pipeline: Any, transactions: int) -> float:
    """The same AWS calls per transaction, made straight at the emulator by the same thread count,
    from child processes (in-process clients would compete with the emulator for the GIL)."""
    import os
    import subprocess
    import sys

    from bench.common import REPO_ROOT

    outputs = pipeline.outputs
    spec = {
        "endpoint": pipeline.emulator.endpoint_url,
        "region": pipeline.config.region,
        "records": outputs["transactions_table_name"],
        "guards": outputs["idempotency_table_name"],
        "state": outputs["fraud_state_table_name"],
        "threads": CLIENT_THREADS // DIRECT_PROCESSES,
        "per_thread": max(1, transactions // CLIENT_THREADS),
    }
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}"}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    children = [
        subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "bench.local_throughput", json.dumps({**spec, "child": n})],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(DIRECT_PROCESSES)
    ]
    reports = [json.loads(child.communicate(timeout=300)[0].strip().splitlines()[-1]) for child in children]
    total = sum(r["done"] for r in reports)
    return total / (max(r["end"] for r in reports) - min(r["start"] for r in reports))


def _score_directly(ddb: Any, tid: str, stamp: dict[str, str], records: str, state: str) -> None:
    keys = [{"pk": {"S": f"card#{tid}#{n}"}, "sk": {"S": "1"}} for n in range(7)]
    keys += [{"pk": {"S": f"baseline#m#USD#{n}"}, "sk": {"S": "agg"}} for n in range(17)]
    ddb.batch_get_item(RequestItems={state: {"Keys": keys}})
    updates: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": state,
                "Key": {"pk": {"S": f"card#{tid}#{n}"}, "sk": {"S": "1"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
        for n in range(3)
    ]
    updates.append(
        {
            "Update": {
                "TableName": records,
                "Key": {"transaction_id": {"S": tid}, "timestamp": stamp},
                "UpdateExpression": "SET #s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": "CLEARED"}},
            }
        }
    )
    ddb.transact_write_items(TransactItems=updates)


def _direct_child(spec: dict[str, Any]) -> None:
    """Child side of :func:`_direct_run`: set up queues, then time only the calls."""
    import boto3

    tag = uuid.uuid4().hex[:8]
    records, guards, state = spec["records"], spec["guards"], spec["state"]
    barrier = threading.Barrier(spec["threads"] + 1)

    def client(service: str) -> Any:
        return boto3.client(service, region_name=spec["region"], endpoint_url=spec["endpoint"])

    def worker(index: int) -> None:
        ddb, sqs = client("dynamodb"), client("sqs")
        queue = sqs.create_queue(QueueName=f"bench-direct-{tag}-{index}")["QueueUrl"]
        barrier.wait()
        stamp = {"S": "2026-01-01T00:00:00.000Z"}
        for group in range(0, spec["per_thread"], 10):  # the event source mapping's batches of 10
            tids = [
                f"direct-{tag}-{index}-{serial}"
                for serial in range(group, min(group + 10, spec["per_thread"]))
            ]
            for tid in tids:  # validator: record + guard, then the queue
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": records,
                                "Item": {"transaction_id": {"S": tid}, "timestamp": stamp},
                            }
                        },
                        {"Put": {"TableName": guards, "Item": {"id": {"S": f"transaction#{tid}"}}}},
                    ]
                )
                sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"transaction_id": tid}))
            received: list[dict[str, Any]] = []
            while len(received) < len(tids):
                received += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            for tid in tids:  # detector: read all fraud state, write status + card aggregates
                _score_directly(ddb, tid, stamp, records, state)
            ddb.update_item(
                TableName=state,
                Key={"pk": {"S": "baseline#bench#USD#0"}, "sk": {"S": "agg"}},
                UpdateExpression="ADD n :n",
                ExpressionAttributeValues={":n": {"N": str(len(tids))}},
            )
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(received)],
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(spec["threads"])]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.time()
    for thread in threads:
        thread.join()
    done = spec["threads"] * spec["per_thread"]
    print(json.dumps({"done": done, "start": began, "end": time.time()}))


def run(mode: Mode) -> ThroughputResult:
    from tap_local.pipeline import LocalConfig, LocalPipeline

    seconds, cap, rounds = (3.0, 60, 1) if mode.quick else (10.0, 3000, 2)
    result = ThroughputResult([], [], [], [])
    with tempfile.TemporaryDirectory() as workdir:
        config = LocalConfig(
            emulator_port=0,
            api_port=0,
            workdir=Path(workdir),
            outputs_path=Path(workdir) / "outputs.json",
            verbose=False,
        )
        with LocalPipeline(config) as pipeline:
            _pipeline_run(pipeline, 2.0, 20)  # warm the workers (cold starts, caches)
            for _ in range(rounds):
                tps, done = _pipeline_run(pipeline, seconds, cap)
                direct = _direct_run(pipeline, max(done, CLIENT_THREADS * 5))
                result.pipeline_tps.append(tps)
                result.direct_tps.append(direct)
                result.ratios.append(tps / direct)
                result.transactions_per_run.append(done)
    return result


if __name__ == "__main__":
    import sys

    _direct_child(json.loads(sys.argv[1]))

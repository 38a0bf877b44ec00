"""The labelled traffic, in real time, against a running `make local` (``--http``): the whole
pipeline as a user runs it (API, queue, pollers, detector workers), scored by polling GET.

Real time means the simulated day is short (``MINUTES``, default 20): warm-up, then attacks with
their natural timings. Slow-and-low testing needs an hour and is left out below 70 minutes. The
evaluation merchants are written into the pipeline's merchant table first (test data only).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from fraud_eval import report, traffic
from tap_pipeline.backtest import Verdict

MINUTES = 20
FINAL = {"CLEARED", "FLAGGED", "FAILED"}


def _plan(minutes: float) -> tuple[traffic.TrafficPlan, tuple[str, ...]]:
    families = tuple(f for f in traffic.FAMILIES if minutes >= 70 or f != "slow_testing")
    return traffic.TrafficPlan(normal=int(40 * minutes), per_family=4, hours=minutes / 60), families


def _post(session: requests.Session, url: str, key: str, body: dict[str, Any]) -> int:
    for attempt in range(6):
        response = session.post(url, json=body, headers={"x-api-key": key}, timeout=60)
        if response.status_code not in (429, 500, 502, 503, 504):
            return response.status_code
        time.sleep(0.2 * 2**attempt)  # same transaction id: the retry is idempotent
    return response.status_code


def _verdict(session: requests.Session, url: str, key: str, transaction_id: str) -> Verdict | None:
    response = session.get(f"{url}/{transaction_id}", headers={"x-api-key": key}, timeout=60)
    if response.status_code != 200:
        return None
    body = response.json()
    if body.get("status") not in FINAL:
        return None
    return Verdict.from_record(body)


def run(
    outputs: dict[str, Any], seed: int, minutes: float
) -> tuple[list[traffic.Labelled], dict[str, Verdict]]:
    import boto3

    from tap_local.backtest import connect

    connect(outputs, None)
    table = boto3.resource("dynamodb").Table(outputs["merchant_config_table_name"])
    for merchant in traffic.MERCHANTS:
        table.put_item(Item=merchant.item())
    plan, families = _plan(minutes)
    labelled = traffic.generate(seed, plan, run_tag=int(time.time()) % 100_000, families=families)
    url, key = outputs["api_url"], outputs["api_key_value"]
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for transaction in labelled:
            due = began + (transaction.at - traffic.START).total_seconds()
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(pool.submit(_post, requests.Session(), url, key, transaction.body()))
        refused = [f.result() for f in futures if f.result() != 202]
    if refused:
        raise RuntimeError(f"{len(refused)} requests refused: {sorted(set(refused))}")
    verdicts: dict[str, Verdict] = {}
    session, deadline = requests.Session(), time.monotonic() + 600
    while len(verdicts) < len(labelled) and time.monotonic() < deadline:
        for transaction in labelled:
            if transaction.transaction_id not in verdicts:
                verdict = _verdict(session, url, key, transaction.transaction_id)
                if verdict:
                    verdicts[transaction.transaction_id] = verdict
        time.sleep(1)
    missing = len(labelled) - len(verdicts)
    if missing:
        raise RuntimeError(f"{missing} transactions never reached a final state")
    return labelled, verdicts


def main(outputs_path: Path, seed: int, write: bool, minutes: float = MINUTES) -> int:
    outputs = json.loads(outputs_path.read_text())
    labelled, verdicts = run(outputs, seed, minutes)
    evaluation = report.evaluate([(seed, labelled, verdicts)])
    body = report.markdown(evaluation, "fraud_eval/fraud-eval-http.png", f"HTTP, {minutes:g} minutes")
    print(body)
    if write:
        report.plot(evaluation, Path(__file__).resolve().parent / "fraud-eval-http.png")
        report.write_section(
            Path(__file__).resolve().parent.parent / "FRAUD.md",
            body,
            "<!-- fraud-eval-http:begin -->",
            "<!-- fraud-eval-http:end -->",
        )
    return 1 if evaluation.failures() else 0

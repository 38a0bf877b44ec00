"""`make demo`: a mixed batch through a fresh local pipeline, and a table of what became of each request."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tap_contract.seed import TEST_MERCHANT_ID
from tap_local.pipeline import LocalConfig, LocalPipeline
from tap_local.scenarios import fraud_scenarios, transaction, unprocessable_message

FINAL = {"CLEARED", "FLAGGED", "FAILED"}


class _Client:
    def __init__(self, outputs: dict[str, Any]):
        self.url, self.key = outputs["api_url"], outputs["api_key_value"]

    def post(self, body: Any, key: bool = True, raw: str | None = None) -> requests.Response:
        headers = {"content-type": "application/json", **({"x-api-key": self.key} if key else {})}
        return requests.post(
            self.url, data=raw if raw is not None else json.dumps(body), headers=headers, timeout=30
        )

    def final(self, transaction_id: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = requests.get(
                f"{self.url}/{transaction_id}", headers={"x-api-key": self.key}, timeout=30
            )
            if response.status_code == 200:
                body: dict[str, Any] = response.json()  # the API answers a GET with a JSON object
                if body["status"] in FINAL:
                    return body
            time.sleep(0.5)
        return {"status": "(not final)", "reasons": []}


def _alerts(outbox: Path) -> list[dict[str, Any]]:
    if not outbox.exists():
        return []
    return [json.loads(json.loads(line)["message"]) for line in outbox.read_text().splitlines()]


def run_demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="tap-demo-"))
    config = LocalConfig(
        emulator_port=0, api_port=0, retry_delay_seconds=1, workdir=workdir,
        outputs_path=workdir / "flat-outputs.json", verbose=False,
    )  # fmt: skip
    rows: list[tuple[str, str, str, str]] = []
    print("Starting a fresh local pipeline for the demo...", flush=True)
    with LocalPipeline(config) as pipeline:
        client = _Client(pipeline.outputs)
        tracked: list[tuple[str, str]] = []

        def send(label: str, body: Any = None, **kwargs: Any) -> None:
            response = client.post(body, **kwargs)
            answer = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            detail = answer.get("code") or answer.get("message") or answer.get("status") or ""
            rows.append((label, str(response.status_code), str(detail)[:60], ""))
            if response.status_code == 202:
                tracked.append((label, answer["transaction_id"]))

        send("normal transaction", transaction())
        send("malformed body", {"merchant_id": TEST_MERCHANT_ID, "amount": 12})
        send("not JSON", raw="{oops")
        send("unknown merchant", transaction(merchant="no-such-merchant"))
        send("no API key", transaction(), key=False)
        for scenario in fraud_scenarios():
            warmup = [client.post(request).json()["transaction_id"] for request in scenario.warmup]
            for transaction_id in warmup:
                client.final(transaction_id)  # the baseline must exist before the spike is scored
            for index, request in enumerate(scenario.requests):
                send(f"fraud: {scenario.rule} #{index + 1}", request)
        poison_id = f"poison-{uuid.uuid4().hex[:12]}"
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        sqs = pipeline.emulator.client("sqs")
        sqs.send_message(
            QueueUrl=pipeline.outputs["transaction_queue_url"],
            MessageBody=json.dumps(unprocessable_message(poison_id, now)),
        )
        tracked.append(("poison message (queued directly)", poison_id))
        rows.append(("poison message (queued directly)", "-", "sent to the queue", ""))

        finals = {transaction_id: client.final(transaction_id) for _, transaction_id in tracked}
        time.sleep(2)  # let the outbox catch the last alerts
        alerts = _alerts(config.outbox_path)
        alert_count = {tid: sum(1 for a in alerts if a.get("transaction_id") == tid) for tid in finals}
        by_label = dict(tracked)
        rows = [
            (label, status, detail, _describe(finals[by_label[label]], alert_count[by_label[label]]))
            if label in by_label
            else (label, status, detail, "")
            for label, status, detail, _ in rows
        ]
    _print_table(rows)
    statuses = [final["status"] for final in finals.values()]
    rejected = sum(1 for row in rows if row[1] not in ("202", "-"))
    counts = ", ".join(
        f"{status.lower()} {statuses.count(status)}" for status in ("CLEARED", "FLAGGED", "FAILED")
    )
    print(f"\naccepted {len(tracked) - 1}, rejected {rejected}, {counts}, alerts {len(alerts)} (fraud + ops)")
    return 0 if "(not final)" not in statuses else 1


def _describe(final: dict[str, Any], alerts: int) -> str:
    reasons = ", ".join(reason.split(":")[0] for reason in final.get("reasons") or [])
    parts = [final["status"]]
    if reasons:
        parts.append(f"[{reasons}]")
    if final.get("failure_reason"):
        parts.append(final["failure_reason"][:40])
    if alerts:
        parts.append(f"{alerts} alert{'s' if alerts > 1 else ''}")
    return " ".join(parts)


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    headers = ("request", "HTTP", "answer", "final state")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(4)]
    line = "  ".join("-" * width for width in widths)
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))

"""Card-data safety: send real-looking cards, then look everywhere for a PAN or a CVV.

Every request carries a Luhn-valid card number and a CVV. Afterwards every table item, every
message the functions were handed from a queue, every alert and ops email, every function log
line and every file in the pipeline's workdir is searched for (a) any of the PANs sent, (b) any
Luhn-valid 13-19 digit run starting like a card number (2-6), (c) a field named like a CVV and
(d) a string equal to the CVV sent with that transaction inside anything naming the transaction.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience import harness
from tap_contract.card_numbers import luhn_valid
from tap_local.pipeline import LocalPipeline
from tap_local.pollers import BatchOutcome
from tap_local.scenarios import DEFAULT_MERCHANT, STRICT_MERCHANT, luhn_pan

# A free-standing digit run: not after a decimal point (the fraction of a float in a metrics line)
# and not inside an alphanumeric token (a hex HMAC fingerprint holds long digit runs by chance).
# Sent PANs are also looked for as plain substrings, wherever they are embedded.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z.])[2-6]\d{12,18}(?![0-9A-Za-z])")
CVV_NAME = re.compile(r"\b(cvv|cvc|cvv2|cid|security_code)\b", re.IGNORECASE)


@dataclass
class CardScan:
    places: dict[str, int] = field(default_factory=dict)  # where -> texts scanned
    pans: list[str] = field(default_factory=list)
    cvvs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.pans and not self.cvvs


def scan_texts(texts: Iterator[tuple[str, str]], sent: dict[str, tuple[str, str]], scan: CardScan) -> None:
    """`sent`: transaction id -> (PAN, CVV). Appends findings as `where: what`."""
    pans = {pan for pan, _ in sent.values()}
    for where, text in texts:
        scan.places[where.split(":", 1)[0]] = scan.places.get(where.split(":", 1)[0], 0) + 1
        runs = set(DIGIT_RUN.findall(text))
        for run in sorted(runs):
            if run in pans:
                scan.pans.append(f"{where}: sent PAN {run[:6]}...{run[-4:]}")
            elif luhn_valid(run):
                scan.pans.append(f"{where}: Luhn-valid digit run {run[:6]}...{run[-4:]}")
        for pan in pans - runs:
            if pan in text:  # a sent PAN anywhere, even inside a longer digit run
                scan.pans.append(f"{where}: sent PAN {pan[:6]}...{pan[-4:]}")
        if CVV_NAME.search(text):
            scan.cvvs.append(f"{where}: field named like a CVV")
        for transaction_id, (_, cvv) in sent.items():
            if transaction_id in text and _has_leaf(text, cvv):
                scan.cvvs.append(f"{where}: CVV of {transaction_id}")


def _has_leaf(text: str, cvv: str) -> bool:
    try:
        return any(leaf == cvv for leaf in _leaves(json.loads(text)))
    except ValueError:
        return re.search(rf'"{cvv}"', text) is not None


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value
        if value[:1] in "{[":  # JSON inside a string (an SNS message, a log field)
            try:
                yield from _leaves(json.loads(value))
            except ValueError:
                return


class RecordingPipeline(LocalPipeline):
    """Keeps every message body the pollers handed to a function, to scan what queues carried."""

    delivered: list[tuple[str, str]]

    def _log_batch(self, outcome: BatchOutcome) -> None:
        if not hasattr(self, "delivered"):
            self.delivered = []
        self.delivered += [(f"queue message to {outcome.function}", b) for b in outcome.bodies.values()]
        super()._log_batch(outcome)


def collect(running: LocalPipeline) -> Iterator[tuple[str, str]]:
    for table, items in harness.scan_all_tables(running).items():
        for item in items:
            yield f"table item:{table}", json.dumps(item, default=str)
    for where, body in getattr(running, "delivered", []):
        yield f"{where}:", body
    for record in harness.outbox(running):
        yield f"email:{record['topic']}", json.dumps(record)
    for path in sorted(Path(running.config.workdir).rglob("*")):
        if path.is_file() and path.name != "outbox.jsonl":
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                yield f"file line:{path.name}:{number}", line


def run(count: int, seed: int = 5) -> tuple[CardScan, int, int]:
    """(findings, requests sent, accepted)."""
    rng = random.Random(seed)  # noqa: S311 - test card data, never a real card
    sent: dict[str, tuple[str, str]] = {}
    accepted: set[str] = set()
    responses: list[tuple[str, str]] = []
    with harness.pipeline(pipeline_class=RecordingPipeline) as running:
        client = harness.Client(running.outputs)
        for index in range(count):
            pan = luhn_pan(rng.choice(["4", "51", "37", "6011"]), rng.choice([15, 16]))
            cvv = f"{rng.randint(101, 999)}" if index % 2 else f"{rng.randint(1000, 9999)}"
            transaction_id = harness.new_transaction_id()
            merchant, amount = (STRICT_MERCHANT, "1500.00") if index % 4 == 0 else (DEFAULT_MERCHANT, "42.00")
            body = {
                "transaction_id": transaction_id,
                "merchant_id": merchant,
                "amount": amount,
                "currency": "USD",
                "card": {"number": pan, "expiry": "12/30", "cvv": cvv},
            }
            response, _ = client.post(body)
            sent[transaction_id] = (pan, cvv)
            if 200 <= response.status_code < 300:
                accepted.add(transaction_id)
            else:  # e.g. a generated number the validator's card rules refuse; shown, not hidden
                print(f"card-data: {response.status_code} {response.text[:160]}", flush=True)
            responses.append(("API response:POST", response.text))
        harness.settle(running, accepted, timeout=120)
        for transaction_id in sorted(accepted):
            lookup = client.session.get(
                f"{client.url}/{transaction_id}", headers={"x-api-key": client.key}, timeout=30
            )
            responses.append(("API response:GET", lookup.text))
        findings = CardScan()
        scan_texts(itertools.chain(responses, collect(running)), sent, findings)
    return findings, len(sent), len(accepted)


TRACE_CALL = re.compile(
    r"\bput_(annotation|metadata)\s*\(|capture_(lambda_handler|method)\((?![^)]*capture_response=False)"
)


def trace_call_sites(package: Path | None = None) -> list[str]:
    """Where the function code could put card data into a trace (X-Ray is off locally, so this is
    read from the code): annotation/metadata calls and tracer decorators that capture responses."""
    from tap_local.pipeline import REPO_ROOT

    root = package or REPO_ROOT / "src" / "tap_pipeline"
    sites = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TRACE_CALL.search(line):
                sites.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return sites

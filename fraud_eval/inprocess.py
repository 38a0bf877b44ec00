"""Run labelled traffic through the real validator domain code and the real fraud-detector handler,
in this process, against moto (the function-test backend), on a simulated clock.

Why simulated time: the traffic spans hours (slow-and-low testing needs one), and features are
functions of receive times, which the validator takes from ``intake.accept(now=...)``. Each request
is accepted at its generated time, in time order, as the API would see it. The detector is then
fed as a standard queue feeds it, without order: accepted messages pile up in a backlog, and
batches of 10 are drawn from it at random (seeded) while intake continues, so a card's later
transaction is often scored before its earlier ones.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
from collections.abc import Callable
from typing import Any

from fraud_eval.traffic import MERCHANTS, Labelled
from tap_pipeline.backtest import Verdict

BATCH = 10
# Messages waiting before a batch is drawn: larger means more reordering.
BACKLOG = 40


def run(
    traffic: list[Labelled], seed: int, progress: Callable[[int, int], None] | None = None
) -> dict[str, Verdict]:
    """Score every transaction; returns verdicts by transaction id."""
    from tap_local import moto_fixes
    from tests.unit.functions import backend

    # The local pipeline's corrections of moto's cost per call: without them every
    # TransactWriteItems deep-copies the tables it touches, and the run grows quadratically.
    moto_fixes.install()
    try:
        return _run(traffic, seed, progress, backend)
    finally:
        moto_fixes.uninstall()


def _run(
    traffic: list[Labelled], seed: int, progress: Callable[[int, int], None] | None, backend: Any
) -> dict[str, Verdict]:
    from moto import mock_aws

    backend.apply_environment()
    # Thousands of scored transactions: keep the handlers' logs and metrics out of the way.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    with mock_aws(), contextlib.redirect_stdout(io.StringIO()):
        pipe = backend.build_pipeline()
        for merchant in MERCHANTS:
            pipe.ddb.Table(pipe.merchant_table).put_item(Item=merchant.item())
        _feed(pipe, traffic, random.Random(seed), progress)  # noqa: S311 - reproducible order, not crypto
        return {record["transaction_id"]: Verdict.from_record(record) for record in pipe.records()}


def _feed(
    pipe: Any, traffic: list[Labelled], order: random.Random, progress: Callable[[int, int], None] | None
) -> None:
    from tap_contract.api import TransactionRequest
    from tap_pipeline import intake

    backlog: list[dict[str, Any]] = []
    for number, transaction in enumerate(traffic, 1):
        outcome = intake.accept(TransactionRequest.model_validate(transaction.body()), now=transaction.at)
        if not isinstance(outcome, intake.Accepted):
            raise RuntimeError(f"{transaction.transaction_id} refused: {outcome.code} {outcome.message}")
        if number % BATCH == 0:
            backlog.extend(pipe.drain(pipe.queue_url))
            while len(backlog) >= BACKLOG:
                _deliver(pipe, [backlog.pop(order.randrange(len(backlog))) for _ in range(BATCH)])
        if progress and number % 500 == 0:
            progress(number, len(traffic))
    backlog.extend(pipe.drain(pipe.queue_url))
    order.shuffle(backlog)
    for start in range(0, len(backlog), BATCH):
        _deliver(pipe, backlog[start : start + BATCH])


def _deliver(pipe: Any, messages: list[dict[str, Any]]) -> None:
    result = pipe.run_detector(messages)
    if result != {"batchItemFailures": []}:
        raise RuntimeError(f"the detector failed messages: {result}")

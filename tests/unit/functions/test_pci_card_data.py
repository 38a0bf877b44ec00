"""PCI DSS: no PAN or CVV is ever stored, queued, published or logged (3.5.1.2, 3.3.2)."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_contract import card_numbers
from tap_pipeline.observability import redact_pans
from tests.unit.functions.conftest import FUTURE_EXPIRY, transaction

PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "4000056655665556"]
CVVS = ["123", "456", "7890", "321", "654"]


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        if card_numbers.luhn_valid(partial + check):
            return partial + check
    raise AssertionError("unreachable: one check digit always fits")


luhn_pans = st.builds(
    lambda first, body: _luhn_complete(first + body),
    st.sampled_from("23456"),
    st.text(alphabet="0123456789", min_size=11, max_size=17),
)


def _everything_written(pipeline: Any, queue_bodies: list[str]) -> str:
    tables = [
        pipeline.merchant_table,
        pipeline.transactions_table,
        pipeline.fraud_state_table,
        pipeline.idempotency_table,
    ]
    items = [item for table in tables for item in pipeline.scan(table)]
    published = pipeline.published(pipeline.fraud_capture_url) + pipeline.published(pipeline.ops_capture_url)
    leftovers = [m["Body"] for url in (pipeline.queue_url, pipeline.dlq_url) for m in pipeline.drain(url)]
    return "\n".join([json.dumps(items, default=str), json.dumps(published), *queue_bodies, *leftovers])


def _assert_no_card_data(text: str, pans: list[str], cvvs: list[str]) -> None:
    digits_only = re.sub(r"[ -]", "", text)
    for pan in pans:
        assert pan not in digits_only, "a PAN leaked"
    for cvv in cvvs:
        assert f'"{cvv}"' not in text, "a CVV leaked"
    assert '"cvv"' not in text.lower()


def test_no_pan_or_cvv_in_logs_tables_queues_or_alerts(pipeline, logs, capsys):
    queue_bodies: list[str] = []
    for pan, cvv in zip(PANS, CVVS, strict=True):
        for attempt in range(2):  # the second one is a duplicate -> FLAGGED -> fraud alert
            response = pipeline.post(
                transaction(amount="42.00", card={"number": pan, "expiry": FUTURE_EXPIRY, "cvv": cvv})
            )
            assert response["statusCode"] == 202, response["json"]
            assert pan not in response["body"]
            messages = pipeline.drain(pipeline.queue_url)
            queue_bodies.extend(m["Body"] for m in messages)
            pipeline.run_detector(messages)
            if attempt == 1:
                lookup = pipeline.get(response["json"]["transaction_id"])
                assert lookup["json"]["status"] == "FLAGGED"
                assert pan not in lookup["body"]
    # Rejections and failures must not leak either: a business rejection, a malformed request with
    # a bad card, a dead-lettered message and a poison message that itself contains card data.
    assert (
        pipeline.post(
            transaction(amount="9999.00", card={"number": PANS[0], "expiry": FUTURE_EXPIRY, "cvv": "123"})
        )["statusCode"]
        == 422
    )
    assert (
        pipeline.post(transaction(card={"number": PANS[1], "expiry": "01/20", "cvv": "456"}))["statusCode"]
        == 400
    )
    pipeline.post(
        transaction(
            transaction_id="to-dlq", amount="77.00", card={"number": PANS[2], "expiry": FUTURE_EXPIRY}
        )
    )
    dead = pipeline.drain(pipeline.queue_url)
    queue_bodies.extend(m["Body"] for m in dead)
    pipeline.run_failed_handler(dead)
    pipeline.run_failed_handler(
        [{"MessageId": "poison", "Body": f'{{"card": "{PANS[3]}", "cvv": "321"', "Attributes": {}}]
    )

    written = _everything_written(pipeline, queue_bodies)
    printed = capsys.readouterr()

    assert "FLAGGED" in written and "fraud_alert" in written  # the run really produced alerts
    assert logs.text  # and logs
    _assert_no_card_data(written, PANS, CVVS)
    _assert_no_card_data(logs.text + printed.out + printed.err, PANS, CVVS)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pan=luhn_pans, cvv=st.from_regex(r"\A[0-9]{3,4}\Z"))
def test_any_luhn_valid_pan_never_reaches_storage_or_the_queue(pipeline, pan, cvv):
    response = pipeline.post(transaction(card={"number": pan, "expiry": FUTURE_EXPIRY, "cvv": cvv}))

    assert response["statusCode"] == 202, response["json"]
    bodies = [m["Body"] for m in pipeline.drain(pipeline.queue_url)]
    stored = json.dumps(pipeline.records() + pipeline.scan(pipeline.idempotency_table), default=str)
    assert pan not in stored
    assert all(pan not in body and "cvv" not in body for body in bodies)
    record = next(r for r in pipeline.records() if r["transaction_id"] == response["json"]["transaction_id"])
    assert (record["card_bin"], record["card_last4"]) == (pan[:6], pan[-4:])


@settings(max_examples=300)
@given(
    pan=luhn_pans,
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    sep=st.sampled_from(["", " ", "-"]),
)
def test_log_redaction_masks_any_luhn_valid_pan(pan, before, after, sep):
    shown = sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    text = f"{before} {shown} {after}"

    assert pan not in re.sub(r"[ -]", "", redact_pans(text).replace(before, "").replace(after, ""))


def test_log_redaction_leaves_ordinary_numbers_alone():
    assert redact_pans("took 1795918428893 ms for order 12345") == "took 1795918428893 ms for order 12345"

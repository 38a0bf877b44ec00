"""End to end through the API, queue, functions, tables and topics, from the outputs file only."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tap_local.scenarios import fraud_scenarios, luhn_pan, unique_token, unprocessable_message
from tap_local.scenarios import transaction as body
from tests.integration.conftest import Api, Inbox, aws_client

DEPLOYED = os.environ.get("TAP_INTEGRATION_TARGET") == "deployed"
# A dead-lettered message needs maxReceiveCount visibility timeouts in AWS (5 x 300 s).
DEAD_LETTER_TIMEOUT = 1800 if DEPLOYED else 90


def submit_all(api: Api, bodies: list[dict[str, Any]]) -> list[str]:
    ids = []
    for request in bodies:
        response = api.post(request)
        assert response.status_code == 202, response.text
        ids.append(response.json()["transaction_id"])
    return ids


def finals(api: Api, ids: list[str]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(api.wait_for_final, ids))


def alerts_for(inbox: Inbox, transaction_id: str) -> list[dict[str, Any]]:
    return inbox.matching(lambda alert: alert.get("transaction_id") == transaction_id)


def assert_flagged_once(
    api: Api, inbox: Inbox, ids: list[str], rule: str, chosen: Callable[[list[dict]], dict] | None = None
) -> dict[str, Any]:
    """Some transaction among `ids` is FLAGGED for `rule`, and each flagged one alerted exactly once."""
    results = finals(api, ids)
    flagged = [
        r for r in results if r["status"] == "FLAGGED" and any(x.startswith(rule) for x in r["reasons"])
    ]
    assert flagged, f"none FLAGGED for {rule}: {[(r['status'], r['reasons']) for r in results]}"
    for record in (r for r in results if r["status"] == "FLAGGED"):
        alerts = alerts_for(inbox, record["transaction_id"])
        assert len(alerts) == 1, f"{record['transaction_id']}: {len(alerts)} alerts"
        assert alerts[0]["reasons"] == record["reasons"]
    return flagged[0] if chosen is None else chosen(flagged)


def test_accepted_transaction_ends_cleared_and_get_reports_it(api: Api, fraud_alerts: Inbox):
    response = api.post(body())
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "PENDING"
    record = api.wait_for_final(accepted["transaction_id"])
    assert record["status"] == "CLEARED"
    assert record["reasons"] == []
    assert alerts_for(fraud_alerts, accepted["transaction_id"]) == []


def test_card_number_is_never_echoed_beyond_bin_and_last4(api: Api):
    pan = luhn_pan()
    response = api.post({**body(), "card": {"number": pan, "expiry": "12/39", "cvv": "737"}})
    assert response.status_code == 202, response.text
    record = api.wait_for_final(response.json()["transaction_id"])
    assert record["card"] == {"bin": pan[:6], "last4": pan[-4:]}
    assert pan not in json.dumps(record) and pan not in response.text


@pytest.mark.parametrize("scenario", fraud_scenarios(), ids=lambda scenario: scenario.rule)
def test_each_fraud_pattern_is_flagged_with_exactly_one_alert(api: Api, fraud_alerts: Inbox, scenario):
    if scenario.warmup:
        finals(api, submit_all(api, scenario.warmup))
    flagged = assert_flagged_once(api, fraud_alerts, submit_all(api, scenario.requests), scenario.rule)
    (alert,) = alerts_for(fraud_alerts, flagged["transaction_id"])
    assert alert["card"] == {"bin": None, "last4": None}  # tokens have neither; a PAN shows BIN + last 4 only


def test_request_without_or_with_a_wrong_api_key_is_403(api: Api):
    assert api.post(body(), key=None).status_code == 403
    assert api.post(body(), key="not-the-key").status_code == 403


def test_malformed_body_is_400_naming_the_problem(api: Api):
    response = api.post({"merchant_id": "test-merchant-001", "amount": 12})
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"currency", "card", "amount"} <= fields
    not_json = api.post(None, raw="{not json")
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 2_000 + "1" + "]" * 2_000,  # past a recursive parser's limit
        json.dumps(body())[:-1] + ', "amount": "1.00"}',  # a key twice: two parsers, two readings
    ],
    ids=["nested-2000-deep", "repeated-key"],
)
def test_hostile_bodies_are_400_with_the_json_error_body(api: Api, raw: str):
    response = api.post(None, raw=raw)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "MALFORMED_REQUEST"


def test_bad_card_data_is_400_per_field_without_echoing_what_was_sent(api: Api):
    pan = luhn_pan()
    wrong_check_digit = pan[:-1] + str((int(pan[-1]) + 1) % 10)  # fails the Luhn check
    bad_card = {**body(), "card": {"number": wrong_check_digit, "expiry": "13/99", "cvv": "73"}}
    response = api.post(bad_card)
    assert response.status_code == 400, response.text
    assert {"card.number", "card.expiry", "card.cvv"} <= {e["field"] for e in response.json()["errors"]}
    # Not JSON at all: the API's own fixed answer, which quotes nothing either.
    not_json = api.post(None, raw=f'{{"card": {{"number": "{pan}", "cvv": "737"')
    assert not_json.status_code == 400
    for answer in (response, not_json):
        assert pan[:12] not in answer.text and "13/99" not in answer.text
        assert '"73"' not in answer.text and "737" not in answer.text
        json.loads(answer.text)  # valid JSON whatever was sent


def test_unknown_merchant_is_422_with_a_reason_code(api: Api):
    response = api.post(body(merchant=f"no-such-merchant-{uuid.uuid4().hex[:8]}"))
    assert response.status_code == 422
    assert response.json()["code"] == "MERCHANT_NOT_FOUND"


def test_retry_with_the_same_transaction_id_is_idempotent(api: Api):
    request = body(transaction_id=f"it-{uuid.uuid4().hex}")
    first, second = api.post(request), api.post(request)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert api.wait_for_final(request["transaction_id"])["status"] == "CLEARED"
    changed = api.post({**request, "amount": "26.00"})
    assert changed.status_code == 409


def test_get_with_an_id_outside_the_documented_pattern_is_refused_without_echoing_it(api: Api):
    # '!' is outside the id pattern; a card number never is an id (POST refuses PAN-like ids).
    for transaction_id in ("BAD_ID!", luhn_pan()):
        response = api.get(transaction_id)
        assert response.status_code == 400
        assert "transaction_id must be" in response.json()["message"]
        assert transaction_id not in response.text


def test_unknown_transaction_is_404(api: Api):
    assert api.get(f"never-{uuid.uuid4().hex}").status_code == 404


def test_poison_message_ends_failed_with_its_reason(outputs: dict[str, Any], api: Api, ops_notices: Inbox):
    """A message the fraud detector can never process dead-letters and the failed handler records it."""
    sqs = aws_client(outputs, "sqs")
    transaction_id = f"poison-{uuid.uuid4().hex}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = unprocessable_message(transaction_id, now)
    sqs.send_message(QueueUrl=outputs["transaction_queue_url"], MessageBody=json.dumps(message))
    sqs.send_message(QueueUrl=outputs["transaction_queue_url"], MessageBody="this is not a transaction")
    record = api.wait_for_final(transaction_id, timeout=DEAD_LETTER_TIMEOUT)
    assert record["status"] == "FAILED"
    assert "maxReceiveCount" in json.dumps(record)
    notices = ops_notices.matching(lambda notice: notice.get("transaction_id") == transaction_id)
    assert len(notices) == 1
    poison = ops_notices.matching(lambda notice: notice.get("outcome") == "poison", settle=0)
    assert poison, "the unparseable message was not recorded by the failed handler"


def test_f21_sample_transaction_output_is_accepted(outputs: dict[str, Any], api: Api):
    sample = json.loads(outputs["sample_transaction"])
    response = api.post({**sample, "card": {"token": unique_token()}})
    assert response.status_code == 202, response.text

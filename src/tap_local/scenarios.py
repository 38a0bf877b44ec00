"""Requests that exercise every outcome of the pipeline, shared by the demo and the integration tests.

Each fraud scenario targets the strict test merchant the stack seeds (every rule weight 100), so a
single rule firing is enough to flag, and uses fresh card tokens so per-card state starts empty.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from tap_contract.card_numbers import with_check_digit
from tap_contract.seed import STRICT_TEST_MERCHANT_ID, TEST_MERCHANT_ID

DEFAULT_MERCHANT = TEST_MERCHANT_ID
STRICT_MERCHANT = STRICT_TEST_MERCHANT_ID


def unique_token() -> str:
    return f"tok_it_{uuid.uuid4().hex}"


def luhn_pan(prefix: str = "4", length: int = 16) -> str:
    """A random Luhn-valid card number (test data, never a real card)."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(length - len(prefix) - 1))  # noqa: S311
    return with_check_digit(body)


def transaction(merchant: str = DEFAULT_MERCHANT, amount: str = "25.00", **extra: Any) -> dict[str, Any]:
    return {
        "merchant_id": merchant,
        "amount": amount,
        "currency": "USD",
        "card": {"token": unique_token()},
        **extra,
    }


def on_card(token: str, request: dict[str, Any]) -> dict[str, Any]:
    return {**request, "card": {"token": token}}


@dataclass(frozen=True)
class FraudScenario:
    """Requests whose processing should flag at least one transaction for `rule`."""

    rule: str
    warmup: list[dict[str, Any]]  # sent and settled first (e.g. a merchant baseline)
    requests: list[dict[str, Any]]


def fraud_scenarios() -> list[FraudScenario]:
    velocity_card, testing_card, duplicate_card = unique_token(), unique_token(), unique_token()
    return [
        # 7 uses of one card within a minute; the rule fires above 5
        FraudScenario(
            "velocity_1m",
            [],
            [on_card(velocity_card, transaction(STRICT_MERCHANT, f"{30 + i}.00")) for i in range(7)],
        ),
        # 25 ordinary EUR amounts build the merchant's EUR baseline, apart from other tests' USD traffic
        FraudScenario(
            "amount_spike",
            [{**transaction(STRICT_MERCHANT, f"{20 + i % 7}.00"), "currency": "EUR"} for i in range(25)],
            [{**transaction(STRICT_MERCHANT, "4999.00"), "currency": "EUR"}],
        ),
        # five small amounts from one card across two merchants
        FraudScenario(
            "card_testing",
            [],
            [
                on_card(testing_card, transaction([STRICT_MERCHANT, DEFAULT_MERCHANT][i % 2], f"1.0{i}"))
                for i in range(5)
            ],
        ),
        FraudScenario("duplicate", [], [on_card(duplicate_card, transaction(STRICT_MERCHANT, "77.70"))] * 2),
        FraudScenario("geo_mismatch", [], [transaction(STRICT_MERCHANT, "45.00", country="FR")]),
        FraudScenario("amount_over_limit", [], [transaction(STRICT_MERCHANT, "1500.00")]),
    ]


def unprocessable_message(transaction_id: str, timestamp: str) -> dict[str, Any]:
    """A well-formed queue message for a transaction that has no record: scoring fails every time."""
    return {
        "schema_version": 1,
        "transaction_id": transaction_id,
        "timestamp": timestamp,
        "merchant_id": DEFAULT_MERCHANT,
        "merchant_shard": f"{DEFAULT_MERCHANT}#0",
        "amount": "10.00",
        "currency": "USD",
        "card": {"fingerprint": uuid.uuid4().hex, "kind": "token"},
    }

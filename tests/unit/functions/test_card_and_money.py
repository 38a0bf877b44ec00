"""Card data primitives (Luhn, keyed fingerprint, expiry) and ISO 4217 amounts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_contract import card_numbers, money
from tap_pipeline import card

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("79927398713", True),  # the textbook Luhn example
        ("4111111111111112", False),
        ("79927398710", False),
        ("", False),
        ("4111 1111 1111 1111", False),
        ("٤١١١١١١١١١١١١١١١", False),  # Arabic-Indic digits are not card digits
    ],
)
def test_luhn(number, valid):
    assert card_numbers.luhn_valid(number) is valid


@settings(max_examples=200)
@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.integers(0, 17), st.integers(1, 9))
def test_luhn_catches_every_single_digit_error(body, position, delta):
    number = card_numbers.with_check_digit(body)
    position %= len(number)
    typo = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]

    assert not card_numbers.luhn_valid(typo)


def test_fingerprint_is_keyed_stable_and_domain_separated():
    pan = "4111111111111111"

    first = card.fingerprint(KEY, "pan", pan)

    assert first == card.fingerprint(KEY, "pan", pan)
    assert first != card.fingerprint(b"x" * 32, "pan", pan)
    assert first != card.fingerprint(KEY, "token", pan)
    assert pan not in first and len(first) == 64


def test_fingerprint_refuses_short_keys():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        card.fingerprint(b"short", "pan", "4111111111111111")


def test_reference_keeps_only_bin_and_last4():
    reference = card.snapshot_of_pan(KEY, "4111111111111111")

    assert (reference.bin, reference.last4) == ("411111", "1111")
    assert "4111111111111111" not in repr(reference)


@given(body=st.from_regex(r"\A[0-9]{11,18}\Z"))
def test_with_check_digit_appends_the_one_digit_that_makes_a_number_luhn_valid(body):
    number = card_numbers.with_check_digit(body)
    assert number[:-1] == body and card_numbers.luhn_valid(number)
    assert [d for d in "0123456789" if card_numbers.luhn_valid(body + d)] == [number[-1]]


@pytest.mark.parametrize(
    ("expiry", "problem"),
    [
        ("05/25", None),  # valid through the end of its month
        ("04/25", "card has expired"),
        ("12/24", "card has expired"),
        ("13/30", "month must be 01-12"),
        ("00/30", "month must be 01-12"),
        ("5/25", "must be MM/YY"),
        ("05-25", "must be MM/YY"),
        ("05/60", "expiry is implausibly far in the future"),
    ],
)
def test_expiry(expiry, problem):
    assert card_numbers.expiry_problem(expiry, now=datetime(2025, 5, 31, 23, 59, tzinfo=UTC)) == problem


def test_looks_like_pan_in_free_text():
    assert card_numbers.looks_like_pan("cust-4111111111111111")
    assert not card_numbers.looks_like_pan("cust-4111111111111112")
    assert not card_numbers.looks_like_pan("order-1234")


@pytest.mark.parametrize(
    "text",
    [
        "4111-1111-1111-1111",
        "id.4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "4111 1111 1111 1111",
        "3782-822463-10005",
    ],
)
def test_looks_like_pan_when_written_in_card_groups(text):
    assert card_numbers.looks_like_pan(text)


@pytest.mark.parametrize("text", ["order-2026-11-29-000123", "4111-1111-1111-1112", "inv:2026:000000123456"])
def test_digit_groupings_that_are_not_card_formatting_or_fail_luhn_are_not_pans(text):
    assert not card_numbers.looks_like_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "id:4111111111111111",
        "4111111111111111.v2",
        "ORD4111111111111111",  # letters next to the digits do not hide a PAN
        "4111111111111111x",
        "x4111-1111-1111-1111",
        "4111-1111-1111-1111-123",  # PAN followed by its CVV
        "order-2024-4111-1111-1111-1111",  # a date group before the card groups
        "res-9fc2d54cd09c-4111111111111111-bacb",
    ],
)
def test_a_pan_anywhere_in_the_text_is_refused(text):
    assert card_numbers.looks_like_pan(text)


def test_random_identifiers_are_not_scanned_for_card_numbers():
    # Found by CI: the resilience harness's uuid4().hex id held a Luhn-valid 13-digit run.
    assert not card_numbers.looks_like_pan("res-9fc2d54cd09c4111111111111111bacbaa")
    assert not card_numbers.looks_like_pan("4111111111111111" + "ab" * 8)  # 32 hex characters
    assert card_numbers.looks_like_pan("4111111111111111" + "ab" * 7)  # 30: not a random id


@settings(max_examples=3000, deadline=None)
@given(st.uuids())
def test_uuid_ids_are_never_taken_for_card_numbers(value):
    for text in (value.hex, str(value), f"txn-{value.hex}", f"txn_{value}", str(value).upper()):
        assert not card_numbers.looks_like_pan(text)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("CLF", 4)],
)
def test_iso4217_exponents(currency, exponent):
    assert money.exponent(currency) == exponent


def test_non_transactable_codes_are_unknown():
    for code in ("XAU", "XDR", "XTS", "XXX", "ABC"):
        assert not money.is_known_currency(code)


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [("12.34", "USD", Decimal("12.34")), ("1500", "JPY", Decimal(1500)), ("1.234", "BHD", Decimal("1.234"))],
)
def test_parse_amount(text, currency, expected):
    assert money.parse_amount(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "USD", "has 3 decimal places but USD allows at most 2"),
        ("1.5", "JPY", "has 1 decimal places but JPY allows at most 0"),
        ("0.00", "USD", "must be greater than zero"),
        ("-1", "USD", "positive decimal string"),
        ("01.00", "USD", "positive decimal string"),
        ("1,000.00", "USD", "positive decimal string"),
        ("NaN", "USD", "positive decimal string"),
        ("1000000000000", "USD", "positive decimal string"),
    ],
)
def test_parse_amount_rejects(text, currency, message):
    with pytest.raises(money.AmountError, match=message):
        money.parse_amount(text, currency)


def test_format_amount_uses_currency_decimals():
    assert money.format_amount(Decimal("12.5"), "USD") == "12.50"
    assert money.format_amount(Decimal("1500"), "JPY") == "1500"
    assert money.format_amount(Decimal("1.2"), "KWD") == "1.200"

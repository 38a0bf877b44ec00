"""Test card numbers (the networks' published Luhn-valid test PANs) and an expiry that stays valid."""

from __future__ import annotations

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
FUTURE_EXPIRY = "12/39"

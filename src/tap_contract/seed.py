"""The merchants the stack seeds (F21), which tests, the demo and the sample transaction use."""

from __future__ import annotations

TEST_MERCHANT_ID = "test-merchant-001"
"""Active, USD/EUR, 0.50-5000.00, US; default fraud rules."""

STRICT_TEST_MERCHANT_ID = "test-merchant-strict"
"""As the test merchant, but every rule weighs 100, so any one rule flags on its own."""

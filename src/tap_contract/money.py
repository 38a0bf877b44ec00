"""ISO 4217 currencies and exact decimal amounts.

Amounts travel as decimal strings and are handled as :class:`~decimal.Decimal`, never ``float``,
so ``0.1 + 0.2`` problems cannot creep into limits or fraud aggregates. The number of decimals a
client may send is the currency's ISO 4217 minor-unit exponent: 2 for USD/EUR, 0 for JPY/KRW,
3 for BHD/KWD… A request with more decimals than its currency allows is malformed, not rounded.

Only active, transactable currencies are listed: funds codes, precious metals, SDR and testing
codes (XAU, XDR, XTS, …) are not card-payment currencies and are rejected as unknown.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_TWO_DECIMALS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
    "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS.split(), 2),
    **dict.fromkeys(_ZERO_DECIMALS.split(), 0),
    **dict.fromkeys(_THREE_DECIMALS.split(), 3),
    **dict.fromkeys(_FOUR_DECIMALS.split(), 4),
}
"""ISO 4217 alphabetic code -> minor unit exponent (number of decimals)."""

# Plain positive decimal notation only: no sign, exponent, spaces, thousands separators or
# leading zeros. At most 12 integer digits (a trillion major units) keeps every aggregate well
# inside DynamoDB's 38-digit numbers.
AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$"
_AMOUNT_RE = re.compile(AMOUNT_PATTERN)


class AmountError(ValueError):
    """The amount string is not an acceptable amount for its currency."""


def exponent(currency: str) -> int:
    """Minor unit exponent of ``currency``; :class:`KeyError` when unknown."""
    return CURRENCY_EXPONENTS[currency]


def is_known_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def parse_amount(text: str, currency: str) -> Decimal:
    """Parse a client amount string, enforcing format, positivity and the currency's precision."""
    if not _AMOUNT_RE.fullmatch(text):
        raise AmountError(
            'must be a positive decimal string such as "12.34" (digits, optional point, no sign or exponent)'
        )
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        raise AmountError("is not a decimal number") from None
    if value <= 0:
        raise AmountError("must be greater than zero")
    allowed = CURRENCY_EXPONENTS.get(currency)
    if allowed is not None:
        decimals = len(text.partition(".")[2])
        if decimals > allowed:
            raise AmountError(f"has {decimals} decimal places but {currency} allows at most {allowed}")
    return value


def format_amount(value: Decimal, currency: str) -> str:
    """Canonical string of an amount with exactly the currency's number of decimals."""
    places = CURRENCY_EXPONENTS.get(currency, 2)
    return str(value.quantize(Decimal(1).scaleb(-places)))

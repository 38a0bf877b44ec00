"""Card numbers as the API sees them: the Luhn check, PAN detection in free text, expiry dates.

Pure functions of strings, shared by the request model (a PAN is refused in any field but
``card.number``), the function package's log redaction and fingerprints, and every generator of test
card numbers (one Luhn implementation in the project).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import pairwise


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn (mod 10) check."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Random identifiers are taken out before the scan: a canonical UUID or a hex string of 32+
# characters (uuid4().hex, a SHA digest) holds a Luhn-valid 13-digit run about once in 600 values,
# and refusing those would fail a client at random, not protect a card. A PAN hidden inside such a
# string cannot be told from a random one.
_RANDOM_ID = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32,})(?![0-9A-Za-z])"
)
# Everything else is scanned for a card number as people write it: one unbroken run of 13-19 digits,
# or digit groups split by one kind of separator in a card layout. Letters next to the digits do not
# hide it (`ORD4111111111111111` is refused); other digit groupings, such as dates, are not card
# formatting and are not refused on a chance Luhn match.
_DIGIT_RUN = re.compile(r"[0-9]+")
_CARD_SEPARATORS = frozenset(" ._:-")
# Group lengths of card layouts: 4-4-4-4 (13 to 19 digits with a short last group or a fifth
# group) and 4-6-5 / 4-6-4 (Amex, Diners).
_CARD_LAYOUTS = (
    *((4, 4, 4, last) for last in range(1, 5)),
    *((4, 4, 4, 4, last) for last in range(1, 4)),
    (4, 6, 4),
    (4, 6, 5),
)


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _in_card_layout(text: str, window: list[tuple[int, int]], layout: tuple[int, ...]) -> bool:
    """True when the digit runs at `window` have the layout's lengths and one card separator."""
    if len(window) != len(layout):
        return False
    if any(end - start != size for (start, end), size in zip(window, layout, strict=True)):
        return False
    separators = {text[left_end:right_start] for (_, left_end), (right_start, _) in pairwise(window)}
    return len(separators) == 1 and separators <= _CARD_SEPARATORS


def looks_like_pan(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid 13-19 digit card number, plain or in card groups.

    Used to refuse PANs in free-text fields (ids, the GET path), so that a card number pasted into
    the wrong field is never stored, logged or echoed. Every grouping is tried, overlapping ones
    included: `order-2024-4111-1111-1111-1111` and a PAN followed by its CVV are both caught.
    """
    text = _RANDOM_ID.sub(" ", text)
    runs = [match.span() for match in _DIGIT_RUN.finditer(text)]
    if any(_is_card_number(text[start:end]) for start, end in runs):
        return True
    for first in range(len(runs)):
        for layout in _CARD_LAYOUTS:
            window = runs[first : first + len(layout)]
            if _in_card_layout(text, window, layout) and _is_card_number(
                "".join(text[start:end] for start, end in window)
            ):
                return True
    return False


def with_check_digit(body: str) -> str:
    """``body`` followed by the one digit that makes it Luhn-valid (test and demo card numbers)."""
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def expiry_problem(expiry: str, now: datetime | None = None) -> str | None:
    """Why an ``MM/YY`` expiry is unacceptable, or ``None`` when it is fine.

    A card is valid through the last day of its expiry month. Dates more than 20 years ahead are
    rejected as implausible (issuers use at most ~10).
    """
    if len(expiry) != 5 or expiry[2] != "/" or not (expiry[:2] + expiry[3:]).isdigit():
        return "must be MM/YY"
    month, year = int(expiry[:2]), 2000 + int(expiry[3:])
    if not 1 <= month <= 12:
        return "month must be 01-12"
    today = (now or datetime.now(UTC)).astimezone(UTC)
    if (year, month) < (today.year, today.month):
        return "card has expired"
    if year > today.year + 20:
        return "expiry is implausibly far in the future"
    return None

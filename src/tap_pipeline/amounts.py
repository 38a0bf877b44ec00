"""A merchant's typical amounts as a log-amount histogram: robust, additive, constant size.

Why a histogram of ``ln(amount)``: card spending is roughly lognormal (many small baskets, a long
tail of large ones), so distances are measured in log space, where "50x the typical amount" is the
same distance at a coffee shop and at a jeweller. Quantiles of the histogram give a *robust* centre
(the median) and spread (the interquartile range), which a run of outliers cannot drag the way it
drags a mean and a standard deviation: an attacker has to outnumber a quarter of the merchant's
history to move them. And a histogram is additive (``ADD`` of bin counts), so it can be sharded
across items and updated in any order without read-modify-write, at a constant size (one counter
per occupied bin of width :data:`BIN_WIDTH`; a merchant's amounts usually span 20-60 bins).

This module is pure: no I/O, so the statistics are tested on their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from tap_contract import money
from tap_contract.messages import TransactionMessage

# Bin width in ln units: 0.2 is a 22 % step in amount; quantiles interpolate inside a bin.
BIN_WIDTH = 0.2
# Bin index offset so amounts down to e^-20 (far below any minor unit) get non-negative indexes.
BIN_OFFSET = 100
# IQR / 1.349 estimates a normal distribution's standard deviation.
IQR_TO_SIGMA = 1.349
# Floor on the spread (ln units; 0.5 ~ a factor of 1.65): a merchant selling at one price would
# otherwise see any other amount as many deviations away.
MIN_SPREAD = 0.5
# Young profiles' spread is shrunk towards this (ln units: card spending's log-spread is typically
# 0.6-1.2), weighted as this many samples (see AmountProfile.spread_log).
PRIOR_SPREAD = 1.0
PRIOR_WEIGHT = 20
# Fewer samples than this and the profile says nothing useful (the policy for little history).
MIN_SAMPLES = 20
# Cleared amounts at least this many robust deviations above the median stay out of the profile.
OUTLIER_DEVIATION = 3.0


def bin_of(amount: Decimal) -> int:
    """The histogram bin of a (positive) amount."""
    return max(0, math.floor(math.log(max(float(amount), 1e-8)) / BIN_WIDTH) + BIN_OFFSET)


def bin_attribute(index: int) -> str:
    """The item attribute holding a bin's count (``h`` + index: a valid DynamoDB name, no escaping)."""
    return f"h{index}"


def bins_of_item(item: Mapping[str, object]) -> dict[int, int]:
    """Bin counts stored on one baseline item (attributes ``h<index>``)."""
    return {
        int(name[1:]): int(str(value))
        for name, value in item.items()
        if name.startswith("h") and name[1:].isdigit()
    }


@dataclass(frozen=True)
class AmountProfile:
    """Histogram of ``ln(amount)`` of a merchant's cleared transactions in one currency."""

    bins: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, amounts: Iterable[Decimal]) -> AmountProfile:
        bins: dict[int, int] = {}
        for amount in amounts:
            index = bin_of(amount)
            bins[index] = bins.get(index, 0) + 1
        return cls(bins)

    @classmethod
    def merged(cls, parts: Iterable[Mapping[int, int]]) -> AmountProfile:
        bins: dict[int, int] = {}
        for part in parts:
            for index, count in part.items():
                bins[index] = bins.get(index, 0) + count
        return cls(bins)

    # Derived once per profile: a cached profile serves every transaction of its merchant for a
    # minute, and the bins never change in place (merging builds a new profile).
    @cached_property
    def count(self) -> int:
        return sum(self.bins.values())

    @property
    def established(self) -> bool:
        return self.count >= MIN_SAMPLES

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of ln(amount), interpolated linearly inside its bin."""
        total = self.count
        if total == 0:
            raise ValueError("empty profile")
        target = q * total
        seen = 0
        for index in sorted(self.bins):
            count = self.bins[index]
            if count and seen + count >= target:
                lower = (index - BIN_OFFSET) * BIN_WIDTH
                return lower + BIN_WIDTH * (target - seen) / count
            seen += count
        return (max(self.bins) - BIN_OFFSET + 1) * BIN_WIDTH

    @cached_property
    def median_log(self) -> float:
        return self.quantile(0.5)

    @cached_property
    def spread_log(self) -> float:
        """Robust standard deviation of ln(amount), shrunk towards :data:`PRIOR_SPREAD` while the
        profile is young and floored at :data:`MIN_SPREAD`.

        Why shrink: an interquartile range from 20-50 amounts is noisy, and an underestimate turns
        the tail of ordinary spending into "spikes" at exactly the merchants with the least history.
        Weighting the estimate against :data:`PRIOR_WEIGHT` pseudo-samples of a typical card-spend
        spread keeps young profiles conservative; at a few hundred amounts the prior is negligible.
        """
        observed = (self.quantile(0.75) - self.quantile(0.25)) / IQR_TO_SIGMA
        n = self.count
        blended = math.sqrt((n * observed**2 + PRIOR_WEIGHT * PRIOR_SPREAD**2) / (n + PRIOR_WEIGHT))
        return max(MIN_SPREAD, blended)

    @property
    def median(self) -> Decimal:
        return Decimal(str(round(math.exp(self.median_log), 2)))

    def deviation(self, amount: Decimal) -> float | None:
        """Robust z-score of ``ln(amount)``, or ``None`` while the profile is not established."""
        if not self.established:
            return None
        return (math.log(max(float(amount), 1e-8)) - self.median_log) / self.spread_log


# A charge at or below 5.00 in the currency's major unit (500 minor units) is a card-testing probe size.
SMALL_AMOUNT_MINOR_UNITS = 500


def is_small(message: TransactionMessage) -> bool:
    """True for a small amount, the size card testers probe with."""
    minor = Decimal(message.amount).scaleb(money.exponent(message.currency))
    return minor <= SMALL_AMOUNT_MINOR_UNITS

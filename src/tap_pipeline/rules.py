"""Fraud rules engine: named rules with weights and thresholds, overridable per merchant.

Pure functions over :class:`Facts` (numbers already derived from the fraud-state snapshot and the
transaction), so every rule is testable without AWS and the engine has no I/O.

Scoring: each rule that fires adds its weight; the score is capped at 100. A transaction is
FLAGGED when its score reaches the merchant's ``flag_threshold`` (default 50), else CLEARED.
A merchant's ``rule_overrides`` (rule name -> ``{weight, threshold, enabled}``) replace the defaults
field by field; unknown rule names and malformed values are ignored (and reported), so a typo in
one merchant's configuration can never break scoring for everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_FLAG_THRESHOLD = 50
MAX_SCORE = 100
# Fewer baseline samples than this and a z-score says nothing useful.
MIN_BASELINE_SAMPLES = 20

# Home currency per country, for the country/currency mismatch rule (countries not listed are
# judged on the merchant-country comparison only).
COUNTRY_CURRENCY: Mapping[str, str] = {
    "US": "USD", "CA": "CAD", "MX": "MXN", "BR": "BRL", "AR": "ARS", "GB": "GBP", "IE": "EUR",
    "FR": "EUR", "DE": "EUR", "ES": "EUR", "IT": "EUR", "NL": "EUR", "BE": "EUR", "AT": "EUR",
    "PT": "EUR", "FI": "EUR", "GR": "EUR", "CH": "CHF", "SE": "SEK", "NO": "NOK", "DK": "DKK",
    "PL": "PLN", "CZ": "CZK", "HU": "HUF", "RO": "RON", "TR": "TRY", "IN": "INR", "CN": "CNY",
    "JP": "JPY", "KR": "KRW", "SG": "SGD", "HK": "HKD", "AU": "AUD", "NZ": "NZD", "ZA": "ZAR",
    "AE": "AED", "SA": "SAR", "IL": "ILS", "NG": "NGN", "KE": "KES",
}  # fmt: skip


@dataclass(frozen=True)
class RuleSettings:
    weight: int
    threshold: Decimal | None
    enabled: bool = True


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at for one transaction (all estimates include the transaction)."""

    transaction_id: str
    amount: Decimal
    currency: str
    country: str | None
    merchant_country: str | None
    merchant_max_amount: Decimal | None
    card_count_minute: float
    card_count_hour: float
    is_small_amount: bool
    card_small_count_hour: float
    seconds_since_same_card_merchant_amount: float | None
    baseline_count: Decimal
    baseline_mean: Decimal
    baseline_std: Decimal


@dataclass(frozen=True)
class RuleHit:
    rule: str
    weight: int
    detail: str

    def reason(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass(frozen=True)
class Assessment:
    score: int
    flag_threshold: int
    hits: tuple[RuleHit, ...]
    ignored_overrides: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return self.score >= self.flag_threshold

    @property
    def reasons(self) -> list[str]:
        return [hit.reason() for hit in self.hits]


def _velocity(count: float, threshold: Decimal, window: str) -> str | None:
    if Decimal(str(round(count, 3))) > threshold:
        return f"~{count:.1f} transactions on this card in the last {window} (threshold {threshold})"
    return None


def velocity_1m(facts: Facts, threshold: Decimal) -> str | None:
    return _velocity(facts.card_count_minute, threshold, "minute")


def velocity_1h(facts: Facts, threshold: Decimal) -> str | None:
    return _velocity(facts.card_count_hour, threshold, "hour")


def amount_spike(facts: Facts, threshold: Decimal) -> str | None:
    if facts.baseline_count < MIN_BASELINE_SAMPLES or facts.baseline_std <= 0:
        return None
    z = (facts.amount - facts.baseline_mean) / facts.baseline_std
    if z >= threshold:
        return (
            f"amount is {z:.1f} standard deviations above the merchant's mean "
            f"{facts.baseline_mean:.2f} {facts.currency} (threshold {threshold})"
        )
    return None


def card_testing(facts: Facts, threshold: Decimal) -> str | None:
    if facts.is_small_amount and Decimal(str(round(facts.card_small_count_hour, 3))) >= threshold:
        return (
            f"~{facts.card_small_count_hour:.1f} small-amount transactions on this card across merchants "
            f"in the last hour (threshold {threshold})"
        )
    return None


def duplicate(facts: Facts, threshold: Decimal) -> str | None:
    gap = facts.seconds_since_same_card_merchant_amount
    if gap is not None and Decimal(str(round(gap, 3))) <= threshold:
        return f"same card, merchant and amount {gap:.0f} s earlier (window {threshold} s)"
    return None


def geo_mismatch(facts: Facts, threshold: Decimal) -> str | None:
    del threshold  # this rule has no numeric threshold
    problems = []
    if facts.country and facts.merchant_country and facts.country != facts.merchant_country:
        problems.append(
            f"transaction country {facts.country} differs from merchant country {facts.merchant_country}"
        )
    home = COUNTRY_CURRENCY.get(facts.country or "")
    if home and home != facts.currency:
        problems.append(f"currency {facts.currency} is not the currency of {facts.country} ({home})")
    return "; ".join(problems) or None


def amount_over_limit(facts: Facts, threshold: Decimal) -> str | None:
    if threshold > 0 and facts.amount > threshold:
        return f"amount {facts.amount} {facts.currency} is over the limit {threshold}"
    return None


RuleFunction = Callable[[Facts, Decimal], str | None]

RULES: Mapping[str, RuleFunction] = {
    "velocity_1m": velocity_1m,
    "velocity_1h": velocity_1h,
    "amount_spike": amount_spike,
    "card_testing": card_testing,
    "duplicate": duplicate,
    "geo_mismatch": geo_mismatch,
    "amount_over_limit": amount_over_limit,
}

DEFAULT_RULES: Mapping[str, RuleSettings] = {
    # more than 5 uses of one card in a sliding minute / 20 in a sliding hour
    "velocity_1m": RuleSettings(weight=40, threshold=Decimal(5)),
    "velocity_1h": RuleSettings(weight=30, threshold=Decimal(20)),
    # z-score of the amount against the merchant's running mean / standard deviation
    "amount_spike": RuleSettings(weight=35, threshold=Decimal(3)),
    # this many small amounts (<= SMALL_AMOUNT_MINOR_UNITS) from one card in an hour, any merchant
    "card_testing": RuleSettings(weight=50, threshold=Decimal(5)),
    # same card + merchant + amount within this many seconds
    "duplicate": RuleSettings(weight=50, threshold=Decimal(60)),
    "geo_mismatch": RuleSettings(weight=20, threshold=None),
    # None: the merchant's max_amount; an override threshold sets a lower review limit
    "amount_over_limit": RuleSettings(weight=60, threshold=None),
}


def effective_rules(overrides: Mapping[str, Any] | None) -> tuple[dict[str, RuleSettings], list[str]]:
    """Defaults with a merchant's overrides applied; also returns the overrides that were ignored."""
    rules = dict(DEFAULT_RULES)
    ignored: list[str] = []
    for name, override in (overrides or {}).items():
        if name not in rules or not isinstance(override, Mapping):
            ignored.append(str(name))
            continue
        current = rules[name]
        try:
            if "weight" in override:
                weight = int(Decimal(str(override["weight"])))
                if not 0 <= weight <= MAX_SCORE:
                    raise ValueError(weight)
                current = replace(current, weight=weight)
            if "threshold" in override:
                current = replace(current, threshold=Decimal(str(override["threshold"])))
            if "enabled" in override:
                if not isinstance(override["enabled"], bool):
                    raise ValueError(override["enabled"])
                current = replace(current, enabled=override["enabled"])
        except (ValueError, InvalidOperation, TypeError):
            ignored.append(str(name))
            continue
        rules[name] = current
    return rules, ignored


def evaluate(
    facts: Facts, overrides: Mapping[str, Any] | None = None, flag_threshold: Decimal | int | None = None
) -> Assessment:
    """Run every enabled rule and score the transaction."""
    rules, ignored = effective_rules(overrides)
    hits = []
    for name, settings in rules.items():
        if not settings.enabled:
            continue
        threshold = settings.threshold
        if threshold is None:
            threshold = facts.merchant_max_amount if name == "amount_over_limit" else Decimal(0)
            if threshold is None:
                continue
        detail = RULES[name](facts, threshold)
        if detail:
            hits.append(RuleHit(rule=name, weight=settings.weight, detail=detail))
    score = min(MAX_SCORE, sum(hit.weight for hit in hits))
    limit = int(flag_threshold) if flag_threshold is not None else DEFAULT_FLAG_THRESHOLD
    return Assessment(score=score, flag_threshold=limit, hits=tuple(hits), ignored_overrides=tuple(ignored))

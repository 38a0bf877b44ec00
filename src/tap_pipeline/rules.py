"""Fraud rules engine: named rules with weights and thresholds, overridable per merchant.

Pure functions over :class:`Facts` (numbers already derived from the fraud-state snapshot and the
transaction), so every rule is testable without AWS and the engine has no I/O.

Scoring: each rule that fires adds its weight; the score is capped at 100. A transaction is
FLAGGED when its score reaches the merchant's ``flag_threshold`` (default 50), else CLEARED.
A merchant's ``rule_overrides`` (rule name -> ``{weight, threshold, enabled}``, plus ``countries``
for ``high_risk_country``) replace the defaults field by field; unknown rule names, unknown fields
and malformed values make that rule's override ignored (and reported), so a typo in one merchant's
configuration can never break scoring for everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_FLAG_THRESHOLD = 50
MAX_SCORE = 100

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


# FATF's "high-risk jurisdictions subject to a call for action" (its black list: DPRK, Iran,
# Myanmar), https://www.fatf-gafi.org/en/topics/high-risk-and-other-monitored-jurisdictions.html .
# A default only: merchants replace it with ``{"high_risk_country": {"countries": [...]}}``.
HIGH_RISK_COUNTRIES = frozenset({"KP", "IR", "MM"})


@dataclass(frozen=True)
class RuleSettings:
    weight: int
    threshold: Decimal | None
    enabled: bool = True
    # For list rules (high_risk_country): the values that make the rule fire.
    values: frozenset[str] | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at for one transaction: the features a scored record keeps.

    Card counts include the transaction itself and only count the card's transactions received
    *before* it (by server receive time), so they do not depend on the order in which messages
    are processed. ``amount_deviation`` is the robust z-score of ln(amount) against the merchant's
    profile (``None`` while the merchant has too little history). No card data: the record stores
    these as they are, for backtesting.
    """

    transaction_id: str
    amount: Decimal
    currency: str
    country: str | None
    merchant_country: str | None
    merchant_max_amount: Decimal | None
    card_count_minute: int
    card_count_hour: int
    is_small_amount: bool
    card_small_count_hour: int
    seconds_since_same_card_merchant_amount: float | None
    card_merchants_10m: int
    baseline_count: int
    baseline_median: Decimal | None
    amount_deviation: float | None

    def to_features(self) -> dict[str, Any]:
        """The facts as a DynamoDB-storable map (numbers as Decimal, absent values left out)."""
        features: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or name == "transaction_id":
                continue
            if isinstance(value, float):
                value = Decimal(str(round(value, 4)))
            features[name] = value
        return features

    @classmethod
    def from_features(cls, transaction_id: str, features: Mapping[str, Any]) -> Facts:
        """Rebuild the facts a record was scored on (the inverse of :meth:`to_features`)."""

        def number(name: str, kind: type) -> Any:
            value = features.get(name)
            return None if value is None else kind(value)

        return cls(
            transaction_id=transaction_id,
            amount=Decimal(str(features["amount"])),
            currency=str(features["currency"]),
            country=features.get("country"),
            merchant_country=features.get("merchant_country"),
            merchant_max_amount=number("merchant_max_amount", Decimal),
            card_count_minute=int(features.get("card_count_minute", 1)),
            card_count_hour=int(features.get("card_count_hour", 1)),
            is_small_amount=bool(features.get("is_small_amount", False)),
            card_small_count_hour=int(features.get("card_small_count_hour", 0)),
            seconds_since_same_card_merchant_amount=number("seconds_since_same_card_merchant_amount", float),
            card_merchants_10m=int(features.get("card_merchants_10m", 1)),
            baseline_count=int(features.get("baseline_count", 0)),
            baseline_median=number("baseline_median", Decimal),
            amount_deviation=number("amount_deviation", float),
        )


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


def rule_of(reason: str) -> str:
    """The rule name of a stored reason (``"rule: detail"``, see :meth:`RuleHit.reason`)."""
    return reason.split(":", 1)[0]


def _rounded(value: float) -> Decimal:
    """A measured float as the Decimal a threshold is compared with (3 places: no float noise)."""
    return Decimal(str(round(value, 3)))


def _velocity(count: int, threshold: Decimal, window: str) -> str | None:
    if count > threshold:
        return f"{count} transactions on this card in the last {window} (threshold {threshold})"
    return None


def velocity_1m(facts: Facts, settings: RuleSettings) -> str | None:
    return _velocity(facts.card_count_minute, _threshold(settings), "minute")


def velocity_1h(facts: Facts, settings: RuleSettings) -> str | None:
    return _velocity(facts.card_count_hour, _threshold(settings), "hour")


def _deviation(facts: Facts, settings: RuleSettings) -> str | None:
    """Shared by the two amount rules: the amount's distance from the merchant's typical amount."""
    deviation, median, threshold = facts.amount_deviation, facts.baseline_median, _threshold(settings)
    if deviation is None or median is None or _rounded(deviation) < threshold:
        return None
    ratio = facts.amount / median if median > 0 else Decimal(0)
    return (
        f"amount {facts.amount} {facts.currency} is {ratio:.1f}x the merchant's median {median} "
        f"({deviation:.1f} robust deviations of log amount; threshold {threshold})"
    )


def amount_spike(facts: Facts, settings: RuleSettings) -> str | None:
    return _deviation(facts, settings)


def foreign_large_amount(facts: Facts, settings: RuleSettings) -> str | None:
    if not (facts.country and facts.merchant_country and facts.country != facts.merchant_country):
        return None
    detail = _deviation(facts, settings)
    return f"card from {facts.country} at a {facts.merchant_country} merchant; {detail}" if detail else None


def card_testing(facts: Facts, settings: RuleSettings) -> str | None:
    threshold = _threshold(settings)
    if facts.is_small_amount and facts.card_small_count_hour >= threshold:
        return (
            f"{facts.card_small_count_hour} small-amount transactions on this card across merchants "
            f"in the last hour (threshold {threshold})"
        )
    return None


def duplicate(facts: Facts, settings: RuleSettings) -> str | None:
    gap = facts.seconds_since_same_card_merchant_amount
    window = _threshold(settings)
    if gap is not None and _rounded(gap) <= window:
        return f"same card, merchant and amount {gap:.0f} s earlier (window {window} s)"
    return None


def merchant_spread(facts: Facts, settings: RuleSettings) -> str | None:
    threshold = _threshold(settings)
    if facts.card_merchants_10m >= threshold:
        return (
            f"this card was used at {facts.card_merchants_10m} different merchants in the last "
            f"10 minutes (threshold {threshold})"
        )
    return None


def geo_mismatch(facts: Facts, settings: RuleSettings) -> str | None:
    del settings  # this rule has no numeric threshold
    problems = []
    if facts.country and facts.merchant_country and facts.country != facts.merchant_country:
        problems.append(
            f"transaction country {facts.country} differs from merchant country {facts.merchant_country}"
        )
    home = COUNTRY_CURRENCY.get(facts.country or "")
    if home and home != facts.currency:
        problems.append(f"currency {facts.currency} is not the currency of {facts.country} ({home})")
    return "; ".join(problems) or None


def high_risk_country(facts: Facts, settings: RuleSettings) -> str | None:
    countries = settings.values if settings.values is not None else HIGH_RISK_COUNTRIES
    if facts.country and facts.country in countries:
        return f"card country {facts.country} is on the high-risk list"
    return None


def amount_over_limit(facts: Facts, settings: RuleSettings) -> str | None:
    # No threshold: the merchant's max_amount; an override threshold sets a lower review limit.
    limit = settings.threshold if settings.threshold is not None else facts.merchant_max_amount
    if limit is not None and limit > 0 and facts.amount > limit:
        return f"amount {facts.amount} {facts.currency} is over the limit {limit}"
    return None


def _threshold(settings: RuleSettings) -> Decimal:
    return settings.threshold if settings.threshold is not None else Decimal(0)


RuleFunction = Callable[[Facts, RuleSettings], str | None]

RULES: Mapping[str, RuleFunction] = {
    "velocity_1m": velocity_1m,
    "velocity_1h": velocity_1h,
    "amount_spike": amount_spike,
    "foreign_large_amount": foreign_large_amount,
    "card_testing": card_testing,
    "duplicate": duplicate,
    "merchant_spread": merchant_spread,
    "geo_mismatch": geo_mismatch,
    "high_risk_country": high_risk_country,
    "amount_over_limit": amount_over_limit,
}

# Weights: a rule that alone identifies a classic attack weighs the flag threshold (50), so it flags
# on its own; weak signals (geo, high-risk country, hourly velocity) weigh less and flag together.
# FRAUD.md measures these defaults on labelled traffic (make fraud-eval).
DEFAULT_RULES: Mapping[str, RuleSettings] = {
    # more than 5 uses of one card within a minute / 20 within an hour (any merchant)
    "velocity_1m": RuleSettings(weight=50, threshold=Decimal(5)),
    "velocity_1h": RuleSettings(weight=30, threshold=Decimal(20)),
    # robust z-score of ln(amount) against the merchant's profile: 3 ~ 20x the median for a
    # typical spread; below 1 in 700 of ordinary lognormal amounts
    "amount_spike": RuleSettings(weight=50, threshold=Decimal(3)),
    # a card from another country than the merchant's, spending in the top ~7 % of its amounts
    "foreign_large_amount": RuleSettings(weight=50, threshold=Decimal("1.5")),
    # this many small amounts (<= SMALL_AMOUNT_MINOR_UNITS) from one card in an hour, any merchant
    "card_testing": RuleSettings(weight=50, threshold=Decimal(5)),
    # same card + merchant + amount received within this many seconds after an earlier one
    "duplicate": RuleSettings(weight=50, threshold=Decimal(60)),
    # one card at this many different merchants within 10 minutes
    "merchant_spread": RuleSettings(weight=50, threshold=Decimal(4)),
    "geo_mismatch": RuleSettings(weight=20, threshold=None),
    "high_risk_country": RuleSettings(weight=30, threshold=None),
    # None: the merchant's max_amount; an override threshold sets a lower review limit
    "amount_over_limit": RuleSettings(weight=60, threshold=None),
}


# The fields a rule override may set; anything else (a typo such as "treshold") makes the override
# ignored and reported, rather than silently doing nothing.
OVERRIDE_FIELDS = frozenset({"weight", "threshold", "enabled", "countries"})


def effective_rules(overrides: Mapping[str, Any] | None) -> tuple[dict[str, RuleSettings], list[str]]:
    """Defaults with a merchant's overrides applied; also returns the overrides that were ignored."""
    rules, problems = _with_overrides(overrides)
    return rules, [name for name, _ in problems]


def override_problems(overrides: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(rule, what is wrong) for every override :func:`effective_rules` would ignore."""
    return _with_overrides(overrides)[1]


def _with_overrides(
    overrides: Mapping[str, Any] | None,
) -> tuple[dict[str, RuleSettings], list[tuple[str, str]]]:
    rules = dict(DEFAULT_RULES)
    problems: list[tuple[str, str]] = []
    for name, override in (overrides or {}).items():
        if name not in rules:
            problems.append((str(name), "unknown rule"))
            continue
        try:
            rules[name] = _applied(rules[name], override)
        except _Ignored as problem:
            problems.append((str(name), str(problem)))
    return rules, problems


class _Ignored(ValueError):
    """Why one rule's override cannot be applied (it is then ignored, and reported)."""


def _applied(current: RuleSettings, override: Any) -> RuleSettings:
    """``current`` with one override applied, field by field; :class:`_Ignored` says what is wrong."""
    if not isinstance(override, Mapping):
        raise _Ignored(f"override must be an object, got {shown(override)}")
    unknown = sorted(set(override) - OVERRIDE_FIELDS)
    if unknown:  # a typo such as "treshold" would otherwise silently do nothing
        raise _Ignored(
            f"unknown field {', '.join(map(repr, unknown))} (fields: {', '.join(sorted(OVERRIDE_FIELDS))})"
        )
    if "weight" in override and not is_whole(override["weight"]):
        raise _Ignored(f"weight must be a whole number, got {shown(override['weight'])}")
    try:
        if "weight" in override:
            weight = int(Decimal(str(override["weight"])))
            if not 0 <= weight <= MAX_SCORE:
                raise ValueError(weight)
            current = replace(current, weight=weight)
        if "threshold" in override:
            current = replace(current, threshold=Decimal(str(override["threshold"])))
        if "countries" in override:
            countries = override["countries"]
            if not isinstance(countries, list | tuple | set) or not all(
                isinstance(c, str) for c in countries
            ):
                raise ValueError(countries)
            current = replace(current, values=frozenset(countries))
        if "enabled" in override:
            if not isinstance(override["enabled"], bool):
                raise ValueError(override["enabled"])
            current = replace(current, enabled=override["enabled"])
    except (ValueError, InvalidOperation, TypeError):
        raise _Ignored(f"invalid value {shown(override)}") from None
    return current


def shown(value: Any) -> str:
    """A value as the user wrote it (JSON numbers arrive as Decimal; their repr would confuse)."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def is_whole(value: Any) -> bool:
    """A whole number, however written (``50``, ``"50"``, ``Decimal("50.0")``); never a bool."""
    if isinstance(value, bool):
        return False
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return False
    return number.is_finite() and number == number.to_integral_value()


def evaluate(
    facts: Facts, overrides: Mapping[str, Any] | None = None, flag_threshold: Decimal | int | None = None
) -> Assessment:
    """Run every enabled rule and score the transaction."""
    rules, ignored = effective_rules(overrides)
    hits = []
    for name, settings in rules.items():
        if not settings.enabled:
            continue
        detail = RULES[name](facts, settings)
        if detail:
            hits.append(RuleHit(rule=name, weight=settings.weight, detail=detail))
    score = min(MAX_SCORE, sum(hit.weight for hit in hits))
    limit = int(flag_threshold) if flag_threshold is not None else DEFAULT_FLAG_THRESHOLD
    return Assessment(score=score, flag_threshold=limit, hits=tuple(hits), ignored_overrides=tuple(ignored))

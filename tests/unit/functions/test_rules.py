"""Rules engine (P4): every rule fires on its pattern and stays quiet otherwise; per-merchant overrides."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tap_pipeline import rules
from tap_pipeline.rules import Facts, evaluate

QUIET = Facts(
    transaction_id="t-1",
    amount=Decimal("25.00"),
    currency="USD",
    country="US",
    merchant_country="US",
    merchant_max_amount=Decimal("5000"),
    card_count_minute=1.0,
    card_count_hour=1.0,
    is_small_amount=False,
    card_small_count_hour=0.0,
    seconds_since_same_card_merchant_amount=None,
    baseline_count=Decimal(100),
    baseline_mean=Decimal(25),
    baseline_std=Decimal(5),
)

# rule -> (facts that must make it fire, facts just on the quiet side of its threshold)
CASES = {
    "velocity_1m": ({"card_count_minute": 6.0}, {"card_count_minute": 5.0}),
    "velocity_1h": ({"card_count_hour": 21.0}, {"card_count_hour": 20.0}),
    "amount_spike": ({"amount": Decimal("40.00")}, {"amount": Decimal("39.99")}),
    "card_testing": (
        {"is_small_amount": True, "card_small_count_hour": 5.0},
        {"is_small_amount": True, "card_small_count_hour": 4.9},
    ),
    "duplicate": (
        {"seconds_since_same_card_merchant_amount": 60.0},
        {"seconds_since_same_card_merchant_amount": 60.5},
    ),
    "geo_mismatch": ({"country": "DE", "currency": "USD"}, {"country": "US", "currency": "USD"}),
    "amount_over_limit": (
        {"amount": Decimal("5000.01"), "baseline_count": Decimal(0)},
        {"amount": Decimal("5000.00"), "baseline_count": Decimal(0)},
    ),
}


def test_quiet_transaction_fires_no_rule_and_clears():
    assessment = evaluate(QUIET)

    assert assessment.hits == ()
    assert assessment.score == 0
    assert not assessment.flagged


def test_every_rule_has_a_case():
    assert set(CASES) == set(rules.RULES) == set(rules.DEFAULT_RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_on_its_pattern(rule):
    firing, _ = CASES[rule]

    assessment = evaluate(replace(QUIET, **firing))

    assert [hit.rule for hit in assessment.hits] == [rule]
    assert assessment.score == rules.DEFAULT_RULES[rule].weight
    assert assessment.reasons[0].startswith(f"{rule}: ")


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_is_quiet_just_below_its_threshold(rule):
    _, quiet = CASES[rule]

    assert evaluate(replace(QUIET, **quiet)).hits == ()


def test_amount_spike_needs_enough_baseline_samples():
    facts = replace(QUIET, amount=Decimal("1000"), baseline_count=Decimal(rules.MIN_BASELINE_SAMPLES - 1))

    assert evaluate(facts).hits == ()


def test_amount_spike_ignores_a_flat_baseline():
    facts = replace(QUIET, amount=Decimal("1000"), baseline_std=Decimal(0))

    assert evaluate(facts).hits == ()


def test_card_testing_only_counts_small_amounts():
    facts = replace(QUIET, is_small_amount=False, card_small_count_hour=50.0)

    assert evaluate(facts).hits == ()


def test_geo_mismatch_on_merchant_country_alone():
    facts = replace(QUIET, country="CA", currency="CAD", merchant_country="US")

    assert [hit.rule for hit in evaluate(facts).hits] == ["geo_mismatch"]


def test_geo_mismatch_on_currency_alone():
    facts = replace(QUIET, country="US", currency="EUR")

    hit = evaluate(facts).hits[0]
    assert "EUR is not the currency of US" in hit.detail


def test_scores_add_up_cap_at_100_and_flag_at_threshold():
    everything = replace(
        QUIET,
        card_count_minute=10.0,
        card_count_hour=30.0,
        seconds_since_same_card_merchant_amount=1.0,
    )

    assessment = evaluate(everything)

    assert {hit.rule for hit in assessment.hits} == {"velocity_1m", "velocity_1h", "duplicate"}
    assert assessment.score == 100  # 40 + 30 + 50 capped
    assert assessment.flagged


def test_single_weak_rule_does_not_flag():
    assessment = evaluate(replace(QUIET, country="DE", currency="EUR", merchant_country="US"))

    assert assessment.score == 20
    assert not assessment.flagged


def test_merchant_can_disable_a_rule():
    facts = replace(QUIET, card_count_minute=10.0)

    assessment = evaluate(facts, {"velocity_1m": {"enabled": False}})

    assert assessment.hits == ()


def test_merchant_can_change_weight_and_threshold():
    facts = replace(QUIET, card_count_minute=3.0)

    assert evaluate(facts).hits == ()
    assessment = evaluate(facts, {"velocity_1m": {"threshold": 2, "weight": 70}})
    assert assessment.score == 70
    assert assessment.flagged


def test_override_threshold_sets_a_review_limit_below_the_hard_maximum():
    facts = replace(QUIET, amount=Decimal("1500"), baseline_count=Decimal(0))

    assert evaluate(facts).hits == ()
    assessment = evaluate(facts, {"amount_over_limit": {"threshold": "1000"}})
    assert [hit.rule for hit in assessment.hits] == ["amount_over_limit"]


def test_merchant_flag_threshold_is_respected():
    facts = replace(QUIET, country="DE", currency="EUR", merchant_country="US")

    assert evaluate(facts, flag_threshold=Decimal(20)).flagged
    assert not evaluate(facts, flag_threshold=Decimal(21)).flagged


def test_malformed_and_unknown_overrides_are_ignored_not_fatal():
    facts = replace(QUIET, card_count_minute=10.0)

    assessment = evaluate(
        facts,
        {"velocity_1m": {"weight": "lots"}, "no_such_rule": {"weight": 1}, "duplicate": "off"},
    )

    assert [hit.rule for hit in assessment.hits] == ["velocity_1m"]
    assert assessment.score == rules.DEFAULT_RULES["velocity_1m"].weight
    assert set(assessment.ignored_overrides) == {"velocity_1m", "no_such_rule", "duplicate"}

"""Rules engine (P4): every rule fires on its pattern and stays quiet otherwise; per-merchant overrides."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tap_pipeline import rules
from tap_pipeline.rules import Facts, evaluate
from tap_testing.backend import QUIET_FACTS as QUIET

# rule -> (facts that must make it fire, facts just on the quiet side of its threshold)
CASES = {
    "velocity_1m": ({"card_count_minute": 6}, {"card_count_minute": 5}),
    "velocity_1h": ({"card_count_hour": 21}, {"card_count_hour": 20}),
    "amount_spike": ({"amount_deviation": 3.0}, {"amount_deviation": 2.999}),
    "foreign_large_amount": (
        # geo_mismatch fires too on a foreign card; the case isolates the rule by disabling it
        {"country": "CA", "currency": "USD", "amount_deviation": 1.5},
        {"country": "CA", "currency": "USD", "amount_deviation": 1.499},
    ),
    "card_testing": (
        {"is_small_amount": True, "card_small_count_hour": 5},
        {"is_small_amount": True, "card_small_count_hour": 4},
    ),
    "duplicate": (
        {"seconds_since_same_card_merchant_amount": 60.0},
        {"seconds_since_same_card_merchant_amount": 60.5},
    ),
    "merchant_spread": ({"card_merchants_10m": 4}, {"card_merchants_10m": 3}),
    "geo_mismatch": ({"country": "DE", "currency": "USD"}, {"country": "US", "currency": "USD"}),
    "high_risk_country": (
        {"country": "KP", "merchant_country": "KP", "currency": "USD"},
        {"country": "KR", "merchant_country": "KR", "currency": "USD"},
    ),
    "amount_over_limit": (
        {"amount": Decimal("5000.01"), "amount_deviation": None},
        {"amount": Decimal("5000.00"), "amount_deviation": None},
    ),
}
# What else a case's facts fire by construction, switched off to test the rule alone.
ALONE = {
    "foreign_large_amount": {"geo_mismatch": {"enabled": False}},
    "high_risk_country": {"geo_mismatch": {"enabled": False}},
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

    assessment = evaluate(replace(QUIET, **firing), ALONE.get(rule))

    assert [hit.rule for hit in assessment.hits] == [rule]
    assert assessment.score == rules.DEFAULT_RULES[rule].weight
    assert assessment.reasons[0].startswith(f"{rule}: ")


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_is_quiet_just_below_its_threshold(rule):
    _, quiet = CASES[rule]

    assert evaluate(replace(QUIET, **quiet), ALONE.get(rule)).hits == ()


def test_amount_rules_are_silent_while_the_merchant_has_little_history():
    facts = replace(QUIET, amount=Decimal("4000"), country="CA", amount_deviation=None, baseline_median=None)

    assert [hit.rule for hit in evaluate(facts).hits] == ["geo_mismatch"]


def test_every_default_attack_rule_flags_on_its_own():
    """The classic attack families each have a rule weighing the flag threshold (issue 10)."""
    for rule in ("velocity_1m", "amount_spike", "foreign_large_amount", "card_testing", "duplicate"):
        assert rules.DEFAULT_RULES[rule].weight >= rules.DEFAULT_FLAG_THRESHOLD, rule


def test_foreign_large_amount_needs_a_foreign_card():
    assert evaluate(replace(QUIET, amount_deviation=2.5)).hits == ()


def test_high_risk_countries_can_be_replaced_per_merchant():
    facts = replace(QUIET, country="NG", merchant_country="NG", currency="NGN")

    assert evaluate(facts).hits == ()
    assessment = evaluate(facts, {"high_risk_country": {"countries": ["NG"]}})
    assert [hit.rule for hit in assessment.hits] == ["high_risk_country"]
    assert evaluate(facts, {"high_risk_country": {"countries": "NG"}}).ignored_overrides == (
        "high_risk_country",
    )


def test_spike_reason_names_the_ratio_to_the_median():
    facts = replace(QUIET, amount=Decimal("2000.00"), baseline_median=Decimal("40.00"), amount_deviation=4.3)

    (hit,) = evaluate(facts).hits
    assert hit.detail.startswith("amount 2000.00 USD is 50.0x the merchant's median 40.00")


def test_facts_survive_the_round_trip_through_a_stored_record():
    facts = replace(QUIET, seconds_since_same_card_merchant_amount=12.5, amount_deviation=1.23456)

    again = Facts.from_features("t-1", facts.to_features())

    assert again == replace(facts, amount_deviation=1.2346)
    assert "transaction_id" not in facts.to_features()


def test_card_testing_only_counts_small_amounts():
    facts = replace(QUIET, is_small_amount=False, card_small_count_hour=50)

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
        card_count_minute=10,
        card_count_hour=30,
        seconds_since_same_card_merchant_amount=1.0,
    )

    assessment = evaluate(everything)

    assert {hit.rule for hit in assessment.hits} == {"velocity_1m", "velocity_1h", "duplicate"}
    assert assessment.score == 100  # 50 + 30 + 50 capped
    assert assessment.flagged


def test_single_weak_rule_does_not_flag():
    assessment = evaluate(replace(QUIET, country="DE", currency="EUR", merchant_country="US"))

    assert assessment.score == 20
    assert not assessment.flagged


def test_merchant_can_disable_a_rule():
    facts = replace(QUIET, card_count_minute=10)

    assessment = evaluate(facts, {"velocity_1m": {"enabled": False}})

    assert assessment.hits == ()


def test_merchant_can_change_weight_and_threshold():
    facts = replace(QUIET, card_count_minute=3)

    assert evaluate(facts).hits == ()
    assessment = evaluate(facts, {"velocity_1m": {"threshold": 2, "weight": 70}})
    assert assessment.score == 70
    assert assessment.flagged


def test_override_threshold_sets_a_review_limit_below_the_hard_maximum():
    facts = replace(QUIET, amount=Decimal("1500"), amount_deviation=None)

    assert evaluate(facts).hits == ()
    assessment = evaluate(facts, {"amount_over_limit": {"threshold": "1000"}})
    assert [hit.rule for hit in assessment.hits] == ["amount_over_limit"]


def test_merchant_flag_threshold_is_respected():
    facts = replace(QUIET, country="DE", currency="EUR", merchant_country="US")

    assert evaluate(facts, flag_threshold=Decimal(20)).flagged
    assert not evaluate(facts, flag_threshold=Decimal(21)).flagged


def test_malformed_and_unknown_overrides_are_ignored_not_fatal():
    facts = replace(QUIET, card_count_minute=10)

    assessment = evaluate(
        facts,
        {"velocity_1m": {"weight": "lots"}, "no_such_rule": {"weight": 1}, "duplicate": "off"},
    )

    assert [hit.rule for hit in assessment.hits] == ["velocity_1m"]
    assert assessment.score == rules.DEFAULT_RULES["velocity_1m"].weight
    assert set(assessment.ignored_overrides) == {"velocity_1m", "no_such_rule", "duplicate"}


def test_override_with_an_unknown_field_or_a_fractional_weight_is_ignored_and_reported():
    facts = replace(QUIET, card_count_minute=3)

    typo = evaluate(facts, {"velocity_1m": {"treshold": 2}})
    fractional = evaluate(facts, {"velocity_1m": {"threshold": 2, "weight": "50.5"}})

    assert typo.hits == () and typo.ignored_overrides == ("velocity_1m",)
    assert fractional.hits == () and fractional.ignored_overrides == ("velocity_1m",)

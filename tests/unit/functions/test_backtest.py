"""Backtesting a rule change (pure): verdict changes both ways, why, skipped records, refused proposals."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from tap_pipeline.backtest import InvalidProposal, ScoringConfig, SkipReason, backtest, check_proposal
from tap_pipeline.rules import Facts, evaluate
from tap_testing.backend import QUIET_FACTS as QUIET

DEFAULTS = ScoringConfig()


def _scored(transaction_id: str, config: ScoringConfig = DEFAULTS, second: int = 0, **facts: Any) -> dict:
    """A record as the detector stores it after scoring ``facts`` under ``config``."""
    features = replace(QUIET, transaction_id=transaction_id, **facts).to_features()
    assessment = config.evaluate(Facts.from_features(transaction_id, features))
    return {
        "transaction_id": transaction_id,
        "timestamp": f"2024-05-01T10:00:{second:02d}.000Z",
        "status": "FLAGGED" if assessment.flagged else "CLEARED",
        "fraud_score": Decimal(assessment.score),
        "reasons": assessment.reasons,
        "merchant_id": "m-1",
        "amount": features["amount"],
        "currency": features["currency"],
        "features": features,
    }


def _ids(report: Any) -> list[str]:
    return [change.transaction_id for change in report.changes]


def test_verdict_changes_are_counted_both_ways_and_unchanged_ones_are_not_listed():
    records = [
        _scored("burst", second=1, card_count_minute=3),  # CLEARED, flagged at threshold 2
        _scored("dup", second=2, seconds_since_same_card_merchant_amount=10.0),  # FLAGGED by duplicate
        _scored("quiet", second=3),
        _scored("storm", second=4, card_count_minute=9),  # FLAGGED before and after
    ]
    proposal = {"velocity_1m": {"threshold": 2}, "duplicate": {"enabled": False}}

    report = backtest(records, DEFAULTS, proposal)

    assert (report.considered, report.rescored, report.skipped_total) == (4, 4, 0)
    assert (report.cleared_to_flagged, report.flagged_to_cleared) == (1, 1)
    assert _ids(report) == ["burst", "dup"]
    burst, dup = report.changes
    assert (burst.old.status, burst.old.score, burst.new.status, burst.new.score) == (
        "CLEARED",
        0,
        "FLAGGED",
        50,
    )
    assert (dup.old.status, dup.old.rules, dup.new.status, dup.new.rules) == (
        "FLAGGED",
        ("duplicate",),
        "CLEARED",
        (),
    )
    assert (burst.amount, burst.currency, burst.timestamp) == (
        Decimal("25.00"),
        "USD",
        "2024-05-01T10:00:01.000Z",
    )
    assert report.not_reproduced == 0


def test_why_names_the_rules_that_differ_with_their_new_reasons():
    records = [
        _scored("burst", card_count_minute=3),
        _scored("dup", seconds_since_same_card_merchant_amount=10.0),
    ]

    report = backtest(records, DEFAULTS, {"velocity_1m": {"threshold": 2}, "duplicate": {"enabled": False}})

    burst, dup = report.changes
    assert [(d.rule, d.change) for d in burst.rule_differences] == [("velocity_1m", "now fires")]
    assert burst.why == (
        "velocity_1m now fires (velocity_1m: 3 transactions on this card in the last minute (threshold 2))"
    )
    assert burst.new.reasons == (burst.rule_differences[0].reason,)
    assert dup.why == "duplicate no longer fires"


def test_a_weight_change_is_a_rule_difference():
    record = _scored("abroad", country="DE")  # geo_mismatch alone: 20, CLEARED

    report = backtest([record], DEFAULTS, {"geo_mismatch": {"weight": 50}})

    (change,) = report.changes
    assert change.new.status == "FLAGGED"
    assert change.why.startswith("geo_mismatch weight 20 -> 50 (geo_mismatch: transaction country DE")


def test_a_flag_threshold_change_alone_is_named_in_why():
    record = _scored("abroad", country="DE")

    report = backtest([record], DEFAULTS, None, 20)

    (change,) = report.changes
    assert change.rule_differences == ()
    assert change.flag_threshold_change == (50, 20)
    assert change.why == "flag threshold 50 -> 20"
    assert report.proposed.effective_flag_threshold == 20


def test_records_without_a_final_verdict_or_features_are_skipped_and_counted_by_reason():
    good = _scored("good")
    no_features = {**_scored("old"), "features": None}
    broken = {**_scored("broken"), "features": {"card_count_minute": 1}}  # no amount
    received = {"transaction_id": "r", "timestamp": "2024-05-01T10:00:00.000Z", "status": "RECEIVED"}
    failed = {**received, "transaction_id": "f", "status": "FAILED"}

    report = backtest(
        [good, no_features, broken, received, failed], DEFAULTS, {"velocity_1m": {"weight": 10}}
    )

    assert (report.considered, report.rescored) == (5, 1)
    assert report.skipped == {
        SkipReason.NO_FEATURES: 1,
        SkipReason.UNREADABLE_FEATURES: 1,
        SkipReason.NOT_FINAL: 1,
        SkipReason.FAILED: 1,
    }
    assert report.changes == ()


def test_the_proposal_replaces_the_merchants_override_of_each_rule_it_names():
    current = ScoringConfig({"velocity_1m": {"weight": 30}, "geo_mismatch": {"enabled": False}}, Decimal(30))
    record = _scored("burst", current, card_count_minute=3)

    report = backtest([record], current, {"velocity_1m": {"threshold": 2}})

    assert report.proposed.rule_overrides == {
        "velocity_1m": {"threshold": 2},
        "geo_mismatch": {"enabled": False},
    }
    assert report.proposed.flag_threshold == Decimal(30)  # kept: the proposal does not name one
    (change,) = report.changes
    assert change.new.score == 50  # the default weight: the merchant's weight 30 was replaced


def test_records_the_current_configuration_does_not_reproduce_are_counted_and_marked():
    stale = {**_scored("stale", card_count_minute=3), "status": "FLAGGED", "fraud_score": Decimal(50)}

    report = backtest([stale], DEFAULTS, {"velocity_1m": {"threshold": 4}})

    assert report.not_reproduced == 1
    (change,) = report.changes
    assert not change.reproduced
    assert change.why == "no rule difference; the current configuration does not reproduce the stored verdict"


def test_the_report_is_json_ready():
    current = ScoringConfig({"high_risk_country": {"countries": {"NG", "KP"}}}, Decimal(40))
    records = [_scored("burst", current, card_count_minute=3)]

    document = backtest(records, current, {"velocity_1m": {"threshold": Decimal("2.5")}}).to_dict()

    again = json.loads(json.dumps(document))
    assert again["cleared_to_flagged"] == 1
    assert again["proposed"]["rule_overrides"]["velocity_1m"] == {"threshold": "2.5"}
    assert again["current"]["rule_overrides"]["high_risk_country"] == {"countries": ["KP", "NG"]}
    assert again["changes"][0]["amount"] == "25.00"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"velocity_5m": {"threshold": 2}}, "velocity_5m: unknown rule"),
        ({"velocity_1m": 2}, "velocity_1m: override must be an object"),
        ({"velocity_1m": {"treshold": 2}}, "velocity_1m: unknown field 'treshold'"),
        ({"velocity_1m": {"threshold": "two"}}, "velocity_1m: invalid value"),
        ({"velocity_1m": {"weight": 101}}, "velocity_1m: invalid value"),
        ({"velocity_1m": {"weight": 2.5}}, "velocity_1m: weight must be a whole number"),
        ({"geo_mismatch": {"enabled": "no"}}, "geo_mismatch: invalid value"),
        ({"high_risk_country": {"countries": "NG"}}, "high_risk_country: invalid value"),
        (["velocity_1m"], "must be an object of rule name"),
    ],
)
def test_an_invalid_proposed_override_is_refused_with_the_rule_named(overrides, named):
    with pytest.raises(InvalidProposal) as refused:
        backtest([_scored("t")], DEFAULTS, overrides)

    assert named in str(refused.value)


@pytest.mark.parametrize("threshold", ["abc", 0, 101, "50.5", True, "NaN"])
def test_an_invalid_flag_threshold_is_refused(threshold):
    with pytest.raises(InvalidProposal, match="flag threshold must be a whole number from 1 to 100"):
        check_proposal(None, threshold)


def test_live_scoring_would_have_ignored_what_the_backtest_refuses():
    """Why refusing matters: evaluate() drops the bad override and scores as if nothing changed."""
    assessment = evaluate(QUIET, {"velocity_5m": {"threshold": 2}})

    assert assessment.ignored_overrides == ("velocity_5m",)


def test_the_merchants_own_invalid_overrides_are_reported_not_refused():
    current = ScoringConfig({"velocity_5m": {"threshold": 2}})

    report = backtest([_scored("t")], current, {"velocity_1m": {"threshold": 2}})

    assert report.current_ignored_overrides == ("velocity_5m",)

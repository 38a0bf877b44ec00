"""Issue 10 / "Quality at volume": the default rules catch each classic attack family (recall >= 0.95)
at a false-positive rate <= 1 % on labelled traffic, checked on a small seed set (`make fraud-eval`
runs the full plan). A correctness check of verdicts, never of timing."""

from __future__ import annotations

from datetime import timedelta

from fraud_eval import report, traffic
from tap_pipeline.backtest import Verdict
from tests.unit.modules import run_module


def test_quick_plan_defaults_meet_the_recall_and_false_positive_targets():
    result = run_module("fraud_eval", "--mode", "quick", "--no-write", timeout=900)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert "Targets (recall >= 0.95 per classic family, FPR <= 1 %): **met**." in result.stdout
    for family in traffic.CLASSIC_FAMILIES:
        assert f"| {family} (classic) |" in result.stdout


def test_generator_is_seeded_and_labels_what_should_be_flagged():
    first = traffic.generate(5, traffic.QUICK)
    again = traffic.generate(5, traffic.QUICK)
    other = traffic.generate(6, traffic.QUICK)

    assert first == again
    assert first != other
    families = {t.family for t in first}
    assert families == {"normal", *traffic.FAMILIES}
    velocity = [t for t in first if t.family == "velocity"]
    per_burst = traffic.QUICK.per_family
    assert sum(t.should_flag for t in velocity) == 7 * per_burst  # uses 6-12 of each burst of 12
    duplicates = [t for t in first if t.family == "duplicate"]
    assert sum(not t.fraud for t in duplicates) == per_burst  # the first, genuine charge of each pair
    assert all(t.transaction_id.count("-") >= 3 and not t.fraud for t in first if t.family == "normal")


def test_generated_ids_never_look_like_card_numbers():
    from tap_contract.api import is_transaction_id
    from tap_contract.card_numbers import looks_like_pan

    for seed in (1, 2, 3):
        for transaction in traffic.generate(seed, traffic.QUICK):
            assert is_transaction_id(transaction.transaction_id)
            assert not looks_like_pan(transaction.transaction_id)


def test_attacks_come_after_the_warm_up():
    labelled = traffic.generate(3, traffic.QUICK)
    warm_up = timedelta(hours=traffic.QUICK.hours * traffic.QUICK.warmup_share)

    assert all(t.at - traffic.START >= warm_up for t in labelled if t.family != "normal")


def _labels(family: str, count: int, should_flag: bool, fraud: bool) -> list[traffic.Labelled]:
    generator = traffic.Generator(9, traffic.QUICK)
    at, merchant = traffic.START, traffic.MERCHANTS[0]
    return [
        generator.labelled(family, at, merchant, "10.00", generator.card(), "US", fraud, should_flag)
        for _ in range(count)
    ]


def test_report_counts_recall_false_positives_and_rule_precision():
    normal = _labels("normal", 200, False, False)
    spikes = _labels("amount_spike", 20, True, True)
    verdicts = {t.transaction_id: Verdict("CLEARED", 0, ()) for t in normal + spikes}
    verdicts[normal[0].transaction_id] = Verdict("FLAGGED", 50, ("amount_spike",))
    for t in spikes[:19]:
        verdicts[t.transaction_id] = Verdict("FLAGGED", 50, ("amount_spike",))

    evaluation = report.evaluate([(9, normal + spikes, verdicts)])

    assert evaluation.families["amount_spike"].recall == 19 / 20
    assert evaluation.families["normal"].fpr == 1 / 200
    assert evaluation.rules["amount_spike"].precision == 19 / 20
    assert evaluation.rules["amount_spike"].on_expected == 19
    assert evaluation.families["amount_spike"].precision == 1.0
    assert evaluation.families["normal"].precision == 0.0
    assert evaluation.precision == 19 / 20
    assert len(evaluation.misses) == 1 and len(evaluation.false_alarms) == 1


def test_report_fails_the_targets_when_the_detector_misses():
    """The quick check can fail: a detector that clears everything misses every family."""
    labelled = traffic.generate(4, traffic.QUICK)
    cleared = {t.transaction_id: Verdict("CLEARED", 0, ()) for t in labelled}

    failures = report.evaluate([(4, labelled, cleared)]).failures()

    assert len(failures) == len(traffic.CLASSIC_FAMILIES)
    assert all("recall 0.000" in failure for failure in failures)


def test_report_fails_on_too_many_false_positives():
    labelled = traffic.generate(4, traffic.QUICK)
    flagged = {t.transaction_id: Verdict("FLAGGED", 50, ("geo_mismatch",)) for t in labelled}

    assert report.evaluate([(4, labelled, flagged)]).failures() == ["false-positive rate 1.0000 > 0.01"]


def test_markdown_section_replaces_only_its_own_part(tmp_path):
    document = tmp_path / "FRAUD.md"
    document.write_text("# Fraud\n\nhand-written\n")

    report.write_section(document, "first\n")
    report.write_section(document, "second\n")

    text = document.read_text()
    assert text.startswith("# Fraud\n\nhand-written\n")
    assert "second" in text and "first" not in text

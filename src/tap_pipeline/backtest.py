"""Backtesting a fraud-rule change on scored transactions before enabling it (no I/O).

Every CLEARED/FLAGGED record keeps ``features``: the :class:`~tap_pipeline.rules.Facts` its rules
saw. Re-running :func:`~tap_pipeline.rules.evaluate` on them with a proposed configuration shows
which verdicts the change would have flipped, and why, without touching live scoring.

What is compared: the verdict *stored on the record* (what really happened) against the verdict
under the proposal. Each record is also re-scored with the merchant's *current* configuration: the
rule differences ("why") are taken between that baseline and the proposal, so they name exactly
what the proposal changes (a rule that starts or stops firing, or fires with another weight). A
record whose baseline does not reproduce its stored verdict and score was scored under another
configuration (the merchant's overrides changed since, or the rules did); such records are counted
as ``not_reproduced`` and marked on their change, since part of their change is not the proposal's.

How a proposal combines with the merchant's configuration: for every rule it names, the proposal
*replaces* the merchant's override for that rule as a whole (not field by field), exactly as
writing the proposal's entries into the merchant's ``rule_overrides`` map would; rules it does not
name keep the merchant's overrides. So ``{"velocity_1m": {"threshold": 2}}`` on a merchant whose
override is ``{"velocity_1m": {"weight": 30}}`` backtests velocity_1m at threshold 2 with the
*default* weight. A proposed ``flag_threshold`` replaces the merchant's; ``None`` keeps it.

Live scoring ignores an invalid override (one merchant's typo must not break scoring); a
backtest refuses it instead (:class:`InvalidProposal`), because a proposal that silently does
nothing would report "no change" for a change that was never tested.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tap_contract.api import Status
from tap_pipeline import rules
from tap_pipeline.rules import Assessment, Facts

RESCORED_STATUSES = frozenset({Status.CLEARED.value, Status.FLAGGED.value})


class InvalidProposal(ValueError):
    """The proposed overrides or flag threshold would not be applied as written."""


class SkipReason(StrEnum):
    """Why a record was not re-scored."""

    NOT_FINAL = "not_final"  # still RECEIVED (or an unknown status): it has no verdict yet
    FAILED = "failed"  # dead-lettered: never scored, so there is no verdict to compare
    NO_FEATURES = "no_features"  # scored before features were kept
    UNREADABLE_FEATURES = "unreadable_features"  # features that do not rebuild into Facts


@dataclass(frozen=True)
class ScoringConfig:
    """A merchant's rule overrides and flag threshold (``None``: the default threshold)."""

    rule_overrides: Mapping[str, Any] = field(default_factory=dict)
    flag_threshold: Decimal | None = None

    @property
    def effective_flag_threshold(self) -> int:
        """The threshold evaluate() applies (it truncates to an int and defaults to 50)."""
        if self.flag_threshold is None:
            return rules.DEFAULT_FLAG_THRESHOLD
        return int(self.flag_threshold)

    def evaluate(self, facts: Facts) -> Assessment:
        return rules.evaluate(facts, self.rule_overrides, self.flag_threshold)


@dataclass(frozen=True)
class Verdict:
    status: str
    score: int
    rules: tuple[str, ...]
    reasons: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return self.status == Status.FLAGGED.value

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Verdict:
        """The verdict a stored record (or a GET response) holds."""
        reasons = tuple(str(reason) for reason in record.get("reasons") or ())
        return cls(
            status=str(record["status"]),
            score=int(record.get("fraud_score", -1)),
            rules=tuple(rules.rule_of(reason) for reason in reasons),
            reasons=reasons,
        )


@dataclass(frozen=True)
class RuleDifference:
    """One rule that fires differently under the proposal than under the current configuration."""

    rule: str
    change: str  # "now fires", "no longer fires" or "weight 50 -> 20"
    reason: str | None  # the rule's reason under the proposal (None when it no longer fires)

    def describe(self) -> str:
        return f"{self.rule} {self.change}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class VerdictChange:
    transaction_id: str
    timestamp: str
    amount: Decimal
    currency: str
    old: Verdict
    new: Verdict
    rule_differences: tuple[RuleDifference, ...]
    flag_threshold_change: tuple[int, int] | None
    # False: re-scoring with the current configuration does not give the stored verdict and score.
    reproduced: bool

    @property
    def direction(self) -> str:
        return f"{self.old.status}->{self.new.status}"

    @property
    def why(self) -> str:
        """The proposal's differences that explain the new verdict, in one line."""
        parts = [difference.describe() for difference in self.rule_differences]
        if self.flag_threshold_change:
            parts.append("flag threshold {} -> {}".format(*self.flag_threshold_change))
        if not parts:
            parts.append("no rule difference")
        if not self.reproduced:
            parts.append("the current configuration does not reproduce the stored verdict")
        return "; ".join(parts)


@dataclass(frozen=True)
class BacktestReport:
    current: ScoringConfig
    proposed: ScoringConfig  # the merged configuration that was backtested
    considered: int
    rescored: int
    skipped: Mapping[SkipReason, int]
    cleared_to_flagged: int
    flagged_to_cleared: int
    not_reproduced: int
    changes: tuple[VerdictChange, ...]  # oldest first
    # The merchant's own overrides that live scoring ignores (they are ignored here too).
    current_ignored_overrides: tuple[str, ...] = ()

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (amounts and thresholds as strings, so no precision is lost)."""
        return {
            "current": _config_dict(self.current),
            "proposed": _config_dict(self.proposed),
            "considered": self.considered,
            "rescored": self.rescored,
            "skipped": {reason.value: count for reason, count in sorted(self.skipped.items())},
            "cleared_to_flagged": self.cleared_to_flagged,
            "flagged_to_cleared": self.flagged_to_cleared,
            "not_reproduced": self.not_reproduced,
            "current_ignored_overrides": list(self.current_ignored_overrides),
            "changes": [_change_dict(change) for change in self.changes],
        }


def merge_proposal(current: Mapping[str, Any], proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The merchant's overrides with the proposal's entries replacing theirs rule by rule."""
    return {**current, **proposed}


def check_proposal(overrides: Any, flag_threshold: Any) -> tuple[dict[str, Any], Decimal | None]:
    """The proposal as evaluate() takes it, or :class:`InvalidProposal` naming every problem.

    Stricter than live scoring on purpose: where evaluate() ignores (and reports) an override it
    cannot apply (``rules.override_problems``: unknown rule or field, fractional weight, malformed
    value), a backtest refuses the whole proposal, since an ignored override would report "no
    change" for a change never tested; it also refuses a fractional or out-of-range flag threshold
    (evaluate() truncates it).
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise InvalidProposal("rule overrides must be an object of rule name -> override object")
    found = rules.override_problems(overrides)
    problems = [f"{name}: {problem}" for name, problem in found]
    if problems:
        known = ", ".join(rules.RULES)
        raise InvalidProposal(f"invalid rule overrides ({'; '.join(problems)}); rules are: {known}")
    return dict(overrides), _checked_flag_threshold(flag_threshold)


def _checked_flag_threshold(value: Any) -> Decimal | None:
    if value is None:
        return None
    if not rules.is_whole(value) or not 1 <= Decimal(str(value)) <= rules.MAX_SCORE:
        raise InvalidProposal(
            f"flag threshold must be a whole number from 1 to {rules.MAX_SCORE}, got {rules.shown(value)}"
        )
    return Decimal(str(value))


def backtest(
    records: Iterable[Mapping[str, Any]],
    current: ScoringConfig,
    proposed_overrides: Any = None,
    proposed_flag_threshold: Any = None,
) -> BacktestReport:
    """Re-score ``records`` (as stored) under the proposal and report the verdicts that change.

    Raises :class:`InvalidProposal` before looking at any record if the proposal is invalid.
    """
    overrides, threshold = check_proposal(proposed_overrides, proposed_flag_threshold)
    proposed = ScoringConfig(
        rule_overrides=merge_proposal(current.rule_overrides, overrides),
        flag_threshold=threshold if threshold is not None else current.flag_threshold,
    )
    considered, skipped, not_reproduced = 0, Counter[SkipReason](), 0
    changes: list[VerdictChange] = []
    for record in records:
        considered += 1
        facts_or_skip = _facts(record)
        if isinstance(facts_or_skip, SkipReason):
            skipped[facts_or_skip] += 1
            continue
        change, reproduced = _rescore(record, facts_or_skip, current, proposed)
        not_reproduced += not reproduced
        if change is not None:
            changes.append(change)
    changes.sort(key=lambda change: change.timestamp)
    directions = Counter(change.direction for change in changes)
    return BacktestReport(
        current=current,
        proposed=proposed,
        considered=considered,
        rescored=considered - sum(skipped.values()),
        skipped=dict(skipped),
        cleared_to_flagged=directions["CLEARED->FLAGGED"],
        flagged_to_cleared=directions["FLAGGED->CLEARED"],
        not_reproduced=not_reproduced,
        changes=tuple(changes),
        current_ignored_overrides=tuple(rules.effective_rules(current.rule_overrides)[1]),
    )


def _facts(record: Mapping[str, Any]) -> Facts | SkipReason:
    """The facts a record was scored on, or why it cannot be re-scored."""
    status = record.get("status")
    if status == Status.FAILED.value:
        return SkipReason.FAILED
    if status not in RESCORED_STATUSES:
        return SkipReason.NOT_FINAL
    features = record.get("features")
    if not features:
        return SkipReason.NO_FEATURES
    try:
        return Facts.from_features(str(record["transaction_id"]), features)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return SkipReason.UNREADABLE_FEATURES


def _rescore(
    record: Mapping[str, Any], facts: Facts, current: ScoringConfig, proposed: ScoringConfig
) -> tuple[VerdictChange | None, bool]:
    """(the change of verdict under the proposal or None, whether the baseline reproduces the record)."""
    old = Verdict.from_record(record)
    baseline, outcome = current.evaluate(facts), proposed.evaluate(facts)
    reproduced = baseline.flagged == old.flagged and baseline.score == old.score
    new = _verdict(outcome)
    if new.flagged == old.flagged:
        return None, reproduced
    thresholds = (current.effective_flag_threshold, proposed.effective_flag_threshold)
    change = VerdictChange(
        transaction_id=str(record["transaction_id"]),
        timestamp=str(record["timestamp"]),
        amount=Decimal(str(record.get("amount", facts.amount))),
        currency=str(record.get("currency", facts.currency)),
        old=old,
        new=new,
        rule_differences=rule_differences(baseline, outcome),
        flag_threshold_change=thresholds if thresholds[0] != thresholds[1] else None,
        reproduced=reproduced,
    )
    return change, reproduced


def _verdict(assessment: Assessment) -> Verdict:
    status = Status.FLAGGED if assessment.flagged else Status.CLEARED
    return Verdict(
        status=status.value,
        score=assessment.score,
        rules=tuple(hit.rule for hit in assessment.hits),
        reasons=tuple(assessment.reasons),
    )


def rule_differences(baseline: Assessment, proposed: Assessment) -> tuple[RuleDifference, ...]:
    """Rules that fire only under one of the two assessments, or with different weights."""
    before = {hit.rule: hit for hit in baseline.hits}
    after = {hit.rule: hit for hit in proposed.hits}
    differences = []
    for rule in rules.RULES:  # the engine's order, so reports read the same way every time
        old, new = before.get(rule), after.get(rule)
        if old is None and new is not None:
            differences.append(RuleDifference(rule, "now fires", new.reason()))
        elif old is not None and new is None:
            differences.append(RuleDifference(rule, "no longer fires", None))
        elif old is not None and new is not None and old.weight != new.weight:
            differences.append(RuleDifference(rule, f"weight {old.weight} -> {new.weight}", new.reason()))
    return tuple(differences)


def _config_dict(config: ScoringConfig) -> dict[str, Any]:
    return {
        "rule_overrides": _plain(config.rule_overrides),
        "flag_threshold": config.effective_flag_threshold,
    }


def _change_dict(change: VerdictChange) -> dict[str, Any]:
    return {
        "transaction_id": change.transaction_id,
        "timestamp": change.timestamp,
        "amount": str(change.amount),
        "currency": change.currency,
        "old": _verdict_dict(change.old),
        "new": _verdict_dict(change.new),
        "why": change.why,
        "rule_differences": [
            {"rule": d.rule, "change": d.change, "reason": d.reason} for d in change.rule_differences
        ],
        "flag_threshold_change": list(change.flag_threshold_change) if change.flag_threshold_change else None,
        "reproduced": change.reproduced,
    }


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "status": verdict.status,
        "score": verdict.score,
        "rules": list(verdict.rules),
        "reasons": list(verdict.reasons),
    }


def _plain(value: Any) -> Any:
    """DynamoDB values (Decimal, sets) as JSON values: whole numbers as int, others as str."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(item) for item in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value

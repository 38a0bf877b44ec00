"""Precision, recall and false-positive rate of the detector's verdicts on labelled traffic, per attack
family and per rule, with a confusion table, a PNG chart and FRAUD.md.

Definitions (a transaction is *flagged* when its status is FLAGGED):

* recall of a family: flagged / transactions of the family that should be flagged (the traffic
  module says which: e.g. a velocity burst's uses 6-12; its first five are fraud no rule can see
  yet, and count neither for nor against recall);
* false-positive rate: flagged legitimate transactions / legitimate transactions (normal traffic,
  and the first, genuine charge of each duplicate pair);
* precision: flagged fraud / flagged, overall and per rule (of the transactions a rule fired on,
  how many were fraud).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fraud_eval.traffic import CLASSIC_FAMILIES, FAMILIES, Labelled
from tap_pipeline.backtest import Verdict

RECALL_TARGET = 0.95
FPR_TARGET = 0.01
FPR_STRETCH = 0.001


@dataclass
class Tally:
    expected: int = 0  # should be flagged
    caught: int = 0  # ... and were
    legit: int = 0
    false_positives: int = 0
    transactions: int = 0
    flagged: int = 0

    @property
    def recall(self) -> float | None:
        return self.caught / self.expected if self.expected else None

    @property
    def fpr(self) -> float | None:
        return self.false_positives / self.legit if self.legit else None

    @property
    def precision(self) -> float | None:
        """Of this family's flagged transactions, the share that were fraud."""
        return (self.flagged - self.false_positives) / self.flagged if self.flagged else None

    def add(self, label: Labelled, flagged: bool) -> None:
        self.transactions += 1
        self.flagged += flagged
        if label.should_flag:
            self.expected += 1
            self.caught += flagged
        if not label.fraud:
            self.legit += 1
            self.false_positives += flagged


@dataclass
class RuleTally:
    fired: int = 0
    on_fraud: int = 0
    on_legit: int = 0
    on_expected: int = 0  # fired on a transaction that should be flagged

    @property
    def precision(self) -> float | None:
        return self.on_fraud / self.fired if self.fired else None


@dataclass
class Evaluation:
    seeds: list[int]
    families: dict[str, Tally] = field(default_factory=dict)
    rules: dict[str, RuleTally] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)
    misses: list[tuple[Labelled, Verdict]] = field(default_factory=list)
    false_alarms: list[tuple[Labelled, Verdict]] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        fraud_flagged = self.total.flagged - self.total.false_positives
        return fraud_flagged / self.total.flagged if self.total.flagged else None

    def failures(self) -> list[str]:
        """Targets not met (empty when the defaults meet them all)."""
        problems = []
        for family in CLASSIC_FAMILIES:
            recall = self.families[family].recall
            if recall is None or recall < RECALL_TARGET:
                problems.append(f"{family}: recall {_ratio(recall)} < {RECALL_TARGET}")
        fpr = self.total.fpr
        if fpr is None or fpr > FPR_TARGET:
            problems.append(f"false-positive rate {_ratio(fpr, 4)} > {FPR_TARGET}")
        return problems


def evaluate(runs: Iterable[tuple[int, list[Labelled], Mapping[str, Verdict]]]) -> Evaluation:
    runs = list(runs)
    result = Evaluation(seeds=[seed for seed, _, _ in runs])
    result.families = {family: Tally() for family in ("normal", *FAMILIES)}
    for _, traffic, verdicts in runs:
        for label in traffic:
            verdict = verdicts[label.transaction_id]
            flagged = verdict.status == "FLAGGED"
            result.families[label.family].add(label, flagged)
            result.total.add(label, flagged)
            for rule in verdict.rules:
                tally = result.rules.setdefault(rule, RuleTally())
                tally.fired += 1
                tally.on_fraud += label.fraud
                tally.on_legit += not label.fraud
                tally.on_expected += label.should_flag
            if label.should_flag and not flagged:
                result.misses.append((label, verdict))
            if flagged and not label.fraud:
                result.false_alarms.append((label, verdict))
    return result


def _ratio(value: float | None, places: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{places}f}"


def markdown(evaluation: Evaluation, chart: str, mode: str) -> str:
    total = evaluation.total
    lines = [
        f"Seeds {', '.join(map(str, evaluation.seeds))} ({mode} plan): {total.transactions:,} transactions, "
        f"{total.legit:,} legitimate, {total.expected:,} that should be flagged. "
        f"Overall precision {_ratio(evaluation.precision)}, false-positive rate {_ratio(total.fpr, 4)} "
        f"(target <= {FPR_TARGET}, stretch <= {FPR_STRETCH}).",
        "",
        "| family | transactions | should be flagged | caught | recall | legitimate | false alarms | FPR "
        "| precision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, tally in evaluation.families.items():
        marker = " (classic)" if family in CLASSIC_FAMILIES else ""
        lines.append(
            f"| {family}{marker} | {tally.transactions:,} | {tally.expected:,} | {tally.caught:,} | "
            f"{_ratio(tally.recall)} | {tally.legit:,} | {tally.false_positives:,} | "
            f"{_ratio(tally.fpr, 4)} | {_ratio(tally.precision)} |"
        )
    lines += [
        "",
        "Confusion (all families):",
        "",
        "| actual \\ verdict | FLAGGED | CLEARED |",
        "|---|---|---|",
        f"| fraud | {total.flagged - total.false_positives:,} | "
        f"{total.transactions - total.legit - (total.flagged - total.false_positives):,} |",
        f"| legitimate | {total.false_positives:,} | {total.legit - total.false_positives:,} |",
        "",
        "Per rule (a transaction can fire several):",
        "",
        "| rule | fired | on fraud | on legitimate | precision "
        "| recall (share of should-be-flagged it fired on) | FPR (share of legitimate it fired on) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule, tally in sorted(evaluation.rules.items(), key=lambda item: -item[1].fired):
        counts = f"{tally.fired:,} | {tally.on_fraud:,} | {tally.on_legit:,} | {_ratio(tally.precision)}"
        recall = tally.on_expected / total.expected if total.expected else None
        fpr = tally.on_legit / total.legit if total.legit else None
        lines.append(f"| {rule} | {counts} | {_ratio(recall)} | {_ratio(fpr, 4)} |")
    lines += ["", f"![recall per family and false-positive rate]({chart})", ""]
    failures = evaluation.failures()
    lines.append(
        "Targets (recall >= 0.95 per classic family, FPR <= 1 %): "
        + ("**met**." if not failures else "**not met**: " + "; ".join(failures) + ".")
    )
    if evaluation.misses or evaluation.false_alarms:
        lines += ["", "Every miss and false alarm (amount, merchant, card country, rules that fired):", ""]
        for kind, cases in (("missed", evaluation.misses), ("false alarm", evaluation.false_alarms)):
            for label, verdict in cases[:40]:
                lines.append(
                    f"- {kind}: {label.family} {label.amount} {label.merchant.currency} at "
                    f"{label.merchant.merchant_id} (card {label.country or 'no country'}): "
                    f"{verdict.status} {verdict.score} {list(verdict.rules)}"
                )
    return "\n".join(lines) + "\n"


def plot(evaluation: Evaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in FAMILIES if evaluation.families[f].expected]
    recalls = [evaluation.families[f].recall or 0.0 for f in families]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    colors = ["tab:blue" if f in CLASSIC_FAMILIES else "tab:gray" for f in families]
    left.bar(families, recalls, color=colors)
    left.axhline(RECALL_TARGET, color="tab:red", linestyle="--", label=f"target {RECALL_TARGET}")
    left.set_ylim(0, 1.05)
    left.set_ylabel("recall")
    left.set_title("Recall per attack family (blue: classic families)")
    left.tick_params(axis="x", rotation=30)
    left.legend(loc="lower right")
    fpr = (evaluation.total.fpr or 0.0) * 100
    right.bar(["normal traffic"], [fpr], color="tab:orange")
    right.axhline(FPR_TARGET * 100, color="tab:red", linestyle="--", label="target 1 %")
    right.axhline(FPR_STRETCH * 100, color="tab:green", linestyle=":", label="stretch 0.1 %")
    right.set_ylim(0, max(FPR_TARGET * 100 * 1.2, fpr * 1.2))
    right.set_ylabel("false-positive rate (%)")
    right.set_title("False positives")
    right.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


BEGIN, END = "<!-- fraud-eval:begin -->", "<!-- fraud-eval:end -->"


def write_section(document: Path, body: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between the markers (or append them) so hand-written parts survive."""
    text = document.read_text() if document.exists() else ""
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    document.write_text(text)

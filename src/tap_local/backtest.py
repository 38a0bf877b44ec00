"""`python -m tap_local backtest --merchant M`: what a fraud-rule change would have done, before enabling it.

Reads one merchant's scored transactions over a window (``merchant-index``, every shard) and its
configuration (one GetItem) from the pipeline named by the outputs file, re-scores them with
:mod:`tap_pipeline.backtest` and prints the verdicts that would change and why. It writes nothing:
every DynamoDB call is checked against a read-only allowlist while it runs, so a later edit that
writes fails loudly instead of changing live data.

Table names come from the outputs file (``cfn-outputs/flat-outputs.json``, as ``redrive`` reads
it); for a local pipeline the emulator's address is read off its queue URL, and for a deployed
stack (``amazonaws.com`` URLs) the ambient AWS configuration is used. The index name and shard
count are the stack's own constants (they are not stack outputs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tap_contract.tables import MERCHANT_INDEX_NAME, MERCHANT_INDEX_SHARDS
from tap_local.emulator import CREDENTIALS, endpoint_of
from tap_pipeline.backtest import BacktestReport, InvalidProposal, ScoringConfig, backtest, check_proposal
from tap_pipeline.data import clients, merchants
from tap_pipeline.data.items import iso_millis
from tap_pipeline.data.merchants import MerchantConfig
from tap_pipeline.data.transactions import TransactionStore

DEFAULT_WINDOW = timedelta(hours=24)
# merchant_history stops after this many records (per shard, then overall, newest first).
DEFAULT_READ_LIMIT = 10_000
READ_ONLY_OPERATIONS = frozenset({"Query", "GetItem"})
USAGE_ERROR = 2
NO_PIPELINE = 1


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


class WriteAttempted(RuntimeError):
    """A DynamoDB call outside the read-only allowlist was made during a backtest."""


@dataclass(frozen=True)
class Tables:
    """Where the backtest reads: the stack's table names and merchant index."""

    transactions: str
    idempotency: str
    merchants: str
    merchant_index: str = MERCHANT_INDEX_NAME
    merchant_index_shards: int = MERCHANT_INDEX_SHARDS

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> Tables:
        return cls(
            transactions=outputs["transactions_table_name"],
            idempotency=outputs["idempotency_table_name"],
            merchants=outputs["merchant_config_table_name"],
        )


@dataclass(frozen=True)
class Window:
    """Inclusive bounds, in the table's timestamp format (so they compare as strings)."""

    since: str
    until: str


@dataclass(frozen=True)
class BacktestRun:
    merchant_id: str
    window: Window
    read_limit: int
    records_read: int  # from the index, before the ``until`` bound was applied
    oldest_read: str | None
    report: BacktestReport

    @property
    def truncated(self) -> bool:
        """The read limit was reached: records older than ``oldest_read`` were not read."""
        return self.records_read >= self.read_limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "since": self.window.since,
            "until": self.window.until,
            "read_limit": self.read_limit,
            "records_read": self.records_read,
            "truncated": self.truncated,
            "oldest_read": self.oldest_read,
            **self.report.to_dict(),
        }


def parse_moment(text: str, option: str) -> datetime:
    """An ISO-8601 date or date-time; without an offset it is taken as UTC (the table's zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO-8601 date or date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_window(since: str | None, until: str | None, now: datetime) -> Window:
    """The window to backtest; by default the ``DEFAULT_WINDOW`` before ``until`` (or now)."""
    end = parse_moment(until, "--until") if until else now
    start = parse_moment(since, "--since") if since else end - DEFAULT_WINDOW
    if start > end:
        raise UsageError(f"--since {iso_millis(start)} is after --until {iso_millis(end)}")
    return Window(since=iso_millis(start), until=iso_millis(end))


def parse_overrides(text: str | None) -> Any:
    """The ``--overrides`` JSON; numbers stay exact (Decimal), as DynamoDB would store them."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--overrides is not valid JSON: {exc}") from None


@contextlib.contextmanager
def read_only(client: Any) -> Iterator[None]:
    """Refuse every call on ``client`` other than ``READ_ONLY_OPERATIONS`` while the block runs."""

    def refuse_writes(model: Any, **_: Any) -> None:
        if model.name not in READ_ONLY_OPERATIONS:
            raise WriteAttempted(f"backtest is read-only; refused DynamoDB {model.name}")

    events, event, unique_id = client.meta.events, "before-call.dynamodb", "tap-backtest-read-only"
    events.register(event, refuse_writes, unique_id=unique_id)
    try:
        yield
    finally:
        events.unregister(event, unique_id=unique_id)


def read_merchant(table: str, merchant_id: str) -> MerchantConfig:
    merchant = merchants.read_config(table, merchant_id, consistent=True)
    if merchant is None:
        raise UsageError(f"merchant {merchant_id!r} is not in {table}")
    return merchant


def run_backtest(
    tables: Tables,
    merchant_id: str,
    window: Window,
    proposed_overrides: Any = None,
    proposed_flag_threshold: Any = None,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> BacktestRun:
    """Read the merchant's configuration and records in ``window`` (reads only), then backtest.

    The proposal is checked before anything is read. ``merchant_history`` has no upper bound, so
    records after ``window.until`` are read and dropped here; they count against ``read_limit``.
    """
    check_proposal(proposed_overrides, proposed_flag_threshold)
    store = TransactionStore(tables.transactions, tables.idempotency)
    with read_only(clients.dynamodb()):
        merchant = read_merchant(tables.merchants, merchant_id)
        history = store.merchant_history(
            tables.merchant_index, tables.merchant_index_shards, merchant_id, window.since, read_limit
        )
    in_window = [record for record in history if record["timestamp"] <= window.until]
    current = ScoringConfig(merchant.rule_overrides, merchant.flag_threshold)
    return BacktestRun(
        merchant_id=merchant_id,
        window=window,
        read_limit=read_limit,
        records_read=len(history),
        oldest_read=history[-1]["timestamp"] if history else None,
        report=backtest(in_window, current, proposed_overrides, proposed_flag_threshold),
    )


def render(run: BacktestRun) -> str:
    """The report for a person: counts first, then one block per changed verdict."""
    report = run.report
    skipped = ", ".join(f"{reason.value} {count}" for reason, count in sorted(report.skipped.items()))
    lines = [
        f"Backtest of {run.merchant_id} from {run.window.since} to {run.window.until}",
        f"  current:  flag threshold {report.current.effective_flag_threshold}, "
        f"overrides {_json(report.current.rule_overrides)}",
        f"  proposed: flag threshold {report.proposed.effective_flag_threshold}, "
        f"overrides {_json(report.proposed.rule_overrides)}",
        f"Records: {report.considered} in the window, {report.rescored} re-scored, "
        f"{report.skipped_total} skipped" + (f" ({skipped})" if skipped else ""),
        f"Verdicts that would change: {len(report.changes)} "
        f"(CLEARED -> FLAGGED {report.cleared_to_flagged}, FLAGGED -> CLEARED {report.flagged_to_cleared})",
    ]
    lines += _warnings(run)
    for change in report.changes:
        lines += [
            "",
            f"  {change.timestamp}  {change.transaction_id}  {change.amount} {change.currency}",
            f"    was: {change.old.status} score {change.old.score} {_rules(change.old.rules)}",
            f"    now: {change.new.status} score {change.new.score} {_rules(change.new.rules)}",
            f"    why: {change.why}",
        ]
    return "\n".join(lines)


def _warnings(run: BacktestRun) -> list[str]:
    report, warnings = run.report, []
    if run.truncated:
        warnings.append(
            f"WARNING: read limit {run.read_limit} reached: records before {run.oldest_read} were not "
            "read; narrow the window or raise --limit"
        )
    if report.not_reproduced:
        warnings.append(
            f"WARNING: {report.not_reproduced} record(s) re-score differently under the current "
            "configuration than they were scored (configuration or rules changed since)"
        )
    if report.current_ignored_overrides:
        warnings.append(
            "WARNING: the merchant's current overrides for "
            f"{', '.join(report.current_ignored_overrides)} are invalid and ignored by live scoring"
        )
    return warnings


def _rules(names: tuple[str, ...]) -> str:
    return f"[{', '.join(names)}]" if names else "[no rule fired]"


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_outputs(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def connect(outputs: Mapping[str, Any], endpoint_url: str | None) -> None:
    """Point this process's AWS clients at the pipeline, as the local functions are pointed at it.

    A local pipeline's emulator is read off its queue URL (or ``endpoint_url``) and gets the
    emulator's fixed credentials; a deployed stack keeps the ambient AWS configuration.
    """
    endpoint = endpoint_url or endpoint_of(outputs)
    region = outputs.get("region") or os.environ.get("AWS_REGION") or "us-east-2"
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.update(CREDENTIALS)
    clients.clear_cache()


def main(
    merchant_id: str,
    since: str | None,
    until: str | None,
    overrides: str | None,
    flag_threshold: str | None,
    as_json: bool,
    outputs_path: Path,
    endpoint_url: str | None = None,
    read_limit: int | None = None,
) -> int:
    """Parse and check the input (exit 2 on any problem), read, backtest and print; writes nothing."""
    read_limit = DEFAULT_READ_LIMIT if read_limit is None else read_limit
    try:
        if read_limit < 1:
            raise UsageError(f"--limit must be at least 1, got {read_limit}")
        window = parse_window(since, until, datetime.now(UTC))
        proposed_overrides = parse_overrides(overrides)
        check_proposal(proposed_overrides, flag_threshold)
    except (UsageError, InvalidProposal) as exc:
        return _usage_error(exc)
    outputs = load_outputs(outputs_path)
    if outputs is None:
        print(f"No running pipeline found ({outputs_path}); start one with `make local`.", file=sys.stderr)
        return NO_PIPELINE
    connect(outputs, endpoint_url)
    try:
        run = run_backtest(
            Tables.from_outputs(outputs), merchant_id, window, proposed_overrides, flag_threshold, read_limit
        )
    except UsageError as exc:
        return _usage_error(exc)
    except (BotoCoreError, ClientError) as exc:
        # Typically: the pipeline in the outputs file is not running (or its tables are gone).
        print(f"backtest: cannot read the pipeline named in {outputs_path}: {exc}", file=sys.stderr)
        return NO_PIPELINE
    print(json.dumps(run.to_dict(), indent=2) if as_json else render(run))
    return 0


def _usage_error(exc: Exception) -> int:
    print(f"backtest: error: {exc}", file=sys.stderr)
    return USAGE_ERROR

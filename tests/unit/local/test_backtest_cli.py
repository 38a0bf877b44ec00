"""`python -m tap_local backtest` on the in-process moto backend: real scored records, reads only."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tap_local.__main__ import main as cli
from tap_local.backtest import Tables, UsageError, Window, WriteAttempted, connect, read_only, run_backtest
from tap_local.emulator import CREDENTIALS
from tap_pipeline.data import clients
from tap_pipeline.data.items import iso_millis
from tap_pipeline.observability import metrics
from tap_testing.backend import (
    ENVIRONMENT,
    TEST_MERCHANT,
    Pipeline,
    apply_environment,
    build_pipeline,
    clear_package_caches,
    transaction,
)

VELOCITY_2 = {"velocity_1m": {"threshold": 2}}


@pytest.fixture(autouse=True)
def _restore_environment() -> Any:
    """`connect` points this process at a pipeline through os.environ (as the CLI must); put every
    variable back afterwards, including ones that did not exist (monkeypatch.delenv would not
    remove those), so no later test or child process inherits an emulator endpoint."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function tests' backend, built as tests/unit/functions/conftest.py builds it.

    That conftest also sets the Powertools variables before tap_pipeline is first imported; run on
    its own, this module imports tap_pipeline first, so the handlers' metrics get their namespace here.
    """
    monkeypatch.setattr(metrics, "namespace", ENVIRONMENT["POWERTOOLS_METRICS_NAMESPACE"])
    apply_environment(monkeypatch.setenv)
    with mock_aws():
        yield build_pipeline(monkeypatch.setenv)
        clear_package_caches()


def _tables(pipeline: Pipeline) -> Tables:
    return Tables(pipeline.transactions_table, pipeline.idempotency_table, pipeline.merchant_table)


def _last_hour() -> Window:
    now = datetime.now(UTC)
    return Window(since=iso_millis(now - timedelta(hours=1)), until=iso_millis(now + timedelta(minutes=1)))


def _card_used_four_times(pipeline: Pipeline) -> list[str]:
    """Four uses of one card within a minute (different amounts, so no duplicate), all scored."""
    ids = []
    for cents in range(4):
        response = pipeline.post(transaction(amount=f"10.{cents:02d}"))
        assert response["statusCode"] == 202, response["json"]
        ids.append(response["json"]["transaction_id"])
    assert pipeline.run_detector() == {"batchItemFailures": []}
    assert [pipeline.record(i)["status"] for i in ids] == ["CLEARED"] * 4  # velocity_1m threshold 5
    return ids


def _snapshot(pipeline: Pipeline) -> dict[str, str]:
    """Every table's items, serialized in a stable order (to compare before and after)."""
    tables = (
        pipeline.transactions_table,
        pipeline.fraud_state_table,
        pipeline.merchant_table,
        pipeline.idempotency_table,
    )
    return {
        table: json.dumps(
            sorted(pipeline.scan(table), key=lambda item: json.dumps(item, sort_keys=True, default=str)),
            sort_keys=True,
            default=str,
        )
        for table in tables
    }


def test_a_lower_velocity_threshold_would_flag_the_third_and_fourth_use_and_nothing_is_written(pipeline):
    ids = _card_used_four_times(pipeline)
    before = _snapshot(pipeline)

    run = run_backtest(_tables(pipeline), TEST_MERCHANT, _last_hour(), VELOCITY_2)

    assert _snapshot(pipeline) == before
    report = run.report
    assert (report.considered, report.rescored, report.cleared_to_flagged, report.flagged_to_cleared) == (
        4,
        4,
        2,
        0,
    )
    assert [change.transaction_id for change in report.changes] == ids[2:]
    for change, count in zip(report.changes, (3, 4), strict=True):
        assert (change.old.status, change.new.status, change.new.rules) == (
            "CLEARED",
            "FLAGGED",
            ("velocity_1m",),
        )
        assert change.why.startswith(
            f"velocity_1m now fires (velocity_1m: {count} transactions on this card in the last minute"
        )
        assert change.reproduced
    assert not run.truncated


def test_records_after_until_are_left_out(pipeline):
    _card_used_four_times(pipeline)
    long_ago = datetime.now(UTC) - timedelta(days=1)

    run = run_backtest(
        _tables(pipeline),
        TEST_MERCHANT,
        Window(since=iso_millis(long_ago - timedelta(hours=1)), until=iso_millis(long_ago)),
        VELOCITY_2,
    )

    assert run.records_read == 4  # the index has no upper bound: read, then dropped
    assert run.report.considered == 0


def test_reaching_the_read_limit_is_reported(pipeline):
    _card_used_four_times(pipeline)

    run = run_backtest(_tables(pipeline), TEST_MERCHANT, _last_hour(), VELOCITY_2, read_limit=3)

    assert run.truncated
    assert run.report.considered == 3


def test_an_unknown_merchant_is_a_usage_error(pipeline):
    with pytest.raises(UsageError, match="merchant 'no-such-merchant' is not in"):
        run_backtest(_tables(pipeline), "no-such-merchant", _last_hour(), VELOCITY_2)


def test_writes_are_refused_while_reading(pipeline):
    table = pipeline.merchant_table
    with read_only(clients.dynamodb()), pytest.raises(WriteAttempted, match="refused DynamoDB PutItem"):
        clients.dynamodb().put_item(TableName=table, Item={"merchant_id": "m-2"})

    clients.dynamodb().put_item(TableName=table, Item={"merchant_id": "m-2"})  # the guard is gone afterwards


def _outputs(pipeline: Pipeline, tmp_path: Path) -> Path:
    """An outputs file naming the moto tables (moto's queue URLs look deployed: no endpoint is set)."""
    path = tmp_path / "flat-outputs.json"
    outputs = {
        "transactions_table_name": pipeline.transactions_table,
        "idempotency_table_name": pipeline.idempotency_table,
        "merchant_config_table_name": pipeline.merchant_table,
        "transaction_queue_url": pipeline.queue_url,
        "region": "us-east-2",
    }
    path.write_text(json.dumps(outputs))
    return path


def _backtest_command(pipeline: Pipeline, tmp_path: Path, capsys: Any, *options: str) -> int:
    """`python -m tap_local backtest` on the test merchant, after the handlers' own output."""
    outputs = _outputs(pipeline, tmp_path)
    capsys.readouterr()  # the handlers' logs and metrics
    return cli(["backtest", "--merchant", TEST_MERCHANT, "--outputs", str(outputs), *options])


def test_the_command_prints_the_changes_and_why(pipeline, tmp_path, capsys):
    ids = _card_used_four_times(pipeline)

    code = _backtest_command(pipeline, tmp_path, capsys, "--overrides", json.dumps(VELOCITY_2))

    text = capsys.readouterr().out
    assert code == 0
    assert "Verdicts that would change: 2 (CLEARED -> FLAGGED 2, FLAGGED -> CLEARED 0)" in text
    assert f"{ids[2]}  10.02 USD" in text
    assert "why: velocity_1m now fires (velocity_1m: 4 transactions on this card in the last minute" in text


def test_the_command_prints_json(pipeline, tmp_path, capsys):
    ids = _card_used_four_times(pipeline)

    code = _backtest_command(pipeline, tmp_path, capsys, "--flag-threshold", "1", "--json")

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["merchant_id"] == TEST_MERCHANT
    assert document["cleared_to_flagged"] == 0  # no rule fired on them: score 0 stays under 1
    assert document["considered"] == len(ids)
    assert document["proposed"]["flag_threshold"] == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--overrides", "{velocity_1m"], "--overrides is not valid JSON"),
        (["--overrides", '{"velocity_5m": {"threshold": 2}}'], "velocity_5m: unknown rule"),
        (["--overrides", '{"velocity_1m": {"treshold": 2}}'], "unknown field 'treshold'"),
        (["--flag-threshold", "high"], "flag threshold must be a whole number from 1 to 100"),
        (["--flag-threshold", "0"], "flag threshold must be a whole number from 1 to 100"),
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO-8601 date"),
        (["--until", "2024-13-01"], "--until '2024-13-01' is not an ISO-8601 date"),
        (["--since", "2024-05-02", "--until", "2024-05-01T00:00:00Z"], "is after --until"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(arguments, message, tmp_path, capsys):
    """Checked before anything is read: no pipeline is needed to get these errors."""
    code = cli(
        ["backtest", "--merchant", TEST_MERCHANT, "--outputs", str(tmp_path / "none.json"), *arguments]
    )

    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("backtest: error: ")
    assert message in error
    assert error.count("\n") == 1


def test_missing_merchant_is_an_argparse_error_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["backtest"])

    assert exited.value.code == 2
    assert "--merchant" in capsys.readouterr().err


def test_no_running_pipeline_is_reported(tmp_path, capsys):
    code = cli(["backtest", "--merchant", TEST_MERCHANT, "--outputs", str(tmp_path / "none.json")])

    assert code == 1
    assert "No running pipeline found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("queue_url", "endpoint"),
    [
        ("http://127.0.0.1:44903/123456789012/tap-transactions-local", "http://127.0.0.1:44903"),
        ("https://sqs.us-east-2.amazonaws.com/123456789012/tap-transactions-dev", None),
    ],
)
def test_a_local_pipeline_is_reached_through_its_emulator_and_a_deployed_one_directly(
    queue_url, endpoint, monkeypatch
):
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", *CREDENTIALS):
        monkeypatch.delenv(name, raising=False)  # the fixture above restores everything afterwards

    connect({"transaction_queue_url": queue_url, "region": "eu-west-1"}, None)

    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert (os.environ.get("AWS_ACCESS_KEY_ID") == CREDENTIALS["AWS_ACCESS_KEY_ID"]) == (endpoint is not None)

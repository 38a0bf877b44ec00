"""Config loading: required keys fail early with the fix, optional keys fall back as documented."""

from __future__ import annotations

import collections
import json
import runpy

import pulumi
import pytest

from lib.config import ConfigError, StackSettings, load_settings
from lib.graph import AwsLikeAnswers, StackGraph, evaluate
from lib.packaging import REPO_ROOT
from tap_testing.stack import fake_built_layer

PROJECT = "tap-transaction-pipeline"


class NoResourceMocks(pulumi.runtime.Mocks):
    """Config tests build no resources; any call would be a bug."""

    def new_resource(self, args):
        raise AssertionError(f"unexpected resource {args.typ}")

    def call(self, args):
        raise AssertionError(f"unexpected call {args.token}")


@pytest.fixture(scope="session")
def built_layer(tmp_path_factory) -> str:
    return str(fake_built_layer(tmp_path_factory.mktemp("layer") / "lambda-layer"))


@pytest.fixture
def config(monkeypatch, built_layer):
    """Set stack config as `pulumi config set` would (with a built layer), for one test."""
    monkeypatch.delenv("ENVIRONMENT_SUFFIX", raising=False)
    pulumi.runtime.set_mocks(NoResourceMocks(), project=PROJECT)

    def apply(values: dict[str, str], *, layer_dir: str | None = built_layer) -> None:
        values = {"functionLayerDir": layer_dir, **values} if layer_dir else values
        pulumi.runtime.set_all_config(
            {key if ":" in key else f"{PROJECT}:{key}": v for key, v in values.items()}
        )

    yield apply
    pulumi.runtime.set_all_config({})


def test_missing_alert_email_stops_with_the_key_name_and_the_command(config):
    config({"environmentSuffix": "dev"})
    with pytest.raises(ConfigError, match=r"alertEmail is required.*pulumi config set alertEmail"):
        load_settings()


def test_malformed_alert_email_is_rejected(config):
    config({"alertEmail": "not-an-address"})
    with pytest.raises(ConfigError, match="not an email address"):
        load_settings()


def test_suffix_falls_back_to_environment_variable_then_dev(config, monkeypatch):
    config({"alertEmail": "ops@example.com"})
    assert load_settings().environment_suffix == "dev"
    monkeypatch.setenv("ENVIRONMENT_SUFFIX", "pr481")
    assert load_settings().environment_suffix == "pr481"
    config({"alertEmail": "ops@example.com", "environmentSuffix": "qa"})
    assert load_settings().environment_suffix == "qa"


def test_invalid_suffix_is_rejected_with_the_rule(config):
    config({"alertEmail": "ops@example.com", "environmentSuffix": "Has Spaces"})
    with pytest.raises(ConfigError, match="environmentSuffix 'Has Spaces' is invalid"):
        load_settings()


def test_region_defaults_to_us_east_2_and_follows_aws_region(config):
    config({"alertEmail": "ops@example.com"})
    assert load_settings().region == "us-east-2"
    config({"alertEmail": "ops@example.com", "aws:region": "ap-southeast-2"})
    assert load_settings().region == "ap-southeast-2"


def test_optional_numbers_and_stage_name(config):
    config({"alertEmail": "ops@example.com", "environmentSuffix": "load", "apiRateLimit": "5000"})
    settings = load_settings()
    assert settings.api_rate_limit == 5000
    assert settings.stage_name == "load"
    assert settings.seed_test_merchant is True
    config({"alertEmail": "ops@example.com", "apiStageName": "live", "seedTestMerchant": "false"})
    assert load_settings().stage_name == "live"
    assert load_settings().seed_test_merchant is False


def test_the_stack_manages_the_api_gateway_account_setting_unless_told_another_stack_does(config):
    config({"alertEmail": "ops@example.com"})
    assert load_settings().manage_api_gateway_account is True
    config({"alertEmail": "ops@example.com", "manageApiGatewayAccount": "false"})
    assert load_settings().manage_api_gateway_account is False
    config({"alertEmail": "ops@example.com", "manageApiGatewayAccount": "true"})
    assert load_settings().manage_api_gateway_account is True


def test_an_explicit_zero_is_kept_not_replaced_by_the_default(config):
    # 0 means something for these (AWS accepts it): a closed API, a stopped validator.
    config(
        {
            "alertEmail": "ops@example.com",
            "apiRateLimit": "0",
            "apiBurstLimit": "0",
            "validatorReservedConcurrency": "0",
        }
    )
    settings = load_settings()
    assert settings.api_rate_limit == 0
    assert settings.api_burst_limit == 0
    assert settings.validator_reserved_concurrency == 0


@pytest.mark.parametrize(
    ("key", "field", "minimum"),
    [
        ("fraudDetectorMaxConcurrency", "fraud_detector_max_concurrency", 2),
        ("failedHandlerMaxConcurrency", "failed_handler_max_concurrency", 2),
        ("wafRateLimitPer5Min", "waf_rate_limit_per_5min", 10),
        ("apiRateLimit", "api_rate_limit", 0),
        ("reconcilerScheduleMinutes", "reconciler_schedule_minutes", 1),
        ("staleReceivedAfterSeconds", "stale_received_after_seconds", 60),
        ("reconcilerMaxRequeues", "reconciler_max_requeues", 1),
        ("reconcilerBatchLimit", "reconciler_batch_limit", 1),
    ],
)
def test_a_number_below_what_aws_accepts_is_rejected_with_the_key_and_the_least_value(
    config, key, field, minimum
):
    config({"alertEmail": "ops@example.com", key: str(minimum - 1)})
    with pytest.raises(ConfigError, match=rf"{key} {minimum - 1} is invalid: the least value is {minimum} "):
        load_settings()
    config({"alertEmail": "ops@example.com", key: str(minimum)})
    assert getattr(load_settings(), field) == minimum


def test_a_consumer_reservation_below_two_is_rejected_and_two_is_kept_with_a_maximum_of_two(config):
    config({"alertEmail": "ops@example.com", "failedHandlerReservedConcurrency": "1"})
    with pytest.raises(ConfigError, match=r"ReservedConcurrency 1 is invalid: the least value is 2 "):
        load_settings()
    config(
        {
            "alertEmail": "ops@example.com",
            "failedHandlerMaxConcurrency": "2",
            "failedHandlerReservedConcurrency": "2",
        }
    )
    assert load_settings().failed_handler_reserved_concurrency == 2


def test_consumer_reserved_concurrency_defaults_to_the_event_source_maximum_and_follows_config(config):
    config({"alertEmail": "ops@example.com"})
    settings = load_settings()
    assert settings.fraud_detector_reserved_concurrency == settings.fraud_detector_max_concurrency == 100
    assert settings.failed_handler_reserved_concurrency == settings.failed_handler_max_concurrency == 5
    config(
        {
            "alertEmail": "ops@example.com",
            "fraudDetectorMaxConcurrency": "40",
            "fraudDetectorReservedConcurrency": "50",
            "failedHandlerReservedConcurrency": "10",
        }
    )
    settings = load_settings()
    assert (settings.fraud_detector_max_concurrency, settings.fraud_detector_reserved_concurrency) == (40, 50)
    assert settings.failed_handler_reserved_concurrency == 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"fraudDetectorReservedConcurrency": "60"},
            r"fraudDetectorReservedConcurrency 60 is below fraudDetectorMaxConcurrency 100: .*"
            r"pulumi config set fraudDetectorReservedConcurrency 100",
        ),
        (
            {"fraudDetectorMaxConcurrency": "200"},
            r"fraudDetectorReservedConcurrency 100 is below fraudDetectorMaxConcurrency 200",
        ),
        (
            {"failedHandlerReservedConcurrency": "3"},
            r"failedHandlerReservedConcurrency 3 is below failedHandlerMaxConcurrency 5: .*"
            r"or lower failedHandlerMaxConcurrency to 3",
        ),
    ],
)
def test_a_reservation_below_its_event_source_maximum_is_refused_with_both_keys(config, values, message):
    config({"alertEmail": "ops@example.com", **values})
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_f14_the_program_refuses_to_run_without_a_layer_built_from_the_current_pins(config, tmp_path):
    config({"alertEmail": "ops@example.com"}, layer_dir=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"not built in .*nowhere.*python -m lib.layer"):
        load_settings()
    # The runtime's own boto3 (or any other version) is not the pinned one.
    stale = fake_built_layer(tmp_path / "stale", versions={"boto3": "1.34.145"})
    config({"alertEmail": "ops@example.com"}, layer_dir=str(stale))
    with pytest.raises(ConfigError, match=r"holds boto3 1\.34\.145, not the pinned 1\.44\.8"):
        load_settings()
    # Built from other pins: the manifest's digest of requirements/functions.txt differs.
    other = fake_built_layer(tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "requirements_sha256": "0" * 64}))
    config({"alertEmail": "ops@example.com"}, layer_dir=str(other))
    with pytest.raises(ConfigError, match=r"built from another functions\.txt"):
        load_settings()


def test_f14_public_powertools_layer_setting_is_refused_with_the_fix(config):
    config({"alertEmail": "ops@example.com", "powertoolsLayerArn": "arn:aws:lambda:x:1:layer:p:1"})
    with pytest.raises(ConfigError, match="pulumi config rm powertoolsLayerArn"):
        load_settings()


def test_f11_entry_point_exports_each_output_exactly_once(monkeypatch, built_layer):
    exported: collections.Counter[str] = collections.Counter()
    real_export = pulumi.export

    def counting_export(name, value):
        exported[name] += 1
        real_export(name, value)

    monkeypatch.setattr(pulumi, "export", counting_export)
    monkeypatch.delenv("ENVIRONMENT_SUFFIX", raising=False)

    def program() -> dict:
        pulumi.runtime.set_all_config(
            {
                f"{PROJECT}:alertEmail": "ops@example.com",
                f"{PROJECT}:environmentSuffix": "entry",
                f"{PROJECT}:functionLayerDir": built_layer,
            }
        )
        namespace = runpy.run_path(str(REPO_ROOT / "tap.py"))
        return namespace["stack"].outputs

    try:
        graph: StackGraph = evaluate(program, AwsLikeAnswers("us-east-2"))
    finally:
        pulumi.runtime.set_all_config({})
    assert graph.outputs
    assert dict(exported) == dict.fromkeys(graph.outputs, 1)
    assert graph.outputs["environment_suffix"] == "entry"


def test_a_reconciler_schedule_beyond_what_its_alarm_can_evaluate_is_refused():
    with pytest.raises(ConfigError, match=r"reconcilerScheduleMinutes 721 is above 720"):
        StackSettings(
            environment_suffix="dev", region="us-east-2", alert_email="", reconciler_schedule_minutes=721
        )


def test_snapstart_is_on_for_the_validator_unless_config_says_otherwise(config):
    config({"alertEmail": "ops@example.com"})
    assert load_settings().snap_start_functions == {"validator"}
    config({"alertEmail": "ops@example.com", "snapStart": '{"validator": false, "fraud-detector": true}'})
    assert load_settings().snap_start_functions == {"fraud-detector"}
    config({"alertEmail": "ops@example.com", "snapStart": '{"reconcilier": true}'})
    with pytest.raises(ConfigError, match="snapStart names unknown functions"):
        load_settings()

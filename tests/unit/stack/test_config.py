"""Config loading: required keys fail early with the fix, optional keys fall back as documented."""

from __future__ import annotations

import collections
import runpy

import pulumi
import pytest

from lib.config import ConfigError, load_settings
from lib.graph import AwsLikeAnswers, StackGraph, evaluate
from lib.packaging import REPO_ROOT
from lib.tap_stack import OUTPUT_KEYS

PROJECT = "tap-transaction-pipeline"


class NoResourceMocks(pulumi.runtime.Mocks):
    """Config tests build no resources; any call would be a bug."""

    def new_resource(self, args):
        raise AssertionError(f"unexpected resource {args.typ}")

    def call(self, args):
        raise AssertionError(f"unexpected call {args.token}")


@pytest.fixture
def config(monkeypatch):
    """Set stack config as `pulumi config set` would, for the duration of one test."""
    monkeypatch.delenv("ENVIRONMENT_SUFFIX", raising=False)
    pulumi.runtime.set_mocks(NoResourceMocks(), project=PROJECT)

    def apply(values: dict[str, str]) -> None:
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


def test_f11_entry_point_exports_each_output_exactly_once(monkeypatch):
    exported: collections.Counter[str] = collections.Counter()
    real_export = pulumi.export

    def counting_export(name, value):
        exported[name] += 1
        real_export(name, value)

    monkeypatch.setattr(pulumi, "export", counting_export)
    monkeypatch.delenv("ENVIRONMENT_SUFFIX", raising=False)

    def program() -> dict:
        pulumi.runtime.set_all_config(
            {f"{PROJECT}:alertEmail": "ops@example.com", f"{PROJECT}:environmentSuffix": "entry"}
        )
        namespace = runpy.run_path(str(REPO_ROOT / "tap.py"))
        return namespace["stack"].outputs

    try:
        graph: StackGraph = evaluate(program, AwsLikeAnswers("us-east-2"))
    finally:
        pulumi.runtime.set_all_config({})
    assert dict(exported) == dict.fromkeys(OUTPUT_KEYS, 1)
    assert graph.outputs["environment_suffix"] == "entry"

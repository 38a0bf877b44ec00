"""Stack configuration: every value the program reads from `pulumi config` in one typed place.

Reading config here (and nowhere else) keeps the components free of `pulumi.Config` calls, so
tests can build any component from a plain `StackSettings` value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from lib.layer import DEFAULT_LAYER_DIR, REPO_ROOT, layer_problem
from tap_contract.environment import HANDLERS, VALIDATOR

DEFAULT_REGION = "us-east-2"
DEFAULT_SUFFIX = "dev"
_SUFFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which key and how to fix it."""


@dataclass(frozen=True)
class StackSettings:
    """Everything configurable about one deployment of the pipeline."""

    environment_suffix: str
    region: str
    alert_email: str
    vpc_cidr: str = "10.40.0.0/16"
    api_stage_name: str = ""  # empty: the environment suffix (F10: never a fixed environment name)
    api_rate_limit: int = 2000
    api_burst_limit: int = 4000
    waf_rate_limit_per_5min: int = 600_000
    validator_reserved_concurrency: int = 100
    fraud_detector_max_concurrency: int = 100
    failed_handler_max_concurrency: int = 5
    # Reserved concurrency of the two SQS consumers: at least their event source's maximum
    # concurrency, which caps pollers but reserves nothing (see RESERVED_COVERS_MAXIMUM below).
    # Sizing, BENCHMARKS.md section 3 (1,000 TPS, 512 MB): the detector needs about 14 concurrent
    # invocations (batches of 10 at ~145 ms); its event source may run 100 (the 1 s per batch design
    # budget), so it reserves 100, which also drains a backlog at ~100 x 10 / 0.145 s = 6,900 msg/s.
    # The failed handler only sees messages that failed 5 times; it reserves its event source's 5.
    fraud_detector_reserved_concurrency: int = 100
    failed_handler_reserved_concurrency: int = 5
    # The reconciler (issue 12): every reconcilerScheduleMinutes it re-enqueues records RECEIVED for
    # longer than staleReceivedAfterSeconds, at most reconcilerMaxRequeues times each, then FAILs
    # them; at most reconcilerBatchLimit records per run. 5 minutes is the transaction queue's
    # oldest-message alarm too: a record that old without a verdict is not merely queued behind others.
    reconciler_schedule_minutes: int = 5
    stale_received_after_seconds: int = 300
    reconciler_max_requeues: int = 3
    reconciler_batch_limit: int = 1000
    card_fingerprint_secret_arn: str | None = None
    # The card-fingerprint key's rotation (PCI DSS 3.6/3.7; README "Rotating the card-fingerprint
    # key"): every 90 days by default, a cryptoperiod of one quarter. Each rotation costs one extra
    # fingerprint per request and one extra card-history Query per message for the hour after the
    # switch, and nothing else, so the period is a security choice, not a cost one. One rotation
    # runs at a time, so the function reserves 1.
    card_key_rotation_days: int = 90
    key_rotation_reserved_concurrency: int = 1
    # The built dependency layer (lib/layer.py); the program packages it, never builds it.
    function_layer_dir: str = str(DEFAULT_LAYER_DIR)
    seed_test_merchant: bool = True
    # API Gateway's CloudWatch role is one setting per account and region (lib/components/api.py):
    # True, this stack sets it and keeps it when destroyed; False, another stack owns it.
    manage_api_gateway_account: bool = True
    # The functions whose published versions Lambda snapshots (SnapStart); see DEFAULT_SNAP_START.
    snap_start_functions: frozenset[str] = field(default_factory=lambda: DEFAULT_SNAP_START)

    def __post_init__(self) -> None:
        if self.reconciler_schedule_minutes > MAX_RECONCILER_SCHEDULE_MINUTES:
            raise ConfigError(
                f"reconcilerScheduleMinutes {self.reconciler_schedule_minutes} is above "
                f"{MAX_RECONCILER_SCHEDULE_MINUTES}: the stale-record alarm evaluates two runs, and "
                "CloudWatch allows at most one day of periods per alarm. Set it with: pulumi config "
                "set reconcilerScheduleMinutes <n>"
            )
        for reserved_key, maximum_key in RESERVED_COVERS_MAXIMUM:
            reserved = getattr(self, CONFIG_FIELDS[reserved_key])
            maximum = getattr(self, CONFIG_FIELDS[maximum_key])
            if reserved < maximum:
                raise ConfigError(
                    f"{reserved_key} {reserved} is below {maximum_key} {maximum}: the event source "
                    f"would start up to {maximum} concurrent invocations that only {reserved} can run, "
                    "and every throttled batch goes back to the queue with one receive used up. Raise "
                    f"it with: pulumi config set {reserved_key} {maximum}, or lower {maximum_key} to "
                    f"{reserved} or less (its least value is 2)"
                )

    @property
    def project_prefix(self) -> str:
        return "tap"

    @property
    def stage_name(self) -> str:
        return self.api_stage_name or self.environment_suffix

    def name(self, purpose: str) -> str:
        """The physical name for a resource: project, purpose and the environment suffix."""
        return f"{self.project_prefix}-{purpose}-{self.environment_suffix}"

    def global_name(self, purpose: str) -> str:
        """The name of a resource that is one per account, not per region (IAM roles, CloudWatch
        dashboards): with the region too, so one suffix deployed in two regions neither collides
        nor, for a dashboard (PutDashboard overwrites), silently replaces the other's."""
        return f"{self.project_prefix}-{purpose}-{self.region}-{self.environment_suffix}"


# The stale-record alarm evaluates 2 periods of one run each; CloudWatch caps period x evaluation
# periods at one day.
MAX_RECONCILER_SCHEDULE_MINUTES = 720

# Config key -> StackSettings field, for the keys whose values are checked against each other.
CONFIG_FIELDS = {
    "fraudDetectorMaxConcurrency": "fraud_detector_max_concurrency",
    "failedHandlerMaxConcurrency": "failed_handler_max_concurrency",
    "fraudDetectorReservedConcurrency": "fraud_detector_reserved_concurrency",
    "failedHandlerReservedConcurrency": "failed_handler_reserved_concurrency",
}
# An SQS event source mapping's maximum concurrency caps the pollers' invocations but does not
# reserve them from the account pool, and the pollers do not see the function's reserved
# concurrency: with reserved < maximum, invocations beyond the reservation are throttled and their
# messages return to the queue with a receive spent. AWS's guidance is reserved concurrency >=
# the mapping's maximum concurrency:
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html (maximum concurrency)
# https://repost.aws/knowledge-center/lambda-sqs-scaling (reserved concurrency)
RESERVED_COVERS_MAXIMUM = (
    ("fraudDetectorReservedConcurrency", "fraudDetectorMaxConcurrency"),
    ("failedHandlerReservedConcurrency", "failedHandlerMaxConcurrency"),
)


# SnapStart (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html) is on by default for the
# validator only: it answers the API, where a cold start is a client waiting. The two SQS consumers
# are off by default: their cold starts are rare (a container serves batch after batch) and off any
# caller's latency path (a message waits in the queue either way); so is the reconciler, a
# scheduled run every few minutes that nobody waits on. SnapStart for Python is
# not free: Lambda bills caching each published version's snapshot for as long as the version
# exists and every restore from it
# (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-pricing,
# https://aws.amazon.com/lambda/pricing/). Config `snapStart`: an object of function -> true/false
# over these defaults, e.g. pulumi config set --path 'snapStart["fraud-detector"]' true
DEFAULT_SNAP_START: frozenset[str] = frozenset({VALIDATOR})


def snap_start_functions(configured: Any) -> frozenset[str]:
    """The functions with SnapStart: DEFAULT_SNAP_START, changed by `snapStart` ({function: bool})."""
    if configured is None:
        return DEFAULT_SNAP_START
    if not isinstance(configured, dict) or not all(isinstance(v, bool) for v in configured.values()):
        raise ConfigError(
            "snapStart must be an object of function name -> true/false, e.g. "
            "pulumi config set --path 'snapStart[\"fraud-detector\"]' true"
        )
    unknown = sorted(set(configured) - set(HANDLERS))
    if unknown:
        raise ConfigError(
            f"snapStart names unknown functions {unknown}; the functions are {sorted(HANDLERS)}"
        )
    return frozenset(name for name in HANDLERS if configured.get(name, name in DEFAULT_SNAP_START))


def resolve_environment_suffix(configured: str | None) -> str:
    suffix = configured or os.environ.get("ENVIRONMENT_SUFFIX") or DEFAULT_SUFFIX
    if not _SUFFIX_PATTERN.match(suffix):
        raise ConfigError(
            f"environmentSuffix {suffix!r} is invalid: use 1-20 lowercase letters, digits or '-', "
            "starting with a letter or digit (pulumi config set environmentSuffix <value>)"
        )
    return suffix


def load_settings() -> StackSettings:
    """Read the stack's config, failing early with the key name and the command that sets it."""
    config = pulumi.Config()
    aws_config = pulumi.Config("aws")
    if config.get("powertoolsLayerArn"):
        raise ConfigError(
            "powertoolsLayerArn is no longer used: every package the functions import comes from the "
            "layer built from requirements/functions.txt. Remove it with: "
            "pulumi config rm powertoolsLayerArn"
        )
    alert_email = config.get("alertEmail")
    if not alert_email:
        raise ConfigError(
            "alertEmail is required: the address that receives fraud and operations alerts. "
            "Set it with: pulumi config set alertEmail you@example.com"
        )
    if not _EMAIL_PATTERN.match(alert_email):
        raise ConfigError(f"alertEmail {alert_email!r} is not an email address")
    defaults = StackSettings(environment_suffix=DEFAULT_SUFFIX, region=DEFAULT_REGION, alert_email="")
    return StackSettings(
        environment_suffix=resolve_environment_suffix(config.get("environmentSuffix")),
        region=aws_config.get("region") or DEFAULT_REGION,
        alert_email=alert_email,
        vpc_cidr=config.get("vpcCidr") or defaults.vpc_cidr,
        api_stage_name=config.get("apiStageName") or "",
        api_rate_limit=optional_int(config, "apiRateLimit", defaults.api_rate_limit),
        api_burst_limit=optional_int(config, "apiBurstLimit", defaults.api_burst_limit),
        waf_rate_limit_per_5min=optional_int(config, "wafRateLimitPer5Min", defaults.waf_rate_limit_per_5min),
        validator_reserved_concurrency=optional_int(
            config, "validatorReservedConcurrency", defaults.validator_reserved_concurrency
        ),
        fraud_detector_max_concurrency=optional_int(
            config, "fraudDetectorMaxConcurrency", defaults.fraud_detector_max_concurrency
        ),
        failed_handler_max_concurrency=optional_int(
            config, "failedHandlerMaxConcurrency", defaults.failed_handler_max_concurrency
        ),
        fraud_detector_reserved_concurrency=optional_int(
            config, "fraudDetectorReservedConcurrency", defaults.fraud_detector_reserved_concurrency
        ),
        failed_handler_reserved_concurrency=optional_int(
            config, "failedHandlerReservedConcurrency", defaults.failed_handler_reserved_concurrency
        ),
        reconciler_schedule_minutes=optional_int(
            config, "reconcilerScheduleMinutes", defaults.reconciler_schedule_minutes
        ),
        stale_received_after_seconds=optional_int(
            config, "staleReceivedAfterSeconds", defaults.stale_received_after_seconds
        ),
        reconciler_max_requeues=optional_int(
            config, "reconcilerMaxRequeues", defaults.reconciler_max_requeues
        ),
        reconciler_batch_limit=optional_int(config, "reconcilerBatchLimit", defaults.reconciler_batch_limit),
        card_fingerprint_secret_arn=config.get("cardFingerprintSecretArn"),
        card_key_rotation_days=optional_int(config, "cardKeyRotationDays", defaults.card_key_rotation_days),
        key_rotation_reserved_concurrency=optional_int(
            config, "keyRotationReservedConcurrency", defaults.key_rotation_reserved_concurrency
        ),
        function_layer_dir=function_layer_dir(config.get("functionLayerDir")),
        seed_test_merchant=config.get_bool("seedTestMerchant") is not False,
        manage_api_gateway_account=config.get_bool("manageApiGatewayAccount") is not False,
        snap_start_functions=snap_start_functions(config.get_object("snapStart")),
    )


# The least value AWS accepts for each numeric key, and what that least value means. 0 is a real
# setting where AWS gives it one: a throttle of 0 requests/s closes the API, a reserved concurrency
# of 0 stops the validator.
INT_MINIMUMS: dict[str, tuple[int, str]] = {
    "apiRateLimit": (0, "0 throttles every request"),
    "apiBurstLimit": (0, "0 throttles every request"),
    "wafRateLimitPer5Min": (10, "the least limit a WAF rate-based rule accepts"),
    "validatorReservedConcurrency": (0, "0 stops every invocation of the validator"),
    "fraudDetectorMaxConcurrency": (2, "the least maximum concurrency of an SQS event source"),
    "failedHandlerMaxConcurrency": (2, "the least maximum concurrency of an SQS event source"),
    "fraudDetectorReservedConcurrency": (2, "it must cover fraudDetectorMaxConcurrency, at least 2"),
    "failedHandlerReservedConcurrency": (2, "it must cover failedHandlerMaxConcurrency, at least 2"),
    "reconcilerScheduleMinutes": (1, "EventBridge Scheduler's finest rate is one minute"),
    "staleReceivedAfterSeconds": (
        60,
        "below a minute a record whose validator is still retrying its send would be re-enqueued",
    ),
    "reconcilerMaxRequeues": (1, "0 would FAIL a stale record without ever re-enqueueing it"),
    "reconcilerBatchLimit": (1, "0 would handle nothing"),
    "cardKeyRotationDays": (1, "the shortest automatic rotation interval Secrets Manager accepts"),
    "keyRotationReservedConcurrency": (1, "0 would stop every rotation of the card-fingerprint key"),
}
# The greatest value AWS accepts, for the keys that have one.
INT_MAXIMUMS: dict[str, tuple[int, str]] = {
    "cardKeyRotationDays": (1000, "the longest automatic rotation interval Secrets Manager accepts"),
}


def optional_int(config: pulumi.Config, key: str, default: int) -> int:
    """`key` as set (0 included), else `default`; a value AWS would refuse stops the program here."""
    value = config.get_int(key)
    if value is None:
        return default
    minimum, meaning = INT_MINIMUMS[key]
    if value < minimum:
        raise ConfigError(
            f"{key} {value} is invalid: the least value is {minimum} ({meaning}). "
            f"Set it with: pulumi config set {key} <n>, or remove it for the default {default}: "
            f"pulumi config rm {key}"
        )
    if key in INT_MAXIMUMS and value > INT_MAXIMUMS[key][0]:
        maximum, meaning = INT_MAXIMUMS[key]
        raise ConfigError(
            f"{key} {value} is invalid: the greatest value is {maximum} ({meaning}). "
            f"Set it with: pulumi config set {key} <n>, or remove it for the default {default}: "
            f"pulumi config rm {key}"
        )
    return value


def function_layer_dir(configured: str | None) -> str:
    """The built dependency layer, checked against requirements/functions.txt (F14) without the network."""
    path = Path(configured) if configured else DEFAULT_LAYER_DIR
    if not path.is_absolute():
        path = REPO_ROOT / path
    problem = layer_problem(path)
    if problem:
        raise ConfigError(
            f"{problem}. The functions import only pinned packages from that layer; build it "
            "(needs PyPI) with: .venv/bin/python -m lib.layer"
        )
    return str(path)

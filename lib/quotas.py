"""Account quotas the stack needs, checked before it creates anything.

Lambda refuses a reserved concurrency that would leave the region's unreserved pool below 100
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html: "You can reserve up
to the Unreserved account concurrency value that is shown, minus 100"), and new accounts start with
a concurrency quota far below the 1,000 default
(https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). Without this check,
`pulumi up` would build the network, tables and queues and then fail on the first function. The
stack reads the quota through Service Quotas (`aws.servicequotas.get_service_quota`, which needs
`servicequotas:GetServiceQuota`) and stops with what to change; under Pulumi mocks the quota comes
from `lib.graph.AwsLikeAnswers`, so the same code path runs in tests and in the local pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from lib.config import StackSettings

LAMBDA_SERVICE_CODE = "lambda"
CONCURRENT_EXECUTIONS_QUOTA_CODE = "L-B99A9384"
CONCURRENT_EXECUTIONS_QUOTA_NAME = "Concurrent executions"
DEFAULT_CONCURRENT_EXECUTIONS = 1000  # AWS's default quota per region (Lambda quotas page)
UNRESERVED_MINIMUM = 100  # what Lambda always keeps for functions without a reservation


class ConcurrencyQuotaError(pulumi.RunError):
    """The region's Lambda concurrency quota cannot hold what this stack reserves.

    A `pulumi.RunError`, so `pulumi preview`/`up` print the message without a traceback.
    """


# Reservations no config key sets: the reconciler runs one at a time by design (a second run
# would only race the first for the same records), so it reserves exactly 1.
RECONCILER_RESERVED_CONCURRENCY = 1
FIXED_RESERVATIONS = {"reconciler (fixed)": RECONCILER_RESERVED_CONCURRENCY}


def reserved_concurrency(settings: StackSettings) -> dict[str, int]:
    """What each function reserves, by the config key that sets it (fixed ones by their function; the
    key-rotation function exists only when the stack creates the card-fingerprint secret itself)."""
    reservations = {
        "validatorReservedConcurrency": settings.validator_reserved_concurrency,
        "fraudDetectorReservedConcurrency": settings.fraud_detector_reserved_concurrency,
        "failedHandlerReservedConcurrency": settings.failed_handler_reserved_concurrency,
        **FIXED_RESERVATIONS,
    }
    if not settings.card_fingerprint_secret_arn:
        reservations["keyRotationReservedConcurrency"] = settings.key_rotation_reserved_concurrency
    return reservations


def concurrency_quota_problem(quota: float, reservations: Mapping[str, int], region: str) -> str | None:
    """Why `quota` cannot hold `reservations` plus Lambda's unreserved minimum, or None if it can."""
    reserved = sum(reservations.values())
    needed = reserved + UNRESERVED_MINIMUM
    if quota >= needed:
        return None
    parts = " + ".join(f"{key} {value}" for key, value in reservations.items())
    return (
        f"the Lambda quota '{CONCURRENT_EXECUTIONS_QUOTA_NAME}' ({CONCURRENT_EXECUTIONS_QUOTA_CODE}) in "
        f"{region} is {quota:g}, but this stack reserves {reserved} ({parts}) and Lambda keeps at least "
        f"{UNRESERVED_MINIMUM} unreserved, so it needs {needed}. Nothing was created. Either lower the "
        "reservations (pulumi config set <key> <n>; the detector's and the failed handler's may not go "
        "below fraudDetectorMaxConcurrency and failedHandlerMaxConcurrency, so lower those too), or "
        "request a quota increase: aws service-quotas request-service-quota-increase --service-code "
        f"{LAMBDA_SERVICE_CODE} --quota-code {CONCURRENT_EXECUTIONS_QUOTA_CODE} --desired-value {needed} "
        f"--region {region}. Reservations of other functions in this account and region count too "
        f"(aws lambda get-account-settings --region {region} shows UnreservedConcurrentExecutions)."
    )


def check_concurrency_quota(settings: StackSettings, opts: pulumi.InvokeOptions) -> None:
    """Read the quota (blocking, so no resource is registered before the answer) and stop on a
    shortfall. `opts` carries the stack's region-pinned provider (through its parent)."""
    from lib.components.functions import deploying  # here: lib.graph imports this module's constants

    try:
        quota = aws.servicequotas.get_service_quota(
            service_code=LAMBDA_SERVICE_CODE, quota_code=CONCURRENT_EXECUTIONS_QUOTA_CODE, opts=opts
        )
    except Exception as error:
        if not deploying():
            raise  # under mocks a failed lookup is a bug in the mock answers, not a missing grant
        # Most likely the deployer may not call servicequotas:GetServiceQuota. Not knowing the
        # quota is no reason to refuse a deployment; Lambda itself still refuses a shortfall.
        pulumi.log.warn(
            f"could not read the Lambda quota '{CONCURRENT_EXECUTIONS_QUOTA_NAME}' "
            f"({CONCURRENT_EXECUTIONS_QUOTA_CODE}), so the stack's reserved concurrency "
            f"({sum(reserved_concurrency(settings).values())}) was not checked against it: {error}"
        )
        return
    problem = concurrency_quota_problem(quota.value, reserved_concurrency(settings), settings.region)
    if problem:
        raise ConcurrencyQuotaError(problem)

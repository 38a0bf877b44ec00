"""The Lambda concurrency quota is checked before the stack creates anything (issue 12, item 5).

The check is a pure function of the quota and the reservations; the stack reads the quota through
the Service Quotas data source, which the mock account (lib.graph.AwsLikeAnswers) answers with
whatever quota a test gives it.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from lib import quotas
from lib.config import StackSettings
from lib.graph import AwsLikeAnswers, InvokeRefused
from lib.quotas import ConcurrencyQuotaError, concurrency_quota_problem, reserved_concurrency
from tap_testing.stack import ALERT_EMAIL, evaluate_stack

QUOTA_LOOKUP = "aws:servicequotas/getServiceQuota:getServiceQuota"
DEFAULT_RESERVATIONS = {
    "validatorReservedConcurrency": 100,
    "fraudDetectorReservedConcurrency": 100,
    "failedHandlerReservedConcurrency": 5,
    "reconciler (fixed)": 1,
    "keyRotationReservedConcurrency": 1,
}


class CreationRecorder(AwsLikeAnswers):
    """An account that remembers every resource the program asked it to create."""

    def __init__(self, region: str, **kwargs: Any) -> None:
        super().__init__(region, **kwargs)
        self.created: list[str] = []

    def resource_state(
        self, type_token: str, name: str, inputs: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        self.created.append(type_token)
        return super().resource_state(type_token, name, inputs)


def test_the_default_stack_reserves_207_so_it_needs_a_quota_of_307():
    settings = StackSettings(environment_suffix="unit", region="us-east-2", alert_email=ALERT_EMAIL)
    assert reserved_concurrency(settings) == DEFAULT_RESERVATIONS
    assert concurrency_quota_problem(307, DEFAULT_RESERVATIONS, "us-east-2") is None
    assert concurrency_quota_problem(306, DEFAULT_RESERVATIONS, "us-east-2") is not None


def test_a_stack_that_does_not_own_the_card_key_reserves_nothing_for_its_rotation():
    settings = StackSettings(
        environment_suffix="unit",
        region="us-east-2",
        alert_email=ALERT_EMAIL,
        card_fingerprint_secret_arn="arn:aws:secretsmanager:us-east-2:123456789012:secret:shared-AbCdEf",
    )
    assert "keyRotationReservedConcurrency" not in reserved_concurrency(settings)


def test_a_large_quota_is_no_problem():
    assert concurrency_quota_problem(1000, DEFAULT_RESERVATIONS, "us-east-2") is None
    assert concurrency_quota_problem(20_000, DEFAULT_RESERVATIONS, "eu-west-1") is None


def test_a_small_quota_names_the_quota_the_sum_the_unreserved_minimum_and_both_fixes():
    problem = concurrency_quota_problem(50, DEFAULT_RESERVATIONS, "us-east-2")
    assert problem is not None
    for expected in (
        "'Concurrent executions' (L-B99A9384) in us-east-2 is 50",
        "reserves 207 (validatorReservedConcurrency 100 + fraudDetectorReservedConcurrency 100 + "
        "failedHandlerReservedConcurrency 5 + reconciler (fixed) 1 + keyRotationReservedConcurrency 1)",
        "at least 100 unreserved, so it needs 307",
        "pulumi config set <key> <n>",
        "fraudDetectorMaxConcurrency and failedHandlerMaxConcurrency",
        "--service-code lambda --quota-code L-B99A9384 --desired-value 307 --region us-east-2",
        "UnreservedConcurrentExecutions",
    ):
        assert expected in problem


def test_the_stack_reads_the_lambda_concurrency_quota_through_its_region_pinned_provider(graph):
    lookups = [args for token, args in graph.invokes if token == QUOTA_LOOKUP]
    assert lookups == [{"serviceCode": "lambda", "quotaCode": "L-B99A9384"}]
    # No region argument: the stack's provider (aws:region from config) answers it, not the default one.
    (provider,) = [ref for token, ref in graph.invoke_providers if token == QUOTA_LOOKUP]
    (stack_provider,) = graph.of_type("pulumi:providers:aws")
    assert provider.endswith(f"$pulumi:providers:aws::{stack_provider.name}::{stack_provider.id}")
    assert stack_provider.inputs["region"] == "us-east-2"


def test_a_quota_too_small_stops_the_program_before_any_aws_resource_is_created():
    account = CreationRecorder("us-east-2", lambda_concurrency_quota=250)
    with pytest.raises(ConcurrencyQuotaError, match=r"is 250, but this stack reserves 207 .* needs 307"):
        evaluate_stack(answers=account)
    assert not [t for t in account.created if t.startswith("aws:")], account.created
    assert isinstance(ConcurrencyQuotaError("x"), pulumi.RunError)  # printed without a traceback


def test_lower_reservations_fit_a_small_quota():
    account = CreationRecorder("us-east-2", lambda_concurrency_quota=150)
    graph = evaluate_stack(
        answers=account,
        validator_reserved_concurrency=20,
        fraud_detector_max_concurrency=20,
        fraud_detector_reserved_concurrency=20,
    )
    assert graph.of_type("aws:lambda/function:Function")
    assert any(t.startswith("aws:lambda/") for t in account.created)


def test_the_mock_answers_only_the_quota_it_knows():
    answers = AwsLikeAnswers("eu-west-1", lambda_concurrency_quota=400)
    answer = answers.call(QUOTA_LOOKUP, {"serviceCode": "lambda", "quotaCode": "L-B99A9384"})
    assert answer["value"] == 400.0 and answer["defaultValue"] == 1000.0
    assert answer["quotaName"] == "Concurrent executions" and answer["region"] == "eu-west-1"
    assert answer["arn"] == "arn:aws:servicequotas:eu-west-1:123456789012:lambda/L-B99A9384"
    with pytest.raises(NotImplementedError):
        answers.call(QUOTA_LOOKUP, {"serviceCode": "vpc", "quotaCode": "L-F678F1CE"})


def test_when_deploying_an_unreadable_quota_is_a_warning_not_a_refusal(monkeypatch):
    class NoQuotaAccess(AwsLikeAnswers):
        def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
            if token == QUOTA_LOOKUP:
                raise InvokeRefused("AccessDeniedException: not authorized to servicequotas:GetServiceQuota")
            return super().call(token, args)

    warnings: list[str] = []
    monkeypatch.setattr("lib.components.functions.deploying", lambda: True)
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    graph = evaluate_stack(answers=NoQuotaAccess("us-east-2"))
    assert graph.of_type("aws:lambda/function:Function")
    (warning,) = [w for w in warnings if quotas.CONCURRENT_EXECUTIONS_QUOTA_CODE in w]
    assert "reserved concurrency (207) was not checked" in warning
    assert "AccessDeniedException" in warning


def test_under_mocks_a_refused_quota_lookup_is_not_swallowed():
    class NoQuotaAccess(AwsLikeAnswers):
        def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
            if token == QUOTA_LOOKUP:
                raise InvokeRefused("AccessDeniedException")
            return super().call(token, args)

    with pytest.raises(Exception, match="getServiceQuota failed: AccessDeniedException"):
        evaluate_stack(answers=NoQuotaAccess("us-east-2"))


def test_under_mocks_an_unanswered_quota_lookup_is_an_error():
    class NoQuotaAnswer(AwsLikeAnswers):
        def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
            if token == QUOTA_LOOKUP:
                raise NotImplementedError(token)
            return super().call(token, args)

    with pytest.raises(Exception, match="getServiceQuota"):
        evaluate_stack(answers=NoQuotaAnswer("us-east-2"))

"""The local REST API applies the OpenAPI document the way API Gateway does."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from lib.openapi import build_openapi_document
from tap_local.gateway import ApiKeyPlan, LocalRestApi, TokenBucket
from tap_local.workers import Invocation

SCHEMA = {
    "type": "object",
    "required": ["merchant_id", "amount"],
    "additionalProperties": False,
    "properties": {
        "merchant_id": {"type": "string"},
        "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
        "transaction_id": {"type": "string", "pattern": "^[a-z0-9-]{1,20}$"},
    },
}


class FakeFunction:
    """Stands in for the validator's workers: records events, answers what the test sets."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = Invocation(payload={"statusCode": 202, "body": '{"ok": true}', "headers": {"x-a": "1"}})

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.events.append(event)
        return self.answer


@pytest.fixture
def api():
    function = FakeFunction()
    gateway = LocalRestApi(lambda *args: None, port=0)
    document = build_openapi_document(title="t", validator_invoke_arn="arn:fn", request_schema=SCHEMA)
    gateway.serve(
        document, "qa", "api123", [ApiKeyPlan("key-id", "secret-key", rate_limit=5, burst_limit=5)], function
    )
    yield gateway, function
    gateway.stop()


def post(gateway: LocalRestApi, body: Any, key: str | None = "secret-key") -> requests.Response:
    headers = {"x-api-key": key} if key else {}
    return requests.post(
        f"{gateway.base_url}/qa/transaction", data=json.dumps(body), headers=headers, timeout=5
    )


def test_proxy_event_is_rest_v1_with_api_key_identity(api):
    gateway, function = api
    response = post(gateway, {"merchant_id": "m", "amount": "1.00"})
    assert response.status_code == 202 and response.headers["x-a"] == "1"
    (event,) = function.events
    assert event["resource"] == "/transaction" and event["httpMethod"] == "POST"
    assert event["requestContext"]["identity"]["apiKey"] == "secret-key"
    assert event["requestContext"]["identity"]["apiKeyId"] == "key-id"
    assert event["requestContext"]["stage"] == "qa"
    assert json.loads(event["body"]) == {"merchant_id": "m", "amount": "1.00"}


def test_missing_or_wrong_key_is_403_and_never_reaches_the_function(api):
    gateway, function = api
    assert post(gateway, {"merchant_id": "m", "amount": "1.00"}, key=None).status_code == 403
    assert post(gateway, {"merchant_id": "m", "amount": "1.00"}, key="guess").status_code == 403
    assert function.events == []


def test_body_validation_is_400_listing_every_failing_field(api):
    gateway, function = api
    response = post(gateway, {"amount": "1", "extra": True})
    assert response.status_code == 400
    detail = response.json()["errors"][0]["detail"]
    assert "merchant_id" in detail and "amount" in detail and "extra" in detail
    assert function.events == []


def test_path_parameter_is_validated_against_the_schema_pattern(api):
    gateway, function = api
    bad = requests.get(
        f"{gateway.base_url}/qa/transaction/BAD_ID!", headers={"x-api-key": "secret-key"}, timeout=5
    )
    assert bad.status_code == 400
    good = requests.get(
        f"{gateway.base_url}/qa/transaction/abc-1", headers={"x-api-key": "secret-key"}, timeout=5
    )
    assert good.status_code == 202
    assert function.events[-1]["pathParameters"] == {"transaction_id": "abc-1"}


def test_usage_plan_rate_and_burst_give_429(api):
    gateway, _ = api
    statuses = [post(gateway, {"merchant_id": "m", "amount": "1.00"}).status_code for _ in range(12)]
    assert statuses[:5] == [202] * 5
    assert 429 in statuses[5:]


def test_malformed_handler_response_is_502(api):
    gateway, function = api
    function.answer = Invocation(payload={"status": "oops"})
    assert post(gateway, {"merchant_id": "m", "amount": "1.00"}).status_code == 502
    function.answer = Invocation(error={"errorType": "ValueError", "errorMessage": "x"})
    assert post(gateway, {"merchant_id": "m", "amount": "1.00"}).status_code == 502


def test_unknown_route_or_stage_is_not_served(api):
    gateway, _ = api
    assert requests.get(f"{gateway.base_url}/qa/other", timeout=5).status_code == 404
    assert requests.post(f"{gateway.base_url}/prod/transaction", timeout=5).status_code == 404


def test_token_bucket_refills_at_the_rate():
    bucket = TokenBucket(rate=1000, burst=2)
    assert bucket.take() and bucket.take()
    assert not bucket.take()
    bucket.updated -= 0.01  # 10 ms later at 1,000/s
    assert bucket.take()

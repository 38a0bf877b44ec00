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


def template(gateway: LocalRestApi, response_type: str) -> str:
    return gateway.document["x-amazon-apigateway-gateway-responses"][response_type]["responseTemplates"][
        "application/json"
    ]


def test_body_that_is_not_a_json_object_is_400_with_the_fixed_body_and_never_echoed(api):
    gateway, function = api
    for raw in ('{"card": {"number": "4111111111111111", "cvv": "737"', '["4111111111111111", "737"]'):
        response = requests.post(
            f"{gateway.base_url}/qa/transaction", data=raw, headers={"x-api-key": "secret-key"}, timeout=5
        )
        assert response.status_code == 400
        # Byte for byte what the stage renders from the document: valid JSON, no submitted value.
        assert response.text == template(gateway, "BAD_REQUEST_BODY")
        assert response.json()["code"] == "MALFORMED_REQUEST"
        assert "4111111111111111" not in response.text and "737" not in response.text
    assert function.events == []


def test_object_bodies_with_bad_fields_reach_the_validator_which_names_each_field(api):
    gateway, function = api
    response = post(gateway, {"amount": "1", "extra": True})
    assert response.status_code == 202  # what FakeFunction answers: the edge let it through
    (event,) = function.events
    assert json.loads(event["body"]) == {"amount": "1", "extra": True}


def test_path_parameter_pattern_is_not_enforced_at_the_edge_as_in_api_gateway(api):
    """API Gateway validates only that required parameters are present; the function sees any id."""
    gateway, function = api
    for transaction_id in ("BAD_ID!", "abc-1"):
        response = requests.get(
            f"{gateway.base_url}/qa/transaction/{transaction_id}",
            headers={"x-api-key": "secret-key"},
            timeout=5,
        )
        assert response.status_code == 202
        assert function.events[-1]["pathParameters"] == {"transaction_id": transaction_id}


def test_missing_required_query_or_header_parameter_is_400_bad_request_parameters():
    function = FakeFunction()
    gateway = LocalRestApi(lambda *args: None, port=0)
    document = build_openapi_document(title="t", validator_invoke_arn="arn:fn", request_schema=SCHEMA)
    get = document["paths"]["/transaction/{transaction_id}"]["get"]
    get["parameters"].append(
        {"name": "x-trace", "in": "header", "required": True, "schema": {"type": "string"}}
    )
    gateway.serve(
        document, "qa", "api123", [ApiKeyPlan("key-id", "k", rate_limit=5, burst_limit=5)], function
    )
    try:
        url = f"{gateway.base_url}/qa/transaction/abc"
        missing = requests.get(url, headers={"x-api-key": "k"}, timeout=5)
        assert missing.status_code == 400
        assert missing.text == template(gateway, "BAD_REQUEST_PARAMETERS")
        present = requests.get(url, headers={"x-api-key": "k", "x-trace": "1"}, timeout=5)
        assert present.status_code == 202
    finally:
        gateway.stop()


def test_a_gateway_response_template_with_a_variable_is_refused():
    gateway = LocalRestApi(lambda *args: None, port=0)
    document = build_openapi_document(title="t", validator_invoke_arn="arn:fn", request_schema=SCHEMA)
    document["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]["responseTemplates"] = {
        "application/json": '{"message": "$context.error.validationErrorString"}'
    }
    try:
        with pytest.raises(ValueError, match="BAD_REQUEST_BODY"):
            gateway.serve(document, "qa", "api123", [], FakeFunction())
    finally:
        gateway.stop()


def test_usage_plan_rate_and_burst_give_429(api):
    gateway, _ = api
    statuses = [post(gateway, {"merchant_id": "m", "amount": "1.00"}).status_code for _ in range(12)]
    assert statuses[:5] == [202] * 5
    assert 429 in statuses[5:]


def test_malformed_handler_response_or_handler_error_is_502_with_the_default_5xx_body(api):
    gateway, function = api
    function.answer = Invocation(payload={"status": "oops"})
    response = post(gateway, {"merchant_id": "m", "amount": "1.00"})
    assert response.status_code == 502
    assert response.text == template(gateway, "DEFAULT_5XX")
    function.answer = Invocation(error={"errorType": "ValueError", "errorMessage": "x"})
    response = post(gateway, {"merchant_id": "m", "amount": "1.00"})
    assert response.status_code == 502
    assert response.text == template(gateway, "DEFAULT_5XX")


def test_key_and_route_errors_are_the_documents_templates_verbatim(api):
    gateway, _ = api
    forbidden = post(gateway, {"merchant_id": "m", "amount": "1.00"}, key=None)
    assert (forbidden.status_code, forbidden.text) == (403, template(gateway, "INVALID_API_KEY"))
    missing = requests.get(f"{gateway.base_url}/qa/other", timeout=5)
    assert (missing.status_code, missing.text) == (404, template(gateway, "MISSING_AUTHENTICATION_TOKEN"))


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


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_body_nested_thousands_deep_is_400_with_the_fixed_json_body_not_a_crash(api, opener):
    gateway, function = api
    closer = "]" if opener == "[" else "}"
    response = requests.post(
        f"{gateway.base_url}/qa/transaction",
        data=opener * 5_000 + "1" + closer * 5_000,
        headers={"x-api-key": "secret-key"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.text == template(gateway, "BAD_REQUEST_BODY")  # JSON, not an HTML 500
    assert function.events == []


def test_a_repeated_key_passes_the_edge_verbatim_for_the_function_to_refuse(api):
    gateway, function = api
    raw = '{"amount": "1.00", "amount": "9.00"}'
    response = requests.post(
        f"{gateway.base_url}/qa/transaction", data=raw, headers={"x-api-key": "secret-key"}, timeout=5
    )
    assert response.status_code == 202  # what FakeFunction answers: the edge let it through
    (event,) = function.events
    assert event["body"] == raw  # both keys reach the validator, which names the repeated one

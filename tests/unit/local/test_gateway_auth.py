"""P1: both routes of the API demand the API key, as the local pipeline serves them.

Checked by behaviour, not by reading the OpenAPI document: a request without a valid
``x-api-key`` gets API Gateway's INVALID_API_KEY response (403, the document's fixed JSON body) and
never reaches the validator, on ``GET /transaction/{id}`` as on ``POST /transaction``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from lib.openapi import build_openapi_document, transaction_request_schema
from tap_local.gateway import ApiKeyPlan, LocalRestApi
from tap_local.pipeline import LocalConfig, LocalPipeline
from tap_local.scenarios import transaction
from tap_local.workers import Invocation

FORBIDDEN = {"code": "FORBIDDEN", "message": "Forbidden: a valid x-api-key header is required"}
WITHOUT_A_VALID_KEY = {"no-key": None, "wrong-key": "not-the-key"}


def _headers(key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    return headers


def _assert_forbidden(response: requests.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == FORBIDDEN


class RecordingFunction:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.events.append(event)
        return Invocation(payload={"statusCode": 200, "body": '{"transaction_id": "t", "status": "CLEARED"}'})


def test_p1_get_transaction_without_a_valid_key_is_403_json_and_never_reaches_the_function():
    """The stack's own document (real request schema) on the gateway alone: fast, no processes."""
    function = RecordingFunction()
    gateway = LocalRestApi(lambda *args: None, port=0)
    document = build_openapi_document(
        title="t", validator_invoke_arn="arn:fn", request_schema=transaction_request_schema()
    )
    try:
        gateway.serve(document, "qa", "api123", [ApiKeyPlan("id", "the-key", 50, 50)], function)
        url = f"{gateway.base_url}/qa/transaction/abc-1"
        for key in WITHOUT_A_VALID_KEY.values():
            _assert_forbidden(requests.get(url, headers=_headers(key), timeout=5))
        assert function.events == []

        allowed = requests.get(url, headers=_headers("the-key"), timeout=5)
        assert allowed.status_code == 200
        assert [event["httpMethod"] for event in function.events] == ["GET"]
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The whole local pipeline, built from the stack definition (as `make local` runs it)."""
    workdir = tmp_path_factory.mktemp("gateway-auth")
    config = LocalConfig(
        emulator_port=0, api_port=0, workdir=workdir, outputs_path=workdir / "outputs.json", verbose=False
    )
    pipeline = LocalPipeline(config).start()
    try:
        yield pipeline.outputs
    finally:
        pipeline.stop()


@pytest.mark.parametrize("case", WITHOUT_A_VALID_KEY)
def test_p1_local_pipeline_get_without_a_valid_key_is_403_and_reveals_nothing(local_api, case):
    key, transaction_id = WITHOUT_A_VALID_KEY[case], f"auth-get-{case}"
    url, api_key = str(local_api["api_url"]), str(local_api["api_key_value"])
    body = json.dumps(transaction(transaction_id=transaction_id))
    accepted = requests.post(url, data=body, headers=_headers(api_key), timeout=30)
    assert accepted.status_code == 202, accepted.text

    response = requests.get(f"{url}/{transaction_id}", headers=_headers(key), timeout=30)

    _assert_forbidden(response)
    assert transaction_id not in response.text
    # With the key, the same GET reaches the validator and finds the transaction.
    found = requests.get(f"{url}/{transaction_id}", headers=_headers(api_key), timeout=30)
    assert found.status_code == 200, found.text
    assert found.json()["transaction_id"] == transaction_id


@pytest.mark.parametrize("case", WITHOUT_A_VALID_KEY)
def test_p1_local_pipeline_post_without_a_valid_key_is_403_and_stores_nothing(local_api, case):
    key, transaction_id = WITHOUT_A_VALID_KEY[case], f"auth-post-{case}"
    url, api_key = str(local_api["api_url"]), str(local_api["api_key_value"])
    body = json.dumps(transaction(transaction_id=transaction_id))

    response = requests.post(url, data=body, headers=_headers(key), timeout=30)

    _assert_forbidden(response)
    missing = requests.get(f"{url}/{transaction_id}", headers=_headers(api_key), timeout=30)
    assert missing.status_code == 404, missing.text

"""Schema conformance (resilience/conformance.py): the CI-sized run, and proof that its checks can fail.

The quick run starts its own local pipeline on free loopback ports; the can-fail tests use a
loopback server that answers against the document on purpose, or the real pipeline checked
against a deliberately wrong document. Generation is seeded; nothing asserts on timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lib.openapi import build_openapi_document, transaction_request_schema
from resilience import conformance

QUICK_REQUESTS = 300


def _checks(result: conformance.ConformanceResult) -> set[str]:
    return {finding.check.split(" ", 1)[1] for finding in result.findings.values()}


def test_quick_conformance_run_no_5xx_and_every_response_as_documented(show):
    result = conformance.run(QUICK_REQUESTS)
    show("schema conformance", result.lines())
    assert result.distinct >= QUICK_REQUESTS
    assert result.transport_errors == []
    # Every stream ran, valid transactions were accepted and their 200 bodies were checked.
    assert {"coverage", "positive", "negative", "contract-positive", "contract-negative", "lookup"} <= set(
        result.by_stream
    )
    assert result.accepted_ids
    assert result.looked_up_states
    assert result.server_errors == []
    assert result.negative_not_rejected == []
    assert result.nonconforming == 0, [finding.line() for finding in result.findings.values()]
    assert result.ok


@pytest.fixture
def misbehaving_api() -> Iterator[str]:
    """A loopback API that answers every request against the document, in several ways at once."""

    def answer(request: Request) -> Response:
        if not request.headers.get("x-api-key"):
            return Response(json.dumps({"message": "welcome"}), status=200, content_type="application/json")
        if request.method == "GET":  # undeclared status value, and not JSON
            return Response(
                '{"transaction_id": "x", "status": "WEIRD"}', status=200, content_type="text/html"
            )
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            body = None
        if isinstance(body, dict):  # a 202 whose id is not a string
            return Response(
                '{"transaction_id": 5, "status": "PENDING"}', status=202, content_type="application/json"
            )
        return Response("boom", status=500, content_type="text/plain")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return answer(Request(environ))(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/local"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_responses_against_the_document_are_reported(misbehaving_api):
    document = build_openapi_document(
        title="conformance-can-fail",
        validator_invoke_arn="arn:aws:apigateway:us-east-2:lambda:path/2015-03-31/functions/f/invocations",
        request_schema=transaction_request_schema(),
    )
    with conformance._quiet_werkzeug():
        result = conformance.exercise(
            document, base_url=misbehaving_api, api_key="key-test", requests_target=80, seed=3
        )
    assert result.distinct >= 80
    assert result.server_errors  # the 500s
    assert result.negative_not_rejected  # requests without the key answered 200
    assert result.nonconforming > 0
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",  # its 202 has no Location header
        "negative_data_rejection",
    } <= _checks(result)
    assert not result.ok


def test_the_real_pipeline_checked_against_a_wrong_document_is_reported(show):
    def wrong(document: dict[str, Any]) -> dict[str, Any]:
        post = document["paths"]["/transaction"]["post"]
        del post["responses"]["400"]  # the validator's 400s are now undocumented
        error_ref = post["responses"]["403"]["content"]["application/json"]["schema"]["$ref"]
        error_schema = document["components"]["schemas"][error_ref.rsplit("/", 1)[-1]]
        error_schema["required"] = [*error_schema.get("required", []), "retry_after"]  # no error has one
        return document

    result = conformance.run(60, document_override=wrong)
    show("schema conformance, wrong document", result.lines()[-12:])
    assert {"status_code_conformance", "response_schema_conformance"} <= _checks(result)
    undocumented = [f for f in result.findings.values() if f.check.endswith("status_code_conformance")]
    assert any(f.status == 400 and f.operation == "POST /transaction" for f in undocumented)
    assert not result.ok


def test_too_few_requests_fail_the_run():
    assert not conformance.ConformanceResult(target=2000, requests=1999).ok
    assert conformance.ConformanceResult(target=2000, requests=2000).ok
    assert not conformance.ConformanceResult(target=2000, requests=2000, repeated=1).ok  # repeats don't count


def test_card_data_is_masked_in_reports():
    text = conformance.masked('{"card": {"number": "4111111111111111", "cvv": "737"}}')
    assert "4111111111111111" not in text
    assert "737" not in text

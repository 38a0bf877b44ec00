"""The OpenAPI document is the API's one definition and API Gateway can import it."""

from __future__ import annotations

import json

from lib.openapi import build_openapi_document, openapi_schema, transaction_request_schema

# JSON Schema draft 4 keywords API Gateway models accept; anything else is ignored or rejected.
DRAFT4_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "pattern", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
    "uniqueItems", "oneOf", "anyOf", "allOf", "not", "format", "description", "title", "default",
    "multipleOf", "minProperties", "maxProperties", "$ref", "definitions", "patternProperties",
}  # fmt: skip


def schema_keywords(schema: object) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "definitions", "patternProperties"):
                for sub in value.values():
                    found |= schema_keywords(sub)
            elif key not in ("enum", "default", "required", "description", "title"):
                found |= schema_keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= schema_keywords(item)
    return found


def test_request_schema_from_the_function_model_uses_only_draft4_keywords():
    schema = openapi_schema(transaction_request_schema())
    assert schema["type"] == "object"
    assert {"merchant_id", "amount", "currency", "card"} <= set(schema["required"])
    unsupported = schema_keywords(schema) - DRAFT4_KEYWORDS
    assert not unsupported, f"API Gateway cannot validate with: {sorted(unsupported)}"
    assert "$defs" not in json.dumps(schema)


def test_document_validates_body_and_params_and_names_failing_fields():
    document = build_openapi_document(
        title="t",
        validator_invoke_arn="arn:aws:apigateway:r:lambda:path/fn",
        request_schema={"type": "object"},
    )
    assert document["x-amazon-apigateway-request-validator"] == "body-and-params"
    assert document["x-amazon-apigateway-request-validators"]["body-and-params"] == {
        "validateRequestBody": True,
        "validateRequestParameters": True,
    }
    responses = document["x-amazon-apigateway-gateway-responses"]
    template = json.loads(responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"])
    assert template["errors"] == [{"detail": "$context.error.validationErrorString"}]
    assert responses["INVALID_API_KEY"]["statusCode"] == 403
    assert responses["THROTTLED"]["statusCode"] == 429
    for path in document["paths"].values():
        for operation in path.values():
            assert (
                operation["x-amazon-apigateway-integration"]["uri"] == "arn:aws:apigateway:r:lambda:path/fn"
            )

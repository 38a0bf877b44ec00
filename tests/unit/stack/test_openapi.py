"""The OpenAPI document is the API's one definition and API Gateway can import it."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft4Validator

from lib.openapi import build_openapi_document, openapi_schema, response_schemas, transaction_request_schema
from tap_contract.api import RESPONSE_MODELS, ErrorCode

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


def document(request_schema: dict | None = None) -> dict:
    return build_openapi_document(
        title="t",
        validator_invoke_arn="arn:aws:apigateway:r:lambda:path/fn",
        request_schema=request_schema if request_schema is not None else transaction_request_schema(),
    )


def deployed_document(graph) -> dict:
    return json.loads(graph.one("aws:apigateway/restApi:RestApi", "rest-api").inputs["body"])


def test_document_validates_body_and_params_and_routes_every_operation_to_the_validator():
    doc = document({"type": "object"})
    assert doc["x-amazon-apigateway-request-validator"] == "body-and-params"
    assert doc["x-amazon-apigateway-request-validators"]["body-and-params"] == {
        "validateRequestBody": True,
        "validateRequestParameters": True,
    }
    responses = doc["x-amazon-apigateway-gateway-responses"]
    assert responses["INVALID_API_KEY"]["statusCode"] == 403
    assert responses["THROTTLED"]["statusCode"] == 429
    assert responses["BAD_REQUEST_BODY"]["statusCode"] == 400
    for path in doc["paths"].values():
        for operation in path.values():
            assert (
                operation["x-amazon-apigateway-integration"]["uri"] == "arn:aws:apigateway:r:lambda:path/fn"
            )


def test_gateway_response_bodies_are_fixed_valid_json_without_validation_error_string(graph):
    """API Gateway's validation text quotes submitted values (PAN, CVV) unescaped: never render it."""
    for doc in (document(), deployed_document(graph)):
        responses = doc["x-amazon-apigateway-gateway-responses"]
        assert {"BAD_REQUEST_BODY", "BAD_REQUEST_PARAMETERS", "DEFAULT_5XX"} <= set(responses)
        for response_type, response in responses.items():
            for template in response["responseTemplates"].values():
                assert "validationErrorString" not in template, response_type
                # No template variable at all, so the body API Gateway renders is this text verbatim.
                assert "$" not in template, response_type
                body = json.loads(template)
                assert isinstance(body["message"], str) and body["message"], response_type
                assert body["code"].isupper(), response_type


def test_bad_request_body_message_says_what_is_wrong_in_general_terms():
    responses = document()["x-amazon-apigateway-gateway-responses"]
    body = json.loads(responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"])
    assert body["code"] == "MALFORMED_REQUEST"
    assert "JSON object" in body["message"] and "TransactionRequest" in body["message"]


def test_edge_checks_only_the_body_shape_so_field_errors_come_from_the_validator(graph):
    for doc in (document(), deployed_document(graph)):
        post = doc["paths"]["/transaction"]["post"]
        reference = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        edge_schema = doc["components"]["schemas"][reference.rsplit("/", 1)[1]]
        edge = Draft4Validator(edge_schema)
        # Semantically wrong bodies pass the edge: the validator names each bad field, echoing nothing.
        for body in (
            {},
            {"merchant_id": "m", "amount": 12},
            {"card": {"number": "4111 1111 1111 1111", "cvv": "12345"}, "extra": True},
        ):
            assert edge.is_valid(body), body
        for body in ([], "4111111111111111", 42, None):
            assert not edge.is_valid(body), body
        # The full contract is still published for clients.
        contract = doc["components"]["schemas"]["TransactionRequest"]
        assert {"merchant_id", "amount", "currency", "card"} <= set(contract["required"])
        assert reference != "#/components/schemas/TransactionRequest"


def test_default_5xx_keeps_the_original_status_and_only_sets_the_body():
    """A DEFAULT_5XX statusCode would turn a 504 integration timeout (and every other 5XX) into it."""
    default_5xx = document()["x-amazon-apigateway-gateway-responses"]["DEFAULT_5XX"]
    assert "statusCode" not in default_5xx
    assert json.loads(default_5xx["responseTemplates"]["application/json"])["code"] == "SERVICE_ERROR"


def test_p1_every_response_schema_is_generated_from_the_contract_models(graph):
    """The document cannot drift from what the function answers: both come from tap_contract.api."""
    for doc in (document(), deployed_document(graph)):
        schemas = doc["components"]["schemas"]
        for model in RESPONSE_MODELS:
            assert schemas[model.__name__] == response_schemas()[model.__name__]
        # GET's card is BIN + last 4 as an object (the document once said a string).
        assert schemas["TransactionView"]["properties"]["card"] == {
            "$ref": "#/components/schemas/CardDisplay"
        }
        assert set(schemas["CardDisplay"]["properties"]) == {"bin", "last4"}
        assert set(schemas["ErrorCode"]["enum"]) == {code.value for code in ErrorCode}
        for path in doc["paths"].values():
            for operation in path.values():
                assert {"400", "403", "429", "503"} <= set(operation["responses"])
                for response in operation["responses"].values():
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in schemas


def test_response_schemas_are_openapi_3_0_without_null_types_or_const():
    text = json.dumps(response_schemas())
    assert '"null"' not in text and '"const"' not in text and "$defs" not in text
    view = response_schemas()["TransactionView"]
    assert view["properties"]["amount"] == {"title": "Amount", "type": "string", "nullable": True}
    assert "failure_reason" not in view["required"]  # absent, never null
    assert "nullable" not in view["properties"]["failure_reason"]


def test_response_schemas_refuse_what_openapi_3_0_cannot_say_and_publish_plain_text():
    from pydantic import BaseModel

    class Inner(BaseModel):
        value: str

    class Outer(BaseModel):
        """Uses :class:`Inner` and ``code``."""

        inner: Inner | None

    with pytest.raises(ValueError, match="nullable reference"):
        response_schemas((Outer,))
    text = json.dumps(response_schemas())
    assert ":meth:" not in text and ":class:" not in text and "``" not in text

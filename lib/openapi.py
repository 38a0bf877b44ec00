"""The API's one definition: an OpenAPI 3 document with API Gateway extensions (P1).

The REST API is imported from this document and the local pipeline serves it. The full request
contract (`TransactionRequest`) and every response body are generated from the contract's models
(`tap_contract.api`), the ones the validator function parses and answers with. Of the request,
API Gateway checks only the body's shape: that it is a JSON object. Everything else is checked
by the validator function, which answers 400 with one message per bad field and never echoes a
submitted value. API Gateway's own validation message (`$context.error.validationErrorString`)
quotes the submitted values, card number and CVV included, and is not JSON-escaped, so it never
appears in a response: every gateway response here is a fixed JSON body.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel

from tap_contract.api import (
    RESPONSE_MODELS,
    ErrorBody,
    TransactionAccepted,
    TransactionView,
    transaction_request_json_schema,
)

API_KEY_SCHEME = "api_key"
# API Gateway's request validator checks that required parameters are present, never their schema.
PATH_PATTERN_NOTE = (
    "The id the transaction was accepted with. The pattern documents the ids POST accepts; API "
    "Gateway does not enforce it on path parameters, the function looks the id up."
)
# API Gateway's own integration limit is 29 s; the validator answers far sooner or fails.
INTEGRATION_TIMEOUT_MS = 29_000

SCHEMA_REF = "#/components/schemas/"


def _json_response(
    description: str, model: type[BaseModel], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": SCHEMA_REF + model.__name__}}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying (every 503)"}


# What API Gateway itself checks of a POST body (the validator function checks the rest, per field).
_REQUEST_SHAPE_SCHEMA = {
    "title": "TransactionRequestShape",
    "type": "object",
    "description": (
        "Checked by API Gateway: the body is a JSON object. The validator function then checks it "
        "against TransactionRequest and answers 400 with one entry per bad field."
    ),
}
BAD_REQUEST_BODY_MESSAGE = (
    "The request body must be a JSON object (Content-Type: application/json) following the "
    "TransactionRequest schema in the API documentation; once it is, a 400 lists each field that "
    "needs fixing."
)
BAD_REQUEST_PARAMETERS_MESSAGE = (
    "A required request parameter is missing; see the API documentation for this route's parameters."
)


def _gateway_response(status: int | None, code: str, message: str) -> dict[str, Any]:
    """A fixed JSON body. No `$context` variables: some quote the request, unescaped (card data)."""
    response: dict[str, Any] = {
        "responseParameters": {"gatewayresponse.header.Content-Type": "'application/json'"},
        "responseTemplates": {"application/json": json.dumps({"code": code, "message": message})},
    }
    if status is not None:
        response["statusCode"] = status
    return response


def _lambda_integration(validator_invoke_arn: str) -> dict[str, Any]:
    return {
        "type": "aws_proxy",
        "httpMethod": "POST",  # Lambda is always invoked with POST, whatever the route's method
        "uri": validator_invoke_arn,
        "passthroughBehavior": "when_no_match",
        "timeoutInMillis": INTEGRATION_TIMEOUT_MS,
    }


def build_openapi_document(
    *, title: str, validator_invoke_arn: str, request_schema: dict[str, Any]
) -> dict[str, Any]:
    """The whole API: routes, validation, API-key security and gateway error responses."""
    # The GET path documents the ids POST accepts: one pattern, from the request schema.
    transaction_id_schema = request_schema.get("properties", {}).get("transaction_id", {"type": "string"})
    common_errors = {
        "400": _json_response(
            "Malformed request: one `errors` entry per bad field (none when the body is not a JSON object)",
            ErrorBody,
        ),
        "403": _json_response("Missing or invalid API key", ErrorBody),
        "413": _json_response("Request too large (answered by API Gateway)", ErrorBody),
        "429": _json_response("Throttled by the usage plan", ErrorBody),
        "503": _json_response(
            "Temporarily unable to complete the request; retry it (with the same transaction_id)",
            ErrorBody,
            RETRY_AFTER,
        ),
    }
    return {
        "openapi": "3.0.1",
        "info": {"title": title, "version": "1.0.0"},
        "x-amazon-apigateway-api-key-source": "HEADER",
        "x-amazon-apigateway-request-validators": {
            "body-and-params": {"validateRequestBody": True, "validateRequestParameters": True},
        },
        "x-amazon-apigateway-request-validator": "body-and-params",
        "x-amazon-apigateway-gateway-responses": {
            "BAD_REQUEST_BODY": _gateway_response(400, "MALFORMED_REQUEST", BAD_REQUEST_BODY_MESSAGE),
            "BAD_REQUEST_PARAMETERS": _gateway_response(
                400, "MALFORMED_REQUEST", BAD_REQUEST_PARAMETERS_MESSAGE
            ),
            "INVALID_API_KEY": _gateway_response(
                403, "FORBIDDEN", "Forbidden: a valid x-api-key header is required"
            ),
            "MISSING_AUTHENTICATION_TOKEN": _gateway_response(404, "NOT_FOUND", "Not found"),
            "THROTTLED": _gateway_response(429, "THROTTLED", "Too many requests"),
            "QUOTA_EXCEEDED": _gateway_response(429, "QUOTA_EXCEEDED", "Quota exceeded"),
            "WAF_FILTERED": _gateway_response(403, "FORBIDDEN", "Forbidden by the web application firewall"),
            "REQUEST_TOO_LARGE": _gateway_response(413, "REQUEST_TOO_LARGE", "Request too large"),
            # No statusCode: a status set here would replace every 5XX's own (504 for an integration
            # timeout, 500, 502 ...); only the body is customised.
            "DEFAULT_5XX": _gateway_response(
                None, "SERVICE_ERROR", "The service could not complete the request; retry it"
            ),
        },
        "paths": {
            "/transaction": {
                "post": {
                    "operationId": "submitTransaction",
                    "summary": "Submit a card transaction for validation and fraud scoring",
                    "security": [{API_KEY_SCHEME: []}],
                    "requestBody": {
                        "description": (
                            "A TransactionRequest (#/components/schemas/TransactionRequest). API "
                            "Gateway checks only that it is a JSON object; the function checks each field."
                        ),
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/TransactionRequestShape"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json_response(
                            "Accepted for fraud scoring",
                            TransactionAccepted,
                            {"Location": "Where to GET the transaction's status"},
                        ),
                        **common_errors,
                        "409": _json_response("transaction_id reused with a different body", ErrorBody),
                        "422": _json_response("Rejected by merchant rules (reason code)", ErrorBody),
                    },
                    "x-amazon-apigateway-integration": _lambda_integration(validator_invoke_arn),
                }
            },
            "/transaction/{transaction_id}": {
                "get": {
                    "operationId": "getTransaction",
                    "summary": "Status, fraud score and reasons of one transaction",
                    "security": [{API_KEY_SCHEME: []}],
                    "parameters": [
                        {
                            "name": "transaction_id",
                            "in": "path",
                            "required": True,
                            "description": PATH_PATTERN_NOTE,
                            "schema": {"type": "string", **transaction_id_schema},
                        }
                    ],
                    "responses": {
                        "200": _json_response("The transaction's current state", TransactionView),
                        **common_errors,
                        "404": _json_response("Unknown transaction", ErrorBody),
                    },
                    "x-amazon-apigateway-integration": _lambda_integration(validator_invoke_arn),
                }
            },
        },
        "components": {
            "securitySchemes": {API_KEY_SCHEME: {"type": "apiKey", "name": "x-api-key", "in": "header"}},
            "schemas": {
                "TransactionRequest": openapi_schema(request_schema),
                "TransactionRequestShape": _REQUEST_SHAPE_SCHEMA,
                **response_schemas(),
            },
        },
    }


def openapi_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema as an OpenAPI schema object: OpenAPI has no `$schema` keyword."""
    schema = copy.deepcopy(json_schema)
    schema.pop("$schema", None)
    return schema


def transaction_request_schema() -> dict[str, Any]:
    """The request body schema, from the contract's model (one definition of the contract)."""
    return transaction_request_json_schema()


def _openapi_3_0(node: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema node in OpenAPI 3.0's dialect.

    OpenAPI 3.0 has no `null` type and no `const`: `X | None` becomes `X` with `nullable: true`
    (through `allOf` for a `$ref`, which takes no siblings) and a constant becomes a one-value enum.
    """
    if isinstance(node, list):
        return [_openapi_3_0(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _openapi_3_0(value) for key, value in node.items() if key not in ("anyOf", "const")}
    if isinstance(node.get("description"), str):
        converted["description"] = _plain(node["description"])
    if "default" in converted and converted["default"] is None:
        del converted["default"]
    if "const" in node:
        converted["enum"] = [node["const"]]
    variants = node.get("anyOf")
    if variants is not None:
        others = [variant for variant in variants if variant != {"type": "null"}]
        if len(others) == 1 and len(others) < len(variants):
            inner = _openapi_3_0(others[0])
            if "$ref" in inner:
                # OpenAPI 3.0 has no nullable reference ($ref takes no siblings; allOf + nullable
                # without a type means nothing under 3.0.3): such a model must not be published.
                raise ValueError(f"a nullable reference cannot be expressed in OpenAPI 3.0: {inner['$ref']}")
            converted = {**converted, **inner, "nullable": True}
        else:
            converted["anyOf"] = _openapi_3_0(variants)
    return converted


def _plain(text: str) -> str:
    """A docstring as public text: Sphinx roles and double backticks become plain Markdown code."""
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")


def response_schemas(models: tuple[type[BaseModel], ...] = RESPONSE_MODELS) -> dict[str, Any]:
    """Every response body's schema (and the enums and models they use), keyed by model name."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=SCHEMA_REF + "{model}", mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {name: _openapi_3_0(schema) for name, schema in sorted(schemas.items())}


def document_digest(document_json: str) -> str:
    """Redeploy trigger: changes exactly when the document does."""
    return hashlib.sha256(document_json.encode()).hexdigest()

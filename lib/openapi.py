"""The API's one definition: an OpenAPI 3 document with API Gateway extensions (P1).

The REST API is imported from this document, the local pipeline serves it, and the request body
schema comes from the function package's own model, so the edge and the handler validate the same
contract. API Gateway validates bodies with JSON Schema draft 4 and turns failures into a 400 whose
body names the failing fields (the BAD_REQUEST_BODY gateway response below).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

API_KEY_SCHEME = "api_key"
# API Gateway's own integration limit is 29 s; the validator answers far sooner or fails.
INTEGRATION_TIMEOUT_MS = 29_000

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "reason": {"type": "string"},
    },
}
_ACCEPTED_SCHEMA = {
    "type": "object",
    "required": ["transaction_id", "status"],
    "properties": {"transaction_id": {"type": "string"}, "status": {"type": "string", "enum": ["PENDING"]}},
}
_STATUS_SCHEMA = {
    "type": "object",
    "required": ["transaction_id", "status"],
    "properties": {
        "transaction_id": {"type": "string"},
        "status": {"type": "string", "enum": ["RECEIVED", "CLEARED", "FLAGGED", "FAILED"]},
        "fraud_score": {"type": "number"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "card": {"type": "string", "description": "BIN and last four digits at most"},
    },
}


def _json_response(description: str, schema_name: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def _gateway_response(status: int, message: str, *, with_validation_errors: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if with_validation_errors:
        # API Gateway's own text naming each failing field of the body or parameters.
        body["errors"] = [{"detail": "$context.error.validationErrorString"}]
    return {
        "statusCode": status,
        "responseParameters": {"gatewayresponse.header.Content-Type": "'application/json'"},
        "responseTemplates": {"application/json": json.dumps(body)},
    }


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
    # The GET path accepts exactly the ids POST accepts: one pattern, from the request schema.
    transaction_id_schema = request_schema.get("properties", {}).get("transaction_id", {"type": "string"})
    common_errors = {
        "400": _json_response("Malformed request: one entry per bad field", "Error"),
        "403": _json_response("Missing or invalid API key", "Error"),
        "429": _json_response("Throttled by the usage plan", "Error"),
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
            "BAD_REQUEST_BODY": _gateway_response(400, "Invalid request body", with_validation_errors=True),
            "BAD_REQUEST_PARAMETERS": _gateway_response(
                400, "Invalid request parameters", with_validation_errors=True
            ),
            "INVALID_API_KEY": _gateway_response(403, "Forbidden: a valid x-api-key header is required"),
            "MISSING_AUTHENTICATION_TOKEN": _gateway_response(404, "Not found"),
            "THROTTLED": _gateway_response(429, "Too many requests"),
            "QUOTA_EXCEEDED": _gateway_response(429, "Quota exceeded"),
            "WAF_FILTERED": _gateway_response(403, "Forbidden by the web application firewall"),
            "REQUEST_TOO_LARGE": _gateway_response(413, "Request too large"),
            "DEFAULT_5XX": _gateway_response(502, "The service could not complete the request"),
        },
        "paths": {
            "/transaction": {
                "post": {
                    "operationId": "submitTransaction",
                    "summary": "Submit a card transaction for validation and fraud scoring",
                    "security": [{API_KEY_SCHEME: []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/TransactionRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json_response("Accepted for fraud scoring", "TransactionAccepted"),
                        **common_errors,
                        "409": _json_response("transaction_id reused with a different body", "Error"),
                        "422": _json_response("Rejected by merchant rules (reason code)", "Error"),
                        "503": _json_response(
                            "Temporarily unable to enqueue; retry with the same id", "Error"
                        ),
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
                            "schema": {"type": "string", **transaction_id_schema},
                        }
                    ],
                    "responses": {
                        "200": _json_response("The transaction's current state", "TransactionStatus"),
                        **common_errors,
                        "404": _json_response("Unknown transaction", "Error"),
                    },
                    "x-amazon-apigateway-integration": _lambda_integration(validator_invoke_arn),
                }
            },
        },
        "components": {
            "securitySchemes": {API_KEY_SCHEME: {"type": "apiKey", "name": "x-api-key", "in": "header"}},
            "schemas": {
                "TransactionRequest": openapi_schema(request_schema),
                "TransactionAccepted": _ACCEPTED_SCHEMA,
                "TransactionStatus": _STATUS_SCHEMA,
                "Error": _ERROR_SCHEMA,
            },
        },
    }


def openapi_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema as an OpenAPI schema object: OpenAPI has no `$schema` keyword."""
    schema = copy.deepcopy(json_schema)
    schema.pop("$schema", None)
    return schema


def transaction_request_schema() -> dict[str, Any]:
    """The request body schema, from the function package's model (one definition of the contract)."""
    from tap_pipeline.models import transaction_request_json_schema

    return transaction_request_json_schema()


def document_digest(document_json: str) -> str:
    """Redeploy trigger: changes exactly when the document does."""
    return hashlib.sha256(document_json.encode()).hexdigest()

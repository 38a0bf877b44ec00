"""The REST API on loopback, served from the stack's OpenAPI document.

In the order API Gateway applies them: route match, API key (403), usage-plan rate and burst
(429), request validation (400): required query-string and header parameters present (API Gateway
checks path parameters only by matching the route, never against their schema) and the body valid
against the operation's request model; then a Lambda proxy integration with a REST (v1) event. A
handler response that is not a proxy response, or a handler error, is a 502, as in AWS. Every
gateway error answers with the status and the response template of the document's
`x-amazon-apigateway-gateway-responses` for its type (DEFAULT_4XX / DEFAULT_5XX when the type has
none, the type's own status when the response sets none), exactly as the stage would render it:
the templates hold no `$context` variables, so what is served is the template itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft4Validator
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lib.graph import DEFAULT_ACCOUNT_ID
from tap_contract import json_body
from tap_local.workers import FunctionWorkers, Invocation

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit

# Each gateway response type this server can produce, with the status API Gateway gives it when the
# API sets none. A Lambda error or a malformed proxy response has no type of its own: it is a 502
# rendered with DEFAULT_5XX.
GATEWAY_RESPONSE_STATUS = {
    "BAD_REQUEST_BODY": 400,
    "BAD_REQUEST_PARAMETERS": 400,
    "INVALID_API_KEY": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "THROTTLED": 429,
    "REQUEST_TOO_LARGE": 413,
    "MALFORMED_PROXY_RESPONSE": 502,
}
DEFAULT_MESSAGES = {
    "BAD_REQUEST_BODY": "Invalid request body",
    "BAD_REQUEST_PARAMETERS": "Missing required request parameters",
    "INVALID_API_KEY": "Forbidden",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "THROTTLED": "Too Many Requests",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "MALFORMED_PROXY_RESPONSE": "Internal server error",
}


class TokenBucket:
    """Rate and burst as API Gateway applies them per key: refill `rate`/s up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


@dataclass(frozen=True)
class ApiKeyPlan:
    key_id: str
    value: str
    rate_limit: float
    burst_limit: float


@dataclass
class Route:
    method: str
    path_template: str
    pattern: re.Pattern[str]
    operation: dict[str, Any]


def _routes(document: dict[str, Any]) -> list[Route]:
    routes = []
    for path, operations in document["paths"].items():
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
        for method, operation in operations.items():
            routes.append(Route(method.upper(), path, re.compile(regex), operation))
    return routes


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: dict[str, Any] = node  # a $ref of this document names a schema object
    return resolved


class LocalRestApi:
    """A threaded HTTP server on 127.0.0.1 standing in for one REST API stage."""

    def __init__(self, on_request: Callable[[str, str, int, Invocation | None], None], port: int = 0):
        # Bound before the stack is evaluated, so the stage's invoke URL can carry the real port.
        self._on_request = on_request
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-rest-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(
        self,
        document: dict[str, Any],
        stage: str,
        api_id: str,
        keys: list[ApiKeyPlan],
        integration: FunctionWorkers,
    ) -> None:
        """Serve `document` as stage `stage`, invoking `integration` for every route."""
        self.document = document
        self.stage = stage
        self.api_id = api_id
        self._keys = {key.value: key for key in keys}
        self._buckets = {key.value: TokenBucket(key.rate_limit, key.burst_limit) for key in keys}
        self._integration = integration
        self._routes = _routes(document)
        self._gateway_responses = document.get("x-amazon-apigateway-gateway-responses", {})
        for response_type, response in self._gateway_responses.items():
            # Served verbatim, so a template variable would be served unrendered: refuse it.
            if any("$" in template for template in response.get("responseTemplates", {}).values()):
                raise ValueError(f"gateway response {response_type} uses a template variable")
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response, invocation = self._handle(request)
        self._on_request(request.method, request.path, response.status_code, invocation)
        return response(environ, start_response)

    def _gateway_error(self, response_type: str) -> Response:
        """The gateway response of `response_type` as the stage renders it (fixed templates)."""
        default_status = GATEWAY_RESPONSE_STATUS[response_type]
        fallback = "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX"
        configured = self._gateway_responses.get(response_type) or self._gateway_responses.get(fallback) or {}
        # A fallback's own status, when it sets one, replaces the status of every type it stands in for.
        status = configured.get("statusCode") or default_status
        template = (configured.get("responseTemplates") or {}).get("application/json")
        if template is None:
            template = json.dumps({"message": DEFAULT_MESSAGES[response_type]})
        return Response(template, status=int(status), content_type="application/json")

    def _handle(self, request: Request) -> tuple[Response, Invocation | None]:
        prefix = f"/{self.stage}"
        if not request.path.startswith(prefix + "/"):
            return self._gateway_error("MISSING_AUTHENTICATION_TOKEN"), None
        resource_path = request.path[len(prefix) :]
        matched = [(r, r.pattern.match(resource_path)) for r in self._routes]
        candidates = [(r, m) for r, m in matched if m]
        route_match = next(((r, m) for r, m in candidates if r.method == request.method), None)
        if route_match is None:
            return self._gateway_error("MISSING_AUTHENTICATION_TOKEN"), None
        route, match = route_match
        api_key = request.headers.get("x-api-key", "")
        if route.operation.get("security") and api_key not in self._keys:
            return self._gateway_error("INVALID_API_KEY"), None
        if api_key in self._buckets and not self._buckets[api_key].take():
            return self._gateway_error("THROTTLED"), None
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            return self._gateway_error("REQUEST_TOO_LARGE"), None
        body_text = request.get_data(as_text=True)
        problem = self._validate(route, request, body_text)
        if problem is not None:
            return self._gateway_error(problem), None
        event = self._proxy_event(request, route, match.groupdict(), body_text, api_key)
        invocation = self._integration.invoke(event)
        return self._proxy_response(invocation), invocation

    def _validate(self, route: Route, request: Request, body: str) -> str | None:
        """The gateway response type request validation fails with, or None.

        Path parameters are not checked here: a request reaches a route only when its path matched,
        and API Gateway never checks a path parameter against its schema (pattern, length).
        """
        for parameter in route.operation.get("parameters", []):
            if not parameter.get("required"):
                continue
            if parameter["in"] == "query":
                present = bool(request.args.get(parameter["name"]))
            elif parameter["in"] == "header":
                present = bool(request.headers.get(parameter["name"]))
            else:
                continue
            if not present:
                return "BAD_REQUEST_PARAMETERS"
        request_body = route.operation.get("requestBody")
        if not request_body:
            return None
        schema = _resolve(request_body["content"]["application/json"]["schema"], self.document)
        try:
            # Bounded nesting, so a hostile body gets the fixed JSON gateway response, never a crash
            # (an HTML 500). Repeated keys pass, as through API Gateway's own check: the function
            # refuses them with a message naming the key.
            payload = json_body.parse(body, unique_keys=False)
        except json_body.BodyError:
            return "BAD_REQUEST_BODY"
        if any(True for _ in Draft4Validator(schema).iter_errors(payload)):
            return "BAD_REQUEST_BODY"
        return None

    def _proxy_event(
        self, request: Request, route: Route, path_parameters: dict[str, str], body: str, api_key: str
    ) -> dict[str, Any]:
        headers = dict(request.headers.items())
        query = {k: v for k, v in request.args.items()}
        return {
            "resource": route.path_template,
            "path": request.path[len(self.stage) + 1 :],
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": {k: request.headers.getlist(k) for k in headers},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in query} or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": DEFAULT_ACCOUNT_ID,
                "apiId": self.api_id,
                "stage": self.stage,
                "resourcePath": route.path_template,
                "httpMethod": request.method,
                "path": request.path,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": "HTTP/1.1",
                "domainName": request.host,
                "identity": {
                    "sourceIp": request.remote_addr,
                    "userAgent": request.headers.get("user-agent"),
                    "apiKey": api_key or None,
                    "apiKeyId": self._keys[api_key].key_id if api_key in self._keys else None,
                },
            },
            "body": body or None,
            "isBase64Encoded": False,
        }

    def _proxy_response(self, invocation: Invocation) -> Response:
        payload = invocation.payload
        valid = (
            invocation.ok
            and isinstance(payload, dict)
            and isinstance(payload.get("statusCode"), int)
            and isinstance(payload.get("body", ""), str | type(None))
            and isinstance(payload.get("headers") or {}, dict)
        )
        if not valid:
            return self._gateway_error("MALFORMED_PROXY_RESPONSE")
        response = Response(payload.get("body") or "", status=payload["statusCode"])
        for name, value in (payload.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, str(value))
        return response

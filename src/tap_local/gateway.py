"""The REST API on loopback, served from the stack's OpenAPI document.

In the order API Gateway applies them: route match, API key (403), usage-plan rate and burst
(429), request validation of path parameters and body against the document's schemas (400, with
the failing fields), then a Lambda proxy integration with a REST (v1) event. A handler response
that is not a proxy response is a 502, as in AWS. Gateway error bodies come from the document's
`x-amazon-apigateway-gateway-responses`.
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

from tap_local.workers import FunctionWorkers, Invocation

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit


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
    return node


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
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def _wsgi(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        response, invocation = self._handle(request)
        self._on_request(request.method, request.path, response.status_code, invocation)
        return response(environ, start_response)

    def _gateway_error(self, response_type: str, validation_errors: str = "") -> Response:
        configured = self._gateway_responses.get(response_type) or self._gateway_responses.get("DEFAULT_4XX")
        status = configured["statusCode"] if configured else 403
        template = (
            configured["responseTemplates"]["application/json"] if configured else '{"message":"Forbidden"}'
        )
        body = template.replace("$context.error.validationErrorString", validation_errors.replace('"', '\\"'))
        return Response(body, status=int(status), content_type="application/json")

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
        problems = self._validate(route, match.groupdict(), body_text)
        if problems is not None:
            kind, errors = problems
            return self._gateway_error(kind, "[" + ", ".join(errors) + "]"), None
        event = self._proxy_event(request, route, match.groupdict(), body_text, api_key)
        invocation = self._integration.invoke(event)
        return self._proxy_response(invocation), invocation

    def _validate(
        self, route: Route, path_parameters: dict[str, str], body: str
    ) -> tuple[str, list[str]] | None:
        for parameter in route.operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            pattern = parameter.get("schema", {}).get("pattern")
            value = path_parameters.get(parameter["name"], "")
            if pattern and not re.search(pattern, value):
                return "BAD_REQUEST_PARAMETERS", [
                    f"path parameter {parameter['name']} does not match {pattern}"
                ]
        request_body = route.operation.get("requestBody")
        if not request_body:
            return None
        schema = _resolve(request_body["content"]["application/json"]["schema"], self.document)
        try:
            payload = json.loads(body)
        except ValueError:
            return "BAD_REQUEST_BODY", ["Invalid request body: not JSON"]
        errors = sorted(Draft4Validator(schema).iter_errors(payload), key=lambda e: list(e.absolute_path))
        if errors:
            return "BAD_REQUEST_BODY", [
                f"{'/'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}" for e in errors
            ]
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
                "accountId": "123456789012",
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
            return Response(
                '{"message": "Internal server error"}', status=502, content_type="application/json"
            )
        response = Response(payload.get("body") or "", status=payload["statusCode"])
        for name, value in (payload.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, str(value))
        return response

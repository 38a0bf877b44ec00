"""API Gateway (REST): execution and access logging, tracing, WAF, cache encryption, request validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lib.graph import RecordedResource, StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, arn_of, by_arn, by_id
from lib.policy.controls.cloudwatch import LOG_GROUP
from lib.policy.controls.wafv2 import WEB_ACL, WEB_ACL_ASSOCIATION

API_ACCOUNT = "aws:apigateway/account:Account"
API_METHOD = "aws:apigateway/method:Method"
API_METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
API_REQUEST_VALIDATOR = "aws:apigateway/requestValidator:RequestValidator"
API_REST_API = "aws:apigateway/restApi:RestApi"
API_STAGE = "aws:apigateway/stage:Stage"

_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method")

CONTROLS = ControlList()
control = CONTROLS.add


def _settings_for_stage(graph: StackGraph, stage: RecordedResource) -> list[RecordedResource]:
    return [
        ms
        for ms in graph.of_type(API_METHOD_SETTINGS)
        if ms.inputs.get("restApi") == stage.inputs.get("restApi")
        and ms.inputs.get("stageName") == stage.inputs.get("stageName")
    ]


@control("APIGateway.1", "REST API execution logging at ERROR or INFO, with metrics and the account role")
def api_execution_logging(graph: StackGraph) -> Iterator[Finding]:
    has_account_role = any(a.inputs.get("cloudwatchRoleArn") for a in graph.of_type(API_ACCOUNT))
    for stage in graph.of_type(API_STAGE):
        settings = _settings_for_stage(graph, stage)
        stage_wide = [ms for ms in settings if ms.inputs.get("methodPath") == "*/*"]
        if not stage_wide:
            yield stage, "no MethodSettings for methodPath '*/*': execution logging is off"
        for ms in settings:
            values = ms.inputs.get("settings") or {}
            level = values.get("loggingLevel")
            if ms in stage_wide and level not in {"ERROR", "INFO"}:
                yield ms, f"loggingLevel is {level!r}, must be ERROR or INFO"
            elif ms not in stage_wide and level is not None and level not in {"ERROR", "INFO"}:
                yield ms, f"{ms.inputs.get('methodPath')} overrides loggingLevel to {level!r}"
            if ms in stage_wide and values.get("metricsEnabled") is not True:
                yield ms, "metricsEnabled is not true"
        if not has_account_role:
            yield stage, "no apigateway.Account with a cloudwatchRoleArn: the stage cannot write logs"


@control("APIGateway.3", "REST API stages have AWS X-Ray tracing enabled")
def api_xray(graph: StackGraph) -> Iterator[Finding]:
    for stage in graph.of_type(API_STAGE):
        if stage.inputs.get("xrayTracingEnabled") is not True:
            yield stage, "xrayTracingEnabled is not true"


@control("APIGateway.4", "API stages are associated with a REGIONAL WAF web ACL")
def api_waf_association(graph: StackGraph) -> Iterator[Finding]:
    acls = by_arn(graph, WEB_ACL)
    for stage in graph.of_type(API_STAGE):
        associations = [
            a for a in graph.of_type(WEB_ACL_ASSOCIATION) if a.inputs.get("resourceArn") == arn_of(stage)
        ]
        if not associations:
            yield stage, "no WebAclAssociation names this stage's ARN"
        for association in associations:
            acl = acls.get(association.inputs.get("webAclArn", ""))
            if acl is None:
                yield association, "webAclArn is not a web ACL defined in this stack"
            elif acl.inputs.get("scope") != "REGIONAL":
                yield association, f"web ACL scope is {acl.inputs.get('scope')!r}, must be REGIONAL"


@control("APIGateway.5", "REST API cache data is encrypted at rest (when a cache is on)")
def api_cache_encryption(graph: StackGraph) -> Iterator[Finding]:
    for stage in graph.of_type(API_STAGE):
        if not stage.inputs.get("cacheClusterEnabled"):
            continue
        encrypted = [
            ms
            for ms in _settings_for_stage(graph, stage)
            if ms.inputs.get("methodPath") == "*/*"
            and (ms.inputs.get("settings") or {}).get("cacheDataEncrypted") is True
        ]
        if not encrypted:
            yield stage, "cache cluster enabled without cacheDataEncrypted on '*/*'"


@control("TAP-APIGW-ACCESS-LOGS", "REST API stages write access logs to a log group of this stack (F19)")
def api_access_logs(graph: StackGraph) -> Iterator[Finding]:
    # FSBP's access-logging control (APIGateway.9) covers only V2 stages; F19 asks it of REST stages.
    log_groups = by_arn(graph, LOG_GROUP)
    for stage in graph.of_type(API_STAGE):
        settings = stage.inputs.get("accessLogSettings") or {}
        destination = settings.get("destinationArn")
        if not destination:
            yield stage, "no accessLogSettings.destinationArn"
        elif destination not in log_groups:
            yield stage, f"access logs go to {destination}, not a log group of this stack"
        if not settings.get("format"):
            yield stage, "accessLogSettings.format is empty"


@control("TAP-APIGW-DATATRACE", "API Gateway data trace (full request/response logging) is off")
def api_data_trace(graph: StackGraph) -> Iterator[Finding]:
    # A full request trace would write card data to CloudWatch Logs (PCI DSS 3.4).
    for ms in graph.of_type(API_METHOD_SETTINGS):
        if (ms.inputs.get("settings") or {}).get("dataTraceEnabled") is True:
            yield ms, f"dataTraceEnabled is true for {ms.inputs.get('methodPath')}"


def _openapi_validation_findings(api: RecordedResource, document: dict[str, Any]) -> Iterator[Finding]:
    validators = document.get("x-amazon-apigateway-request-validators") or {}
    default = document.get("x-amazon-apigateway-request-validator")
    for path, item in (document.get("paths") or {}).items():
        for method in _HTTP_METHODS:
            operation = (item or {}).get(method)
            if not isinstance(operation, dict):
                continue
            where = f"{method.upper()} {path}"
            name = operation.get("x-amazon-apigateway-request-validator", default)
            validator = validators.get(name) if name else None
            if not name:
                yield api, f"{where} has no x-amazon-apigateway-request-validator"
            elif not isinstance(validator, dict):
                yield api, f"{where} names validator {name!r}, which is not defined"
            elif not (validator.get("validateRequestBody") and validator.get("validateRequestParameters")):
                yield api, f"{where}: validator {name!r} does not validate both body and parameters"
            body = operation.get("requestBody")
            if isinstance(body, dict) and not any(
                isinstance(media, dict) and media.get("schema")
                for media in (body.get("content") or {}).values()
            ):
                yield api, f"{where} accepts a body without a schema to validate it against"


@control("TAP-APIGW-VALIDATION", "Every API method validates its request body and parameters")
def api_request_validation(graph: StackGraph) -> Iterator[Finding]:
    validators = by_id(graph, API_REQUEST_VALIDATOR)
    for api in graph.of_type(API_REST_API):
        body = api.inputs.get("body")
        if body:
            document = doc.parse_document(body)
            if document is None:
                yield api, "body is not a JSON OpenAPI document; request validation cannot be verified"
            else:
                yield from _openapi_validation_findings(api, document)
    # APIs built from Method resources instead of an OpenAPI body.
    for method in graph.of_type(API_METHOD):
        validator = validators.get(method.inputs.get("requestValidatorId") or "")
        if validator is None:
            yield method, "no requestValidatorId naming a RequestValidator of this stack"
        elif not (
            validator.inputs.get("validateRequestBody") and validator.inputs.get("validateRequestParameters")
        ):
            yield method, "its RequestValidator does not validate both body and parameters"

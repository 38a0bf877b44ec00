"""The security baseline as code: one check per control, run against the evaluated resource graph.

IDs are AWS Security Hub FSBP control IDs where FSBP has the control, and `TAP-…` for the parts of
the baseline in REQUIREMENTS.md that FSBP does not cover. Where this stack needs more than FSBP's
default (e.g. no internet ingress on any port, CMK rather than any KMS key) the title says so.

Each check reads the resolved inputs recorded by `lib.graph` (camelCase, IDs and ARNs resolved) and
never trusts a resource's name to say what it is: a queue is encrypted because its input says so.
A check that cannot find what it needs (a subnet it cannot see, a policy that is not JSON) reports a
violation, because an unverifiable resource is not a compliant one.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lib.graph import RecordedResource, StackGraph
from lib.policy import documents as doc
from lib.policy.security_groups import DEFAULT_SECURITY_GROUP, SgRule, security_group_rules

# --- resource types -----------------------------------------------------------------------------
API_ACCOUNT = "aws:apigateway/account:Account"
API_METHOD = "aws:apigateway/method:Method"
API_METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
API_REQUEST_VALIDATOR = "aws:apigateway/requestValidator:RequestValidator"
API_REST_API = "aws:apigateway/restApi:RestApi"
API_STAGE = "aws:apigateway/stage:Stage"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLES = ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable")
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
FUNCTION = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
SECRETS_MANAGER_SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token, not a secret
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"

# Anything that gives the VPC a path to or from the internet (C1: endpoints only).
INTERNET_PATH_TYPES = (
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
)

# Lambda.2: runtimes AWS supports (not deprecated) that this project accepts; REQUIREMENTS.md asks
# for Python 3.12 or newer. Revisit when AWS publishes a deprecation date for one of these.
SUPPORTED_RUNTIMES = frozenset({"python3.12", "python3.13", "python3.14"})

# EC2.19's high-risk ports (Security Hub's list).
HIGH_RISK_PORTS = (20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432)
HIGH_RISK_PORTS += (5500, 5601, 8080, 8088, 8888, 9200, 9300)

# Actions that have no resource-level permissions (or that Lambda's VPC attachment needs on "*",
# as AWSLambdaVPCAccessExecutionRole grants them), so `"Resource": "*"` is the only form.
NO_RESOURCE_LEVEL_ACTIONS = frozenset(
    action.lower()
    for action in (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    )
)

REQUIRED_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
HTTPS = 443


# --- model --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    control_id: str
    resource_type: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.control_id}] {self.resource_type} {self.resource_name!r}: {self.message}"


Check = Callable[[StackGraph], list[Violation]]
Finding = tuple[RecordedResource, str]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    check: Check


CONTROLS: list[Control] = []


def control(control_id: str, title: str) -> Callable[[Callable[[StackGraph], Iterable[Finding]]], Check]:
    """Register a check; the check yields (resource, why) and gets back Violations with its ID."""

    def register(find: Callable[[StackGraph], Iterable[Finding]]) -> Check:
        if any(c.id == control_id for c in CONTROLS):
            raise ValueError(f"control {control_id} is registered twice")

        @functools.wraps(find)
        def check(graph: StackGraph) -> list[Violation]:
            return [Violation(control_id, r.type, r.name, why) for r, why in find(graph)]

        CONTROLS.append(Control(control_id, title, check))
        return check

    return register


def controls_by_id() -> dict[str, Control]:
    return {c.id: c for c in CONTROLS}


# --- shared lookups -----------------------------------------------------------------------------
def _arn(resource: RecordedResource) -> str | None:
    return resource.state.get("arn")


def _by_arn(graph: StackGraph, type_token: str) -> dict[str, RecordedResource]:
    return {arn: r for r in graph.of_type(type_token) if (arn := _arn(r))}


def _by_id(graph: StackGraph, type_token: str) -> dict[str, RecordedResource]:
    return {r.id: r for r in graph.of_type(type_token) if r.id}


def _settings_for_stage(graph: StackGraph, stage: RecordedResource) -> list[RecordedResource]:
    return [
        ms
        for ms in graph.of_type(API_METHOD_SETTINGS)
        if ms.inputs.get("restApi") == stage.inputs.get("restApi")
        and ms.inputs.get("stageName") == stage.inputs.get("stageName")
    ]


def _stack_key_references(graph: StackGraph) -> set[str]:
    """Every way an input can name one of the stack's own CMKs: id, key id, ARN, alias name/ARN."""
    refs: set[str] = set()
    for key in graph.of_type(KMS_KEY):
        refs |= {v for v in (key.id, key.state.get("keyId"), _arn(key)) if v}
    for alias in graph.of_type(KMS_ALIAS):
        if alias.inputs.get("targetKeyId") in refs:
            refs |= {v for v in (alias.inputs.get("name"), _arn(alias)) if v}
    return refs


def _policy_statements(resource: RecordedResource, key: str = "policy") -> list[doc.Statement] | None:
    document = doc.parse_document(resource.inputs.get(key))
    return None if document is None else doc.statements(document)


# --- API Gateway --------------------------------------------------------------------------------
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
    acls = _by_arn(graph, WEB_ACL)
    for stage in graph.of_type(API_STAGE):
        associations = [
            a for a in graph.of_type(WEB_ACL_ASSOCIATION) if a.inputs.get("resourceArn") == _arn(stage)
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
    log_groups = _by_arn(graph, LOG_GROUP)
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


_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method")


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
    validators = _by_id(graph, API_REQUEST_VALIDATOR)
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


# --- Lambda -------------------------------------------------------------------------------------
@control("Lambda.1", "Lambda functions are not publicly invocable")
def lambda_not_public(graph: StackGraph) -> Iterator[Finding]:
    for permission in graph.of_type(PERMISSION):
        principal = str(permission.inputs.get("principal") or "")
        if "*" in principal:
            yield permission, f"principal {principal!r} lets anyone invoke the function"
        if permission.inputs.get("functionUrlAuthType") == "NONE":
            yield permission, "grants unauthenticated function-URL access"
    for url in graph.of_type(FUNCTION_URL):
        if url.inputs.get("authorizationType") == "NONE":
            yield url, "function URL with authorizationType NONE is public"


@control("Lambda.2", "Lambda functions use a supported runtime (Python 3.12 or newer)")
def lambda_supported_runtime(graph: StackGraph) -> Iterator[Finding]:
    for function in graph.of_type(FUNCTION):
        if function.inputs.get("packageType") == "Image":
            continue  # container images carry their own runtime
        runtime = function.inputs.get("runtime")
        if runtime not in SUPPORTED_RUNTIMES:
            yield function, f"runtime {runtime!r} is not one of {sorted(SUPPORTED_RUNTIMES)}"


@control("Lambda.3", "Lambda functions run in a VPC")
def lambda_in_vpc(graph: StackGraph) -> Iterator[Finding]:
    for function in graph.of_type(FUNCTION):
        vpc = function.inputs.get("vpcConfig") or {}
        if not vpc.get("subnetIds") or not vpc.get("securityGroupIds"):
            yield function, "vpcConfig has no subnetIds or no securityGroupIds"


@control("Lambda.5", "VPC Lambda functions span at least two availability zones")
def lambda_multi_az(graph: StackGraph) -> Iterator[Finding]:
    subnets = _by_id(graph, SUBNET)
    for function in graph.of_type(FUNCTION):
        subnet_ids = doc.as_list((function.inputs.get("vpcConfig") or {}).get("subnetIds"))
        if not subnet_ids:
            continue  # Lambda.3 reports functions outside a VPC
        unknown = [s for s in subnet_ids if s not in subnets]
        if unknown:
            yield function, f"subnets {unknown} are not in this stack; their zones cannot be verified"
            continue
        zones = {subnets[s].inputs.get("availabilityZone") for s in subnet_ids}
        if len(zones) < 2:
            yield function, f"subnets span {len(zones)} availability zone(s): {sorted(map(str, zones))}"


@control("TAP-TRACING", "Every function has X-Ray tracing Active (C5; Security Hub Lambda.7)")
def lambda_tracing(graph: StackGraph) -> Iterator[Finding]:
    for function in graph.of_type(FUNCTION):
        mode = (function.inputs.get("tracingConfig") or {}).get("mode")
        if mode != "Active":
            yield function, f"tracingConfig.mode is {mode!r}, must be 'Active'"


@control("TAP-LAMBDA-PERMISSION", "Every invoke permission names a service principal, sourceArn and account")
def lambda_permission_scoped(graph: StackGraph) -> Iterator[Finding]:
    for permission in graph.of_type(PERMISSION):
        inputs = permission.inputs
        principal = str(inputs.get("principal") or "")
        if not principal.endswith(".amazonaws.com") or "*" in principal:
            yield permission, f"principal {principal!r} is not an AWS service principal"
        source_arn = str(inputs.get("sourceArn") or "")
        if not source_arn.startswith("arn:"):
            yield permission, "no sourceArn: any resource of that service, in any account, could invoke"
        account = str(inputs.get("sourceAccount") or "")
        if not (account.isdigit() and len(account) == 12):
            yield permission, f"sourceAccount {account!r} is not an account ID"


@control("TAP-IAM-ROLE-PER-FUNCTION", "Each function has its own role, assumable only by Lambda")
def role_per_function(graph: StackGraph) -> Iterator[Finding]:
    roles = _by_arn(graph, ROLE)
    users: defaultdict[str, list[RecordedResource]] = defaultdict(list)
    for function in graph.of_type(FUNCTION):
        users[str(function.inputs.get("role"))].append(function)
    for role_arn, functions in users.items():
        for function in functions:
            if len(functions) > 1:
                others = sorted(f.name for f in functions if f is not function)
                yield function, f"shares role {role_arn} with {others}"
            role = roles.get(role_arn)
            if role is None:
                yield function, f"role {role_arn} is not defined in this stack"
                continue
            trust = _policy_statements(role, "assumeRolePolicy")
            trusted = {p for s in trust or [] if doc.is_allow(s) for p in doc.principals(s)}
            if trusted != {"lambda.amazonaws.com"}:
                yield function, f"its role trusts {sorted(trusted)}, not only lambda.amazonaws.com"


# --- IAM ----------------------------------------------------------------------------------------
def _unreadable(policy: doc.PolicyDocument) -> Finding:
    return policy.resource, f"{policy.location} is not a readable policy document"


@control("IAM.1", "No IAM policy allows all actions ('*', or NotAction in an Allow)")
def iam_no_full_admin(graph: StackGraph) -> Iterator[Finding]:
    # Stricter than FSBP (which needs Resource "*" too): C2 allows no "*" action at all.
    for policy in doc.identity_policies(graph):
        if policy.document is None:
            yield _unreadable(policy)
        for statement in doc.statements(policy.document):
            if not doc.is_allow(statement):
                continue
            if "NotAction" in statement:
                yield policy.resource, f"{policy.location} allows everything except {statement['NotAction']}"
            if any(a in {"*", "*:*"} for a in doc.actions(statement)):
                yield policy.resource, f"{policy.location} allows Action '*'"


@control("IAM.21", "No IAM policy allows a service-wide wildcard such as 'sqs:*'")
def iam_no_service_wildcards(graph: StackGraph) -> Iterator[Finding]:
    # FSBP checks customer-managed policies only; inline role policies carry the same risk here.
    for policy in doc.identity_policies(graph):
        for statement in doc.statements(policy.document):
            if not doc.is_allow(statement):
                continue
            wildcards = [a for a in doc.actions(statement) if a.split(":", 1)[-1] == "*" and ":" in a]
            if wildcards:
                yield policy.resource, f"{policy.location} allows {wildcards}"


@control("TAP-IAM-RESOURCES", "No '*' resource except for actions without resource-level permissions")
def iam_named_resources(graph: StackGraph) -> Iterator[Finding]:
    for policy in doc.identity_policies(graph):
        for statement in doc.statements(policy.document):
            if not doc.is_allow(statement):
                continue
            sid = statement.get("Sid", "(no Sid)")
            if "NotResource" in statement:
                yield policy.resource, f"{policy.location} statement {sid} uses NotResource in an Allow"
                continue
            if "*" not in doc.resources(statement):
                continue
            broad = [a for a in doc.actions(statement) if a.lower() not in NO_RESOURCE_LEVEL_ACTIONS]
            if broad or "NotAction" in statement:
                yield policy.resource, f"{policy.location} statement {sid} allows {broad} on Resource '*'"


def _decrypts_all_keys(statement: doc.Statement) -> bool:
    if not doc.is_allow(statement):
        return False
    if not any(doc.grants_action(statement, a) for a in ("kms:Decrypt", "kms:ReEncryptFrom")):
        return False
    if "NotResource" in statement:
        return True
    return any(
        r == "*" or (":kms:" in r and r.rsplit(":", 1)[-1] in {"*", "key/*"})
        for r in doc.resources(statement)
    )


@control("KMS.1", "Customer-managed IAM policies do not allow kms:Decrypt on all keys")
def kms_decrypt_managed(graph: StackGraph) -> Iterator[Finding]:
    for policy in doc.identity_policies(graph):
        if policy.managed and any(_decrypts_all_keys(s) for s in doc.statements(policy.document)):
            yield policy.resource, f"{policy.location} allows kms:Decrypt/ReEncryptFrom on all keys"


@control("KMS.2", "Inline IAM policies do not allow kms:Decrypt on all keys")
def kms_decrypt_inline(graph: StackGraph) -> Iterator[Finding]:
    for policy in doc.identity_policies(graph):
        if not policy.managed and any(_decrypts_all_keys(s) for s in doc.statements(policy.document)):
            yield policy.resource, f"{policy.location} allows kms:Decrypt/ReEncryptFrom on all keys"


# --- KMS ----------------------------------------------------------------------------------------
@control("KMS.4", "KMS key rotation is enabled")
def kms_rotation(graph: StackGraph) -> Iterator[Finding]:
    for key in graph.of_type(KMS_KEY):
        spec = key.inputs.get("customerMasterKeySpec") or key.inputs.get("keySpec") or "SYMMETRIC_DEFAULT"
        if spec == "SYMMETRIC_DEFAULT" and key.inputs.get("enableKeyRotation") is not True:
            yield key, "enableKeyRotation is not true"


@control("TAP-KMS-POLICY", "Every KMS key has an explicit key policy with no wildcard principal")
def kms_key_policy(graph: StackGraph) -> Iterator[Finding]:
    for key in graph.of_type(KMS_KEY):
        statements = _policy_statements(key)
        if statements is None:
            yield key, "no explicit key policy (the default grants the whole account kms:*)"
            continue
        for statement in statements:
            if doc.is_allow(statement) and doc.has_wildcard_principal(statement):
                yield key, f"statement {statement.get('Sid', '(no Sid)')} allows a wildcard principal"


# --- DynamoDB -----------------------------------------------------------------------------------
@control("DynamoDB.1", "DynamoDB tables scale with demand: on-demand billing (C4)")
def dynamodb_on_demand(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if table.inputs.get("billingMode") != "PAY_PER_REQUEST":
            yield table, f"billingMode is {table.inputs.get('billingMode')!r}, must be PAY_PER_REQUEST"


@control("DynamoDB.2", "DynamoDB tables have point-in-time recovery enabled")
def dynamodb_pitr(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if (table.inputs.get("pointInTimeRecovery") or {}).get("enabled") is not True:
            yield table, "pointInTimeRecovery.enabled is not true"


@control("DynamoDB.6", "DynamoDB tables have deletion protection enabled")
def dynamodb_deletion_protection(graph: StackGraph) -> Iterator[Finding]:
    for table in graph.of_type(TABLE):
        if table.inputs.get("deletionProtectionEnabled") is not True:
            yield table, "deletionProtectionEnabled is not true"


# --- SQS and SNS --------------------------------------------------------------------------------
def _queue_policies(graph: StackGraph, queue: RecordedResource) -> list[RecordedResource]:
    url = queue.state.get("url") or queue.id
    return [p for p in graph.of_type(QUEUE_POLICY) if p.inputs.get("queueUrl") == url]


def _topic_policies(graph: StackGraph, topic: RecordedResource) -> list[RecordedResource]:
    return [p for p in graph.of_type(TOPIC_POLICY) if p.inputs.get("arn") == _arn(topic)]


def _resource_policy_statements(
    owner: RecordedResource, attached: list[RecordedResource]
) -> Iterator[tuple[RecordedResource, list[doc.Statement] | None]]:
    """The owner's inline `policy` (if any) and each attached policy resource, with statements."""
    if owner.inputs.get("policy"):
        yield owner, _policy_statements(owner)
    for policy in attached:
        yield policy, _policy_statements(policy)


def _unencrypted(graph: StackGraph, type_token: str) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        if not resource.inputs.get("kmsMasterKeyId"):
            yield resource, "no kmsMasterKeyId"


def _public_statements(
    graph: StackGraph, type_token: str, policies: Callable[[StackGraph, RecordedResource], Any]
) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        for source, statements in _resource_policy_statements(resource, policies(graph, resource)):
            for statement in statements or []:
                if doc.is_public_allow(statement):
                    yield source, f"statement {statement.get('Sid', '(no Sid)')} allows any principal"


def _without_tls_deny(
    graph: StackGraph, type_token: str, policies: Callable[[StackGraph, RecordedResource], Any], action: str
) -> Iterator[Finding]:
    for resource in graph.of_type(type_token):
        denied = any(
            doc.denies_insecure_transport(s, action, _arn(resource))
            for _, statements in _resource_policy_statements(resource, policies(graph, resource))
            for s in statements or []
        )
        if not denied:
            yield resource, f"no policy denies {action} on this resource when aws:SecureTransport is false"


@control("SQS.1", "SQS queues are encrypted at rest with a KMS key")
def sqs_encrypted(graph: StackGraph) -> Iterator[Finding]:
    # Stricter than FSBP (which accepts SSE-SQS): C3 asks for KMS, TAP-ENCRYPTION for our CMK.
    return _unencrypted(graph, QUEUE)


@control("SQS.3", "SQS queue policies do not allow public access")
def sqs_not_public(graph: StackGraph) -> Iterator[Finding]:
    return _public_statements(graph, QUEUE, _queue_policies)


@control("TAP-SQS-TLS", "Every queue policy denies requests without TLS (aws:SecureTransport)")
def sqs_tls_only(graph: StackGraph) -> Iterator[Finding]:
    return _without_tls_deny(graph, QUEUE, _queue_policies, "sqs:*")


@control("SNS.1", "SNS topics are encrypted at rest with a KMS key")
def sns_encrypted(graph: StackGraph) -> Iterator[Finding]:
    return _unencrypted(graph, TOPIC)


@control("SNS.4", "SNS topic policies do not allow public access")
def sns_not_public(graph: StackGraph) -> Iterator[Finding]:
    return _public_statements(graph, TOPIC, _topic_policies)


@control("TAP-SNS-TLS", "Every topic policy denies publishing without TLS (aws:SecureTransport)")
def sns_tls_only(graph: StackGraph) -> Iterator[Finding]:
    # sns:Publish is the action AWS's own encryption-in-transit example denies; the stack only publishes.
    return _without_tls_deny(graph, TOPIC, _topic_policies, "sns:Publish")


# --- encryption with the stack's CMK ------------------------------------------------------------
_CMK_INPUTS: tuple[tuple[str, Callable[[dict[str, Any]], Any], str], ...] = (
    (
        TABLE,
        lambda i: (i.get("serverSideEncryption") or {}).get("kmsKeyArn"),
        "serverSideEncryption.kmsKeyArn",
    ),
    (QUEUE, lambda i: i.get("kmsMasterKeyId"), "kmsMasterKeyId"),
    (TOPIC, lambda i: i.get("kmsMasterKeyId"), "kmsMasterKeyId"),
    (LOG_GROUP, lambda i: i.get("kmsKeyId"), "kmsKeyId"),
    (SECRETS_MANAGER_SECRET, lambda i: i.get("kmsKeyId"), "kmsKeyId"),
    (FUNCTION, lambda i: i.get("kmsKeyArn"), "kmsKeyArn"),
)


@control("TAP-ENCRYPTION", "Tables, queues, topics, log groups, secrets and function env use the stack's CMK")
def encrypted_with_stack_key(graph: StackGraph) -> Iterator[Finding]:
    # AWS-owned and AWS-managed keys (alias/aws/...) cannot be scoped or audited per key policy (C3).
    keys = _stack_key_references(graph)
    for type_token, read, field in _CMK_INPUTS:
        for resource in graph.of_type(type_token):
            if type_token == FUNCTION and not (resource.inputs.get("environment") or {}).get("variables"):
                continue  # no environment variables to encrypt
            if (
                type_token == TABLE
                and (resource.inputs.get("serverSideEncryption") or {}).get("enabled") is not True
            ):
                yield resource, "serverSideEncryption.enabled is not true (AWS-owned key)"
                continue
            value = read(resource.inputs)
            if value not in keys:
                yield resource, f"{field} is {value!r}, not a customer-managed key of this stack"


# --- EC2 / VPC ----------------------------------------------------------------------------------
@control("EC2.2", "The VPC default security group allows no traffic")
def default_security_group_closed(graph: StackGraph) -> Iterator[Finding]:
    defaults = graph.of_type(DEFAULT_SECURITY_GROUP)
    default_ids = {d.id for d in defaults}
    for vpc in graph.of_type(VPC):
        # Unmanaged, the default group keeps AWS's allow-all egress and allow-from-itself ingress.
        if not any(d.inputs.get("vpcId") == vpc.id for d in defaults):
            yield vpc, "no DefaultSecurityGroup resource strips the default group's rules"
    for rule in security_group_rules(graph, include_default=True):
        if rule.security_group_id in default_ids:
            yield rule.resource, f"{rule.label()} on the default security group"


@control("EC2.6", "VPC flow logging is enabled")
def vpc_flow_logs(graph: StackGraph) -> Iterator[Finding]:
    flow_logs = graph.of_type(FLOW_LOG)
    for vpc in graph.of_type(VPC):
        if not any(f.inputs.get("vpcId") == vpc.id and f.inputs.get("trafficType") for f in flow_logs):
            yield vpc, "no FlowLog for this VPC"


@control("EC2.15", "Subnets do not assign public IP addresses")
def subnets_no_public_ip(graph: StackGraph) -> Iterator[Finding]:
    for subnet in graph.of_type(SUBNET):
        if subnet.inputs.get("mapPublicIpOnLaunch") is True:
            yield subnet, "mapPublicIpOnLaunch is true"


@control("EC2.18", "No security group allows unrestricted ingress (authorized ports: none)")
def no_unrestricted_ingress(graph: StackGraph) -> Iterator[Finding]:
    # FSBP's default authorizes 80 and 443; nothing here takes internet traffic into the VPC (the API
    # is served by API Gateway), so the parameter is set to no ports at all.
    for rule in security_group_rules(graph):
        if rule.direction == "ingress" and rule.unrestricted:
            yield rule.resource, f"{rule.label()} admits {sorted(rule.cidrs)}"


@control("EC2.19", "No security group allows unrestricted access to high-risk ports")
def no_high_risk_ports(graph: StackGraph) -> Iterator[Finding]:
    for rule in security_group_rules(graph):
        if rule.direction == "ingress" and rule.unrestricted:
            exposed = [p for p in HIGH_RISK_PORTS if rule.covers_port(p)]
            if exposed:
                yield rule.resource, f"{rule.label()} opens high-risk ports {exposed} to the internet"


def _allowed_egress_targets(graph: StackGraph) -> tuple[set[str], set[str]]:
    """Security groups of interface endpoints, and prefix lists of DynamoDB gateway endpoints."""
    endpoint_groups: set[str] = set()
    dynamodb_prefix_lists: set[str] = set()
    for endpoint in graph.of_type(VPC_ENDPOINT):
        inputs = endpoint.inputs
        if inputs.get("vpcEndpointType") == "Interface":
            endpoint_groups.update(doc.as_list(inputs.get("securityGroupIds")))
        elif str(inputs.get("serviceName", "")).endswith(".dynamodb") and endpoint.state.get("prefixListId"):
            dynamodb_prefix_lists.add(endpoint.state["prefixListId"])
    return endpoint_groups, dynamodb_prefix_lists


def _egress_problem(rule: SgRule, endpoint_groups: set[str], prefix_lists: set[str]) -> str | None:
    if rule.protocol != "tcp" or rule.from_port != HTTPS or rule.to_port != HTTPS:
        return "is not tcp 443 only"
    if rule.cidrs:
        return f"goes to CIDR ranges {sorted(rule.cidrs)}"
    strays = [g for g in rule.peer_security_groups if g not in endpoint_groups]
    strays += [p for p in rule.prefix_lists if p not in prefix_lists]
    if strays or not (rule.peer_security_groups or rule.prefix_lists):
        return f"goes to {strays or 'nowhere named'}, not the endpoint SG or DynamoDB prefix list"
    return None


@control("TAP-SG-EGRESS", "SG rules described; egress only 443 to the endpoint SG or DynamoDB prefix list")
def egress_to_endpoints_only(graph: StackGraph) -> Iterator[Finding]:
    endpoint_groups, prefix_lists = _allowed_egress_targets(graph)
    for rule in security_group_rules(graph):
        if not rule.description.strip():
            yield rule.resource, f"{rule.label()} has no description"
        if rule.direction == "egress":
            problem = _egress_problem(rule, endpoint_groups, prefix_lists)
            if problem:
                yield rule.resource, f"{rule.label()} {problem}"


@control("TAP-NETWORK", "No internet gateway, NAT, Elastic IP or default route out of the VPC (C1)")
def no_internet_path(graph: StackGraph) -> Iterator[Finding]:
    for type_token in INTERNET_PATH_TYPES:
        for resource in graph.of_type(type_token):
            yield resource, "gives the VPC a path to or from the internet"
    for route in graph.of_type(ROUTE):
        inputs = route.inputs
        if (
            inputs.get("destinationCidrBlock") == "0.0.0.0/0"
            or inputs.get("destinationIpv6CidrBlock") == "::/0"
        ):
            yield route, "default route out of the VPC"
        elif inputs.get("gatewayId") or inputs.get("natGatewayId") or inputs.get("egressOnlyGatewayId"):
            yield route, "route through an internet or NAT gateway"
    for type_token in ROUTE_TABLES:
        for table in graph.of_type(type_token):
            for index, entry in enumerate(doc.as_list(table.inputs.get("routes"))):
                if isinstance(entry, dict) and (
                    entry.get("cidrBlock") == "0.0.0.0/0" or entry.get("ipv6CidrBlock") == "::/0"
                ):
                    yield table, f"routes[{index}] is a default route out of the VPC"


@control("EC2.10", "Each VPC has an interface endpoint for the EC2 API")
def ec2_endpoint(graph: StackGraph) -> Iterator[Finding]:
    for vpc in graph.of_type(VPC):
        endpoints = [
            e
            for e in graph.of_type(VPC_ENDPOINT)
            if e.inputs.get("vpcId") == vpc.id and str(e.inputs.get("serviceName", "")).endswith(".ec2")
        ]
        if not endpoints:
            yield vpc, "no com.amazonaws.<region>.ec2 interface endpoint"


# --- Secrets Manager ----------------------------------------------------------------------------
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"  # noqa: S105 - a type token


@control("SecretsManager.1", "Secrets Manager secrets have automatic rotation enabled")
def secret_rotation(graph: StackGraph) -> Iterator[Finding]:
    rotated = {r.inputs.get("secretId") for r in graph.of_type(SECRET_ROTATION)}
    for secret in graph.of_type(SECRETS_MANAGER_SECRET):
        if not ({secret.id, _arn(secret)} & rotated):
            yield secret, "no automatic rotation configured"


# --- WAF ----------------------------------------------------------------------------------------
@control("WAF.10", "WAF web ACLs have at least one rule")
def waf_has_rules(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        if not doc.as_list(acl.inputs.get("rules")):
            yield acl, "web ACL has no rules"


@control("WAF.11", "WAF web ACL logging is on, to a log group named aws-waf-logs-*")
def waf_logging(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        configs = [c for c in graph.of_type(WEB_ACL_LOGGING) if c.inputs.get("resourceArn") == _arn(acl)]
        if not configs:
            yield acl, "no WebAclLoggingConfiguration for this web ACL"
        for config in configs:
            destinations = [str(d) for d in doc.as_list(config.inputs.get("logDestinationConfigs"))]
            misnamed = [d for d in destinations if f":log-group:{WAF_LOG_GROUP_PREFIX}" not in d]
            if not destinations or misnamed:
                yield config, f"log destinations {misnamed or 'missing'}: need a log group aws-waf-logs-*"


@control("WAF.12", "WAF rules and web ACLs have CloudWatch metrics enabled")
def waf_metrics(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        if (acl.inputs.get("visibilityConfig") or {}).get("cloudwatchMetricsEnabled") is not True:
            yield acl, "the web ACL's visibilityConfig.cloudwatchMetricsEnabled is not true"
        for rule in doc.as_list(acl.inputs.get("rules")):
            if (rule.get("visibilityConfig") or {}).get("cloudwatchMetricsEnabled") is not True:
                yield acl, f"rule {rule.get('name')!r} has no CloudWatch metrics"


def _counting(rule: dict[str, Any]) -> bool:
    """A rule in count mode (or a managed group whose rules are overridden to count) blocks nothing."""
    if "count" in (rule.get("action") or {}) or "count" in (rule.get("overrideAction") or {}):
        return True
    group = (rule.get("statement") or {}).get("managedRuleGroupStatement") or {}
    return any("count" in (o.get("actionToUse") or {}) for o in doc.as_list(group.get("ruleActionOverrides")))


@control("TAP-WAF-RULES", "WAF has the three AWS managed groups and a rate rule, all blocking")
def waf_required_rules(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        rules = [r for r in doc.as_list(acl.inputs.get("rules")) if isinstance(r, dict)]
        for rule in rules:
            if _counting(rule):
                yield acl, f"rule {rule.get('name')!r} counts instead of blocking"
        managed = {
            group.get("name")
            for r in rules
            if (group := (r.get("statement") or {}).get("managedRuleGroupStatement"))
            and group.get("vendorName") == "AWS"
        }
        missing = [g for g in REQUIRED_MANAGED_RULE_GROUPS if g not in managed]
        if missing:
            yield acl, f"missing AWS managed rule groups {missing}"
        rate_rules = [r for r in rules if (r.get("statement") or {}).get("rateBasedStatement")]
        if not any("block" in (r.get("action") or {}) for r in rate_rules):
            yield acl, "no rate-based rule with a block action"


# --- CloudWatch ---------------------------------------------------------------------------------
@control("CloudWatch.15", "Every alarm notifies an SNS topic of this stack")
def alarms_have_actions(graph: StackGraph) -> Iterator[Finding]:
    topics = _by_arn(graph, TOPIC)
    for alarm in graph.of_type(ALARM):
        actions = doc.as_list(alarm.inputs.get("alarmActions"))
        if alarm.inputs.get("actionsEnabled") is False:
            yield alarm, "actionsEnabled is false"
        if not actions:
            yield alarm, "no alarmActions"
        strays = [a for a in actions if a not in topics]
        if strays:
            yield alarm, f"alarmActions {strays} are not topics of this stack"

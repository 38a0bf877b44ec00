"""Evaluate the Pulumi program without a cloud and return its resource graph.

The program runs under `pulumi.runtime.set_mocks` with a recording mock engine: every resource's
resolved inputs are kept, and every resource and data-source call is answered with what AWS would
answer (ARNs, queue URLs, invoke URLs, zone names) built from the region and account. Unit and
policy tests inspect the graph; anything else that needs the stack's definition (the local
pipeline) can evaluate it the same way with its own `Answers`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import pulumi

from lib import quotas

# The one account id every mocked or local answer uses (lib/graph, tap_local, bench): moto's fixed
# account, so the ARNs the local pipeline builds match what its emulator returns.
DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass
class RecordedResource:
    """One resource as the engine saw it: type token, logical name, resolved inputs and mock state,
    and the registration options the engine acts on when it creates, updates or deletes it."""

    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    id: str = ""
    urn: str = ""
    # URNs of what the engine creates first: `depends_on` and the resources its inputs come from.
    dependencies: tuple[str, ...] = ()
    retain_on_delete: bool = False
    custom_timeouts: dict[str, str] = field(default_factory=dict)


@dataclass
class StackGraph:
    resources: list[RecordedResource] = field(default_factory=list)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # (token, provider reference "<urn>::<id>") of each invoke, in the order of `invokes`.
    invoke_providers: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            raise LookupError(f"expected one {type_token} named {name!r}, found {len(matches)}")
        return matches[0]

    def waits_for(self, resource: RecordedResource, other: RecordedResource) -> bool:
        """Whether the engine finishes `other` before it starts `resource`."""
        return bool(other.urn) and other.urn in resource.dependencies

    def custom_resources(self) -> Iterator[RecordedResource]:
        """Resources a provider creates (not components, not the provider itself)."""
        return (r for r in self.resources if not r.type.startswith(("pulumi:", "tap:")))


_EC2_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
}


def _short_id(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class _NewResource:
    physical: str  # the name it was given, or its prefix plus a unique id, else a Pulumi-style auto-name
    short: str  # a stable short id derived from its type and logical name
    inputs: dict[str, Any]


_State = tuple[str, dict[str, Any]]


class InvokeRefused(Exception):
    """Raised by an `AwsLikeAnswers.call` to answer a data source the way the engine reports a
    provider error (AccessDenied, say): the program sees a failed invoke it may handle, instead of
    a crash of the mock engine."""


class AwsLikeAnswers:
    """What AWS would answer for each resource and data source, derived from region and account."""

    def __init__(
        self,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        partition: str = "aws",
        lambda_concurrency_quota: float = quotas.DEFAULT_CONCURRENT_EXECUTIONS,
    ):
        self.region = region
        self.account_id = account_id
        self.partition = partition
        # The applied value of Lambda's "Concurrent executions" quota in this account and region.
        self.lambda_concurrency_quota = lambda_concurrency_quota

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account_id}:{resource}"

    def resource_state(
        self, type_token: str, name: str, inputs: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The id and the output state AWS would give a new resource of ``type_token``."""
        if inputs.get("name"):
            physical = inputs["name"]
        elif inputs.get("namePrefix"):  # the provider appends a 26-character unique id
            physical = inputs["namePrefix"] + str(int(_short_id(type_token, name), 16)).zfill(26)[:26]
        else:
            physical = f"{name}-{_short_id(type_token, name, length=7)}"
        resource = _NewResource(
            physical=physical,
            short=_short_id(type_token, name),
            inputs=inputs,
        )
        builder = _STATE_BUILDERS.get(type_token)
        if builder is not None:
            resource_id, state = builder(self, resource)
        else:
            module = type_token.split(":")[1].split("/")[0]
            resource_id = f"{_EC2_ID_PREFIXES.get(type_token, module)}-{resource.short}"
            state = {"arn": self.arn(module, f"{module}/{resource_id}")}
        return resource_id, {**inputs, **{k: v for k, v in state.items() if v is not None}}

    # One builder per resource type whose id or outputs the program reads: (id, output state).

    def _queue(self, r: _NewResource) -> _State:
        url = f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{r.physical}"
        return url, {"arn": self.arn("sqs", r.physical), "url": url, "name": r.physical}

    def _topic(self, r: _NewResource) -> _State:
        return self.arn("sns", r.physical), {"arn": self.arn("sns", r.physical), "name": r.physical}

    def _table(self, r: _NewResource) -> _State:
        return r.physical, {"arn": self.arn("dynamodb", f"table/{r.physical}"), "name": r.physical}

    def _invoke_arn(self, function_arn: str) -> str:
        """What API Gateway's integration URI names to invoke ``function_arn`` (qualified or not)."""
        path = f"path/2015-03-31/functions/{function_arn}/invocations"
        return f"arn:{self.partition}:apigateway:{self.region}:lambda:{path}"

    def _function(self, r: _NewResource) -> _State:
        arn = self.arn("lambda", f"function:{r.physical}")
        # With publish, CreateFunction publishes version 1; without, only $LATEST exists.
        version = "1" if r.inputs.get("publish") else "$LATEST"
        qualified = f"{arn}:{version}"
        return r.physical, {
            "arn": arn,
            "invokeArn": self._invoke_arn(arn),
            "name": r.physical,
            "version": version,
            "qualifiedArn": qualified,
            "qualifiedInvokeArn": self._invoke_arn(qualified),
        }

    def _alias(self, r: _NewResource) -> _State:
        """An alias ARN is its function's ARN qualified with the alias name; ``functionName`` may be
        the function's name or its (unqualified) ARN, as CreateAlias accepts both."""
        function = str(r.inputs.get("functionName") or "")
        function_arn = function if function.startswith("arn:") else self.arn("lambda", f"function:{function}")
        arn = f"{function_arn}:{r.inputs.get('name')}"
        return arn, {"arn": arn, "invokeArn": self._invoke_arn(arn)}

    def _layer_version(self, r: _NewResource) -> _State:
        layer = self.arn("lambda", f"layer:{r.inputs.get('layerName')}")
        return f"{layer}:1", {"arn": f"{layer}:1", "layerArn": layer, "version": "1"}

    def _rest_api(self, r: _NewResource) -> _State:
        state = {"executionArn": self.arn("execute-api", r.short), "rootResourceId": _short_id(r.short)}
        return r.short, {**state, "name": r.physical}

    def _stage(self, r: _NewResource) -> _State:
        api, stage = r.inputs.get("restApi"), r.inputs.get("stageName")
        return f"ags-{api}-{stage}", {
            "arn": f"arn:{self.partition}:apigateway:{self.region}::/restapis/{api}/stages/{stage}",
            "invokeUrl": f"https://{api}.execute-api.{self.region}.amazonaws.com/{stage}",
            "executionArn": self.arn("execute-api", f"{api}/{stage}"),
        }

    def _api_key(self, r: _NewResource) -> _State:
        return r.short, {"value": f"key-{_short_id(r.short, length=30)}"}

    def _kms_key(self, r: _NewResource) -> _State:
        return f"{r.short}-kms", {"arn": self.arn("kms", f"key/{r.short}-kms"), "keyId": f"{r.short}-kms"}

    def _role(self, r: _NewResource) -> _State:
        return r.physical, {"arn": self.arn("iam", f"role/{r.physical}", region=False), "name": r.physical}

    def _log_group(self, r: _NewResource) -> _State:
        return r.physical, {"arn": self.arn("logs", f"log-group:{r.physical}"), "name": r.physical}

    def _secret(self, r: _NewResource) -> _State:
        arn = self.arn("secretsmanager", f"secret:{r.physical}-{r.short[:6]}")
        return arn, {"arn": arn}

    def _web_acl(self, r: _NewResource) -> _State:
        return r.short, {"arn": self.arn("wafv2", f"regional/webacl/{r.physical}/{r.short}")}

    def _vpc_endpoint(self, r: _NewResource) -> _State:
        gateway = r.inputs.get("vpcEndpointType") == "Gateway"
        return f"vpce-{r.short}", {"prefixListId": f"pl-{r.short[:8]}" if gateway else None}

    def _dashboard(self, r: _NewResource) -> _State:
        name = r.inputs.get("dashboardName")
        return r.physical, {"dashboardArn": self.arn("cloudwatch", f"dashboard/{name}", region=False)}

    def _schedule(self, r: _NewResource) -> _State:
        group = r.inputs.get("groupName") or "default"
        return f"{group}/{r.physical}", {"arn": self.arn("scheduler", f"schedule/{group}/{r.physical}")}

    def _random_password(self, r: _NewResource) -> _State:
        return r.short, {"result": _short_id(r.short, length=64)}

    def availability_zones(self) -> list[dict[str, str]]:
        """The zones DescribeAvailabilityZones lists for an account that opted in to a Local Zone and
        a Wavelength Zone, sorted by name as AWS lists them: those two names sort first."""
        regular = [
            {
                "zone-name": f"{self.region}{letter}",
                "zone-id": f"{_short_id(self.region, length=4)}-az{index}",
                "state": "available",
                "opt-in-status": "opt-in-not-required",
                "zone-type": "availability-zone",
                "group-name": self.region,
            }
            for index, letter in enumerate("abcd", start=1)
        ]
        opted_in = [
            {
                "zone-name": f"{self.region}-lcl-1a",
                "zone-id": f"{_short_id(self.region, length=4)}-lcl1-az1",
                "state": "available",
                "opt-in-status": "opted-in",
                "zone-type": "local-zone",
                "group-name": f"{self.region}-lcl-1",
            },
            {
                "zone-name": f"{self.region}-wl1-cty-wlz-1",
                "zone-id": f"{_short_id(self.region, length=4)}-wl1-cty-wlz1",
                "state": "available",
                "opt-in-status": "opted-in",
                "zone-type": "wavelength-zone",
                "group-name": f"{self.region}-wl1",
            },
        ]
        return sorted(regular + opted_in, key=lambda zone: zone["zone-name"])

    def _get_availability_zones(self, args: dict[str, Any]) -> dict[str, Any]:
        """getAvailabilityZones honouring `state`, `filters` and the exclusions, as AWS applies them."""
        zones = self.availability_zones()
        conditions = [("state", [args["state"]])] if args.get("state") else []
        for entry in args.get("filters") or []:
            if entry["name"] not in zones[0]:
                raise NotImplementedError(f"the mock has no availability-zone filter {entry['name']!r}")
            conditions.append((entry["name"], list(entry["values"])))
        selected = [
            zone
            for zone in zones
            if all(any(fnmatchcase(zone[name], value) for value in values) for name, values in conditions)
            and zone["zone-name"] not in (args.get("excludeNames") or [])
            and zone["zone-id"] not in (args.get("excludeZoneIds") or [])
        ]
        return {
            "names": [zone["zone-name"] for zone in selected],
            "zoneIds": [zone["zone-id"] for zone in selected],
            "groupNames": sorted({zone["group-name"] for zone in selected}),
            "id": self.region,
        }

    def _get_service_quota(self, args: dict[str, Any]) -> dict[str, Any]:
        """GetServiceQuota for the one quota the stack reads (the data source looks it up by code)."""
        wanted = (quotas.LAMBDA_SERVICE_CODE, quotas.CONCURRENT_EXECUTIONS_QUOTA_CODE)
        if (args.get("serviceCode"), args.get("quotaCode")) != wanted:
            raise NotImplementedError(f"the mock knows no service quota {args!r}")
        arn = self.arn("servicequotas", f"{wanted[0]}/{wanted[1]}")
        return {
            "adjustable": True,
            "arn": arn,
            "defaultValue": float(quotas.DEFAULT_CONCURRENT_EXECUTIONS),
            "globalQuota": False,
            "id": arn,
            "quotaCode": wanted[1],
            "quotaName": quotas.CONCURRENT_EXECUTIONS_QUOTA_NAME,
            "region": self.region,
            "serviceCode": wanted[0],
            "serviceName": "AWS Lambda",
            "value": float(self.lambda_concurrency_quota),
        }

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        answers: dict[str, Callable[[], dict[str, Any]]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": lambda: {
                "accountId": self.account_id,
                "arn": self.arn("iam", "user/deployer", region=False),
                "id": self.account_id,
                "userId": "AIDADEPLOYER",
            },
            "aws:index/getPartition:getPartition": lambda: {
                "partition": self.partition,
                "dnsSuffix": "amazonaws.com",
                "id": self.partition,
            },
            "aws:index/getAvailabilityZones:getAvailabilityZones": lambda: self._get_availability_zones(args),
            "aws:servicequotas/getServiceQuota:getServiceQuota": lambda: self._get_service_quota(args),
        }
        if token not in answers:
            raise NotImplementedError(f"no mock answer for data source {token}")
        return answers[token]()


_STATE_BUILDERS: dict[str, Callable[[AwsLikeAnswers, _NewResource], _State]] = {
    "aws:sqs/queue:Queue": AwsLikeAnswers._queue,
    "aws:scheduler/schedule:Schedule": AwsLikeAnswers._schedule,
    "aws:sns/topic:Topic": AwsLikeAnswers._topic,
    "aws:dynamodb/table:Table": AwsLikeAnswers._table,
    "aws:lambda/function:Function": AwsLikeAnswers._function,
    "aws:lambda/alias:Alias": AwsLikeAnswers._alias,
    "aws:lambda/layerVersion:LayerVersion": AwsLikeAnswers._layer_version,
    "aws:apigateway/restApi:RestApi": AwsLikeAnswers._rest_api,
    "aws:apigateway/stage:Stage": AwsLikeAnswers._stage,
    "aws:apigateway/apiKey:ApiKey": AwsLikeAnswers._api_key,
    "aws:kms/key:Key": AwsLikeAnswers._kms_key,
    "aws:iam/role:Role": AwsLikeAnswers._role,
    "aws:cloudwatch/logGroup:LogGroup": AwsLikeAnswers._log_group,
    "aws:secretsmanager/secret:Secret": AwsLikeAnswers._secret,
    "aws:wafv2/webAcl:WebAcl": AwsLikeAnswers._web_acl,
    "aws:ec2/vpcEndpoint:VpcEndpoint": AwsLikeAnswers._vpc_endpoint,
    "aws:cloudwatch/dashboard:Dashboard": AwsLikeAnswers._dashboard,
    "random:index/randomPassword:RandomPassword": AwsLikeAnswers._random_password,
}
"""Resource types whose ids or outputs the program reads; others get an EC2-style id and an ARN."""


_SECRET_SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - pulumi.runtime.rpc._special_sig_key
_SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - pulumi.runtime.rpc._special_secret_sig


def unwrap_secrets(value: Any) -> Any:
    """Inputs marked secret arrive wrapped; the graph keeps plain values (it never leaves the process)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIGNATURE_KEY) == _SECRET_SIGNATURE:
            return unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


@dataclass(frozen=True)
class _Registration:
    """What a RegisterResource request says beyond the inputs `Mocks.new_resource` is given."""

    urn: str
    dependencies: tuple[str, ...]
    retain_on_delete: bool
    custom_timeouts: dict[str, str]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, answers: AwsLikeAnswers, graph: StackGraph):
        self.answers = answers
        self.graph = graph
        # The registration being served on this thread (the mock monitor runs each request on an
        # executor thread and calls new_resource from it).
        self.registering = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap_secrets(dict(args.inputs))
        resource_id, state = self.answers.resource_state(args.typ, args.name, inputs)
        recorded = RecordedResource(args.typ, args.name, inputs, state, resource_id)
        registration: _Registration | None = getattr(self.registering, "value", None)
        if registration is not None:
            recorded.urn = registration.urn
            recorded.dependencies = registration.dependencies
            recorded.retain_on_delete = registration.retain_on_delete
            recorded.custom_timeouts = registration.custom_timeouts
        self.graph.resources.append(recorded)
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.graph.invokes.append((args.token, dict(args.args)))
        self.graph.invoke_providers.append((args.token, args.provider or ""))
        try:
            return self.answers.call(args.token, dict(args.args)), []
        except InvokeRefused as refusal:
            return {}, [("", str(refusal))]


class _RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The mock engine, also keeping each resource's URN, dependencies and lifecycle options."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method it overrides
        timeouts = request.customTimeouts
        self.recording.registering.value = _Registration(
            urn=self.make_urn(request.parent, request.type, request.name),
            dependencies=tuple(request.dependencies),
            retain_on_delete=request.HasField("retainOnDelete") and request.retainOnDelete,
            custom_timeouts={
                key: value for key in ("create", "update", "delete") if (value := getattr(timeouts, key))
            },
        )
        try:
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's mock monitor is unannotated
        finally:
            self.recording.registering.value = None


def evaluate(
    program: Callable[[], dict[str, Any]], answers: AwsLikeAnswers, *, stack: str = "unit"
) -> StackGraph:
    """Run `program` (which builds resources and returns its outputs) and collect the graph."""
    graph = StackGraph()
    mocks = RecordingMocks(answers, graph)
    pulumi.runtime.set_mocks(
        mocks,
        project="tap-transaction-pipeline",
        stack=stack,
        preview=False,
        monitor=_RecordingMonitor(mocks),
    )

    def run() -> pulumi.Output[None]:
        outputs = program()
        return pulumi.Output.from_input(outputs).apply(graph.outputs.update)

    pulumi.runtime.test(run)()  # type: ignore[no-untyped-call]  # pulumi.runtime.test has no annotations
    return graph


def resolved_json(value: Any) -> Any:
    """Inputs holding JSON documents (policies, redrive, dashboards) as Python values."""
    return json.loads(value) if isinstance(value, str) else value

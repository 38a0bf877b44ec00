"""Lambda: no public invocation, supported runtime, in a VPC across zones, tracing, scoped permissions."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, by_id
from lib.policy.controls.ec2 import SUBNET

FUNCTION = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"

# Lambda.2: runtimes AWS supports (not deprecated) that this project accepts; REQUIREMENTS.md asks
# for Python 3.12 or newer. Revisit when AWS publishes a deprecation date for one of these.
SUPPORTED_RUNTIMES = frozenset({"python3.12", "python3.13", "python3.14"})

CONTROLS = ControlList()
control = CONTROLS.add


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
    subnets = by_id(graph, SUBNET)
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

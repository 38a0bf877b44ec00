"""EC2 / VPC: default security group closed, flow logs, private subnets, SG rules, no internet path."""

from __future__ import annotations

from collections.abc import Iterator

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding
from lib.policy.security_groups import DEFAULT_SECURITY_GROUP, SgRule, security_group_rules

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLES = ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable")
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"

# Anything that gives the VPC a path to or from the internet (C1: endpoints only).
INTERNET_PATH_TYPES = (
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
)

# EC2.19's high-risk ports (Security Hub's list).
HIGH_RISK_PORTS: tuple[int, ...]
HIGH_RISK_PORTS = (20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432)
HIGH_RISK_PORTS += (5500, 5601, 8080, 8088, 8888, 9200, 9300)

HTTPS = 443

CONTROLS = ControlList()
control = CONTROLS.add


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

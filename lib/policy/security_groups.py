"""Security-group rules in one shape, whichever of the three Pulumi forms declared them.

A rule can be inline on `ec2.SecurityGroup` (`ingress`/`egress` lists), a legacy
`ec2.SecurityGroupRule`, or a `vpc.SecurityGroupIngressRule`/`EgressRule`. The network controls
must see all three, or a rule moved from one form to another would slip past them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.graph import RecordedResource, StackGraph
from lib.policy.documents import as_list

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"

ALL_PROTOCOLS = "-1"
_PROTOCOL_NAMES = {"-1": ALL_PROTOCOLS, "all": ALL_PROTOCOLS, "6": "tcp", "17": "udp", "1": "icmp"}
UNRESTRICTED_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


@dataclass(frozen=True)
class SgRule:
    """One ingress or egress rule; `where` says which inline entry it was, for the message."""

    resource: RecordedResource
    where: str
    direction: str
    security_group_id: str | None
    protocol: str
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]
    peer_security_groups: tuple[str, ...]
    prefix_lists: tuple[str, ...]
    description: str

    @property
    def all_ports(self) -> bool:
        if self.protocol == ALL_PROTOCOLS:
            return True
        return self.from_port in {None, -1, 0} and self.to_port in {None, -1, 65535}

    def covers_port(self, port: int) -> bool:
        if self.all_ports:
            return True
        if self.protocol not in {"tcp", "udp"} or self.from_port is None or self.to_port is None:
            return False
        return self.from_port <= port <= self.to_port

    @property
    def unrestricted(self) -> bool:
        return bool(UNRESTRICTED_CIDRS & set(self.cidrs))

    def label(self) -> str:
        ports = "all ports" if self.all_ports else f"{self.protocol} {self.from_port}-{self.to_port}"
        where = f" {self.where}" if self.where else ""
        return f"{self.direction} rule{where} ({ports})"


def _port(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _protocol(value: object) -> str:
    text = str(value if value is not None else ALL_PROTOCOLS).lower()
    return _PROTOCOL_NAMES.get(text, text)


def _strings(*values: object) -> tuple[str, ...]:
    return tuple(str(v) for value in values for v in as_list(value) if v)


def _inline_rules(resource: RecordedResource) -> list[SgRule]:
    rules = []
    for direction in ("ingress", "egress"):
        for index, entry in enumerate(as_list(resource.inputs.get(direction))):
            if not isinstance(entry, dict):
                continue
            peers = _strings(entry.get("securityGroups"))
            if entry.get("self"):
                peers += (resource.id,)
            rules.append(
                SgRule(
                    resource=resource,
                    where=f"{direction}[{index}]",
                    direction=direction,
                    security_group_id=resource.id,
                    protocol=_protocol(entry.get("protocol")),
                    from_port=_port(entry.get("fromPort")),
                    to_port=_port(entry.get("toPort")),
                    cidrs=_strings(entry.get("cidrBlocks"), entry.get("ipv6CidrBlocks")),
                    peer_security_groups=peers,
                    prefix_lists=_strings(entry.get("prefixListIds")),
                    description=str(entry.get("description") or ""),
                )
            )
    return rules


def _legacy_rule(resource: RecordedResource) -> SgRule:
    inputs = resource.inputs
    peers = _strings(inputs.get("sourceSecurityGroupId"))
    if inputs.get("self"):
        peers += _strings(inputs.get("securityGroupId"))
    return SgRule(
        resource=resource,
        where="",
        direction=str(inputs.get("type", "")),
        security_group_id=inputs.get("securityGroupId"),
        protocol=_protocol(inputs.get("protocol")),
        from_port=_port(inputs.get("fromPort")),
        to_port=_port(inputs.get("toPort")),
        cidrs=_strings(inputs.get("cidrBlocks"), inputs.get("ipv6CidrBlocks")),
        peer_security_groups=peers,
        prefix_lists=_strings(inputs.get("prefixListIds")),
        description=str(inputs.get("description") or ""),
    )


def _vpc_rule(resource: RecordedResource, direction: str) -> SgRule:
    inputs = resource.inputs
    return SgRule(
        resource=resource,
        where="",
        direction=direction,
        security_group_id=inputs.get("securityGroupId"),
        protocol=_protocol(inputs.get("ipProtocol")),
        from_port=_port(inputs.get("fromPort")),
        to_port=_port(inputs.get("toPort")),
        cidrs=_strings(inputs.get("cidrIpv4"), inputs.get("cidrIpv6")),
        peer_security_groups=_strings(inputs.get("referencedSecurityGroupId")),
        prefix_lists=_strings(inputs.get("prefixListId")),
        description=str(inputs.get("description") or ""),
    )


def security_group_rules(graph: StackGraph, *, include_default: bool = False) -> list[SgRule]:
    """Every rule in the graph; the default group's inline rules only when asked (EC2.2 owns them)."""
    rules: list[SgRule] = []
    for resource in graph.of_type(SECURITY_GROUP):
        rules.extend(_inline_rules(resource))
    if include_default:
        for resource in graph.of_type(DEFAULT_SECURITY_GROUP):
            rules.extend(_inline_rules(resource))
    rules.extend(_legacy_rule(r) for r in graph.of_type(LEGACY_RULE))
    rules.extend(_vpc_rule(r, "ingress") for r in graph.of_type(INGRESS_RULE))
    rules.extend(_vpc_rule(r, "egress") for r in graph.of_type(EGRESS_RULE))
    return rules

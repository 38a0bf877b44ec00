"""Security-group rules in one shape, whichever of the three Pulumi forms declared them.

A rule can be inline on `ec2.SecurityGroup` (`ingress`/`egress` lists), a legacy
`ec2.SecurityGroupRule`, or a `vpc.SecurityGroupIngressRule`/`EgressRule`. The network controls
must see all three, or a rule moved from one form to another would slip past them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class _Form:
    """Which input names one declaration form uses for the parts of a rule that differ between forms."""

    protocol: str
    cidrs: tuple[str, str]
    peer_security_groups: str
    prefix_lists: str


_INLINE = _Form("protocol", ("cidrBlocks", "ipv6CidrBlocks"), "securityGroups", "prefixListIds")
_LEGACY = _Form("protocol", ("cidrBlocks", "ipv6CidrBlocks"), "sourceSecurityGroupId", "prefixListIds")
_VPC = _Form("ipProtocol", ("cidrIpv4", "cidrIpv6"), "referencedSecurityGroupId", "prefixListId")


def _rule(
    resource: RecordedResource,
    fields: dict[str, Any],
    form: _Form,
    *,
    direction: str,
    security_group_id: str | None,
    where: str = "",
    self_peers: tuple[str, ...] = (),
) -> SgRule:
    """One rule, ingress or egress, from any form; `self_peers` is the group a `self: true` rule names."""
    peers = _strings(fields.get(form.peer_security_groups))
    if fields.get("self"):
        peers += self_peers
    return SgRule(
        resource=resource,
        where=where,
        direction=direction,
        security_group_id=security_group_id,
        protocol=_protocol(fields.get(form.protocol)),
        from_port=_port(fields.get("fromPort")),
        to_port=_port(fields.get("toPort")),
        cidrs=_strings(*(fields.get(name) for name in form.cidrs)),
        peer_security_groups=peers,
        prefix_lists=_strings(fields.get(form.prefix_lists)),
        description=str(fields.get("description") or ""),
    )


def _inline_rules(group: RecordedResource) -> list[SgRule]:
    return [
        _rule(
            group,
            entry,
            _INLINE,
            direction=direction,
            security_group_id=group.id,
            where=f"{direction}[{index}]",
            self_peers=(group.id,),
        )
        for direction in ("ingress", "egress")
        for index, entry in enumerate(as_list(group.inputs.get(direction)))
        if isinstance(entry, dict)
    ]


def _legacy_rule(resource: RecordedResource) -> SgRule:
    inputs = resource.inputs
    group = inputs.get("securityGroupId")
    direction = str(inputs.get("type", ""))
    return _rule(
        resource, inputs, _LEGACY, direction=direction, security_group_id=group, self_peers=_strings(group)
    )


def _vpc_rule(resource: RecordedResource, direction: str) -> SgRule:
    inputs = resource.inputs
    return _rule(resource, inputs, _VPC, direction=direction, security_group_id=inputs.get("securityGroupId"))


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

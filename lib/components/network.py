"""Private network for the functions (C1, F2-F4, F16, F17).

Three private subnets in the region's first three available regular zones (never a Local or
Wavelength Zone), one route table each with no route out of the VPC (no internet gateway, no NAT).
DynamoDB is reached through a gateway endpoint on those route tables; every other AWS API the
functions call through an interface endpoint with private DNS, behind a security group that admits
only 443 from the functions' security group.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent

AVAILABILITY_ZONE_COUNT = 3
REGULAR_ZONE_OPT_IN_STATUS = "opt-in-not-required"  # Local and Wavelength Zones are "opted-in"
# Every AWS API the function code (and the Lambda runtime inside the VPC) calls, besides DynamoDB.
INTERFACE_ENDPOINT_SERVICES = ("sqs", "sns", "logs", "kms", "secretsmanager", "xray")
HTTPS = 443
FLOW_LOG_RETENTION_DAYS = 90


@dataclass
class NetworkArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]


def private_subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """Carve `count` equal subnets out of the VPC range, 16 per VPC so the range can grow later."""
    network = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(network.prefixlen + 4, 28)
    return [
        str(subnet) for subnet, _ in zip(network.subnets(new_prefix=new_prefix), range(count), strict=False)
    ]


def endpoint_service_name(region: str, service: str) -> str:
    return f"com.amazonaws.{region}.{service}"


class Network(TaggedComponent):
    """VPC, private subnets, endpoints and the security groups the functions run in."""

    component_name = "network"

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Network", name, args.context, opts)
        ctx = args.context
        child = self.child_opts

        self.vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=ctx.settings.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # required for interface endpoints' private DNS
            tags={**self.tags("function-network"), "Name": ctx.name("vpc")},
            opts=child,
        )
        # FSBP EC2.2: the default security group must have no rules; nothing uses it.
        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            "default-sg-no-rules",
            vpc_id=self.vpc.id,
            tags={**self.tags("locked-default-security-group"), "Name": ctx.name("default-sg")},
            opts=child,
        )

        # Regular zones only: an opted-in Local Zone or Wavelength Zone is also "available" (and its
        # name sorts first), but it lacks most of the services and endpoint types used here.
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": [REGULAR_ZONE_OPT_IN_STATUS]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        cidrs = private_subnet_cidrs(ctx.settings.vpc_cidr, AVAILABILITY_ZONE_COUNT)
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.route_tables: list[aws.ec2.RouteTable] = []
        for index, cidr in enumerate(cidrs):
            subnet = aws.ec2.Subnet(
                f"private-subnet-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names[index],
                map_public_ip_on_launch=False,
                tags={**self.tags("private-function-subnet"), "Name": ctx.name(f"private-{index}")},
                opts=child,
            )
            route_table = aws.ec2.RouteTable(
                f"private-route-table-{index}",
                vpc_id=self.vpc.id,
                tags={**self.tags("private-routing"), "Name": ctx.name(f"private-rt-{index}")},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"private-route-table-association-{index}",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=child,
            )
            self.private_subnets.append(subnet)
            self.route_tables.append(route_table)

        self.lambda_security_group = aws.ec2.SecurityGroup(
            "lambda-sg",
            name=ctx.name("lambda"),
            description="Transaction pipeline functions: HTTPS out to VPC endpoints only",
            vpc_id=self.vpc.id,
            tags={**self.tags("function-egress-control"), "Name": ctx.name("lambda")},
            opts=child,
        )
        self.endpoint_security_group = aws.ec2.SecurityGroup(
            "endpoint-sg",
            name=ctx.name("vpc-endpoints"),
            description="Interface VPC endpoints: HTTPS in from the pipeline functions only",
            vpc_id=self.vpc.id,
            tags={**self.tags("endpoint-ingress-control"), "Name": ctx.name("vpc-endpoints")},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            "endpoint-https-from-lambda",
            security_group_id=self.endpoint_security_group.id,
            referenced_security_group_id=self.lambda_security_group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS from the pipeline functions to the interface endpoints",
            tags=self.tags("endpoint-ingress-control"),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            "lambda-https-to-endpoints",
            security_group_id=self.lambda_security_group.id,
            referenced_security_group_id=self.endpoint_security_group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS to the interface endpoints (SQS, SNS, Logs, KMS, Secrets Manager, X-Ray)",
            tags=self.tags("function-egress-control"),
            opts=child,
        )

        self.dynamodb_endpoint = aws.ec2.VpcEndpoint(
            "dynamodb-gateway-endpoint",
            vpc_id=self.vpc.id,
            service_name=endpoint_service_name(ctx.region, "dynamodb"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in self.route_tables],
            tags={**self.tags("private-dynamodb-access"), "Name": ctx.name("dynamodb")},
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            "lambda-https-to-dynamodb",
            security_group_id=self.lambda_security_group.id,
            prefix_list_id=self.dynamodb_endpoint.prefix_list_id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS to DynamoDB through the gateway endpoint (regional prefix list)",
            tags=self.tags("function-egress-control"),
            opts=child,
        )

        self.interface_endpoints: dict[str, aws.ec2.VpcEndpoint] = {
            service: aws.ec2.VpcEndpoint(
                f"{service}-interface-endpoint",
                vpc_id=self.vpc.id,
                service_name=endpoint_service_name(ctx.region, service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in self.private_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                tags={**self.tags(f"private-{service}-access"), "Name": ctx.name(service)},
                opts=child,
            )
            for service in INTERFACE_ENDPOINT_SERVICES
        }

        self._flow_logs(args)
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "private_subnet_ids": [subnet.id for subnet in self.private_subnets],
                "lambda_security_group_id": self.lambda_security_group.id,
            }
        )

    def _flow_logs(self, args: NetworkArgs) -> None:
        """FSBP EC2.6: VPC flow logs on, into an encrypted log group only this role can write."""
        ctx = args.context
        child = self.child_opts
        self.flow_log_group = aws.cloudwatch.LogGroup(
            "flow-log-group",
            name=f"/aws/vpc/flow-logs/{ctx.name('vpc')}",
            retention_in_days=FLOW_LOG_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            tags=self.tags("vpc-flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            "flow-log-role",
            name=ctx.global_name("vpc-flow-logs"),
            assume_role_policy=iam.assume_role_policy("vpc-flow-logs.amazonaws.com", ctx.account_id),
            tags=self.tags("vpc-flow-logs"),
            opts=child,
        )
        # The documented flow-log role policy (https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html
        # and the pulumi-aws FlowLog example) less logs:CreateLogGroup, since the group is ours:
        # writes to this group only; DescribeLogGroups lists groups, so it takes the "log-group:*"
        # form AWS asks for (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-CWL.html).
        policy = aws.iam.RolePolicy(
            "flow-log-role-policy",
            role=role.id,
            policy=iam.document(
                [
                    iam.allow(
                        "WriteFlowLogs",
                        ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                        [self.flow_log_group.arn, pulumi.Output.concat(self.flow_log_group.arn, ":*")],
                    ),
                    iam.allow(
                        "FindFlowLogGroup", ["logs:DescribeLogGroups"], [ctx.arn("logs", "log-group:*")]
                    ),
                ]
            ),
            opts=child,
        )
        self.flow_log = aws.ec2.FlowLog(
            "vpc-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=self.tags("vpc-flow-logs"),
            # Created only once its role may write: IAM attaches the policy after the role, and a
            # flow log whose role cannot deliver yet reports an access error instead of failing.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

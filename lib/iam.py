"""Small builders for IAM and resource policy documents.

Policies are assembled from `pulumi.Output` values (ARNs), so every builder returns an Output of the
JSON text; the statements stay plain dicts, which is what the policy tests inspect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

Statement = dict[str, Any]


# The EC2 actions of AWSLambdaVPCAccessExecutionRole (v3): what Lambda's ENI management needs, with
# the function's role, to attach the function to the VPC
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html, "Required IAM permissions").
# The two Describe actions are List actions without resource types in the Service Authorization
# Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html),
# and the Lambda guide says DescribeNetworkInterfaces "only works if it's allowed on all resources":
# they are the only ones granted on "*".
LAMBDA_VPC_DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")
# CreateNetworkInterface authorizes the new network-interface and the subnet and security group it
# is created in; the other three authorize the network-interface only. All are scoped.
LAMBDA_VPC_CREATE_ENI_ACTION = "ec2:CreateNetworkInterface"
LAMBDA_VPC_MANAGE_ENI_ACTIONS = (
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
LAMBDA_VPC_ENI_ACTIONS = (
    LAMBDA_VPC_CREATE_ENI_ACTION,
    *LAMBDA_VPC_DESCRIBE_ACTIONS,
    *LAMBDA_VPC_MANAGE_ENI_ACTIONS,
)


def allow(
    sid: str, actions: Sequence[str], resources: Sequence[Any], condition: dict[str, Any] | None = None
) -> Statement:
    """An Allow statement; `resources` may hold Outputs, resolved when the document is rendered."""
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": list(resources),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def deny(
    sid: str, actions: Sequence[str], resources: Sequence[Any], condition: dict[str, Any] | None = None
) -> Statement:
    """A Deny statement of an identity policy (no principal)."""
    return {**allow(sid, actions, resources, condition), "Effect": "Deny"}


def deny_insecure_transport(sid: str, actions: Sequence[str], resource: Any) -> Statement:
    """FSBP SQS/SNS: refuse any request that does not arrive over TLS."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": list(actions),
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """Render statements (possibly holding Outputs) as a policy document JSON string."""
    return pulumi.Output.from_input({"Version": "2012-10-17", "Statement": list(statements)}).apply(
        lambda doc: json.dumps(doc, sort_keys=True)
    )


def assume_role_policy(service: str, source_account: Any | None = None) -> pulumi.Output[str]:
    """Trust policy for one AWS service principal.

    Pass `source_account` only for a service that documents the `aws:SourceAccount` key when it
    assumes the role; a condition the service never satisfies makes the role unusable.
    """
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return document([statement])

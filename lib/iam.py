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


# The EC2 actions of AWSLambdaVPCAccessExecutionRole (v3): what Lambda's ENI management needs to
# attach a function to the VPC. None of them supports resource-level permissions.
LAMBDA_VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
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

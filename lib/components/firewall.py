"""AWS WAF v2 in front of the API stage (C9, F1).

AWS managed rule groups for common exploits, known bad inputs and IP reputation, plus a per-IP rate
rule; every rule blocks (no count mode) and emits CloudWatch metrics. WAF logs go to a log group
whose name starts with `aws-waf-logs-`, as WAF requires, with the API key header redacted, under a
log resource policy this stack owns for that group alone (see `_log_delivery_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
LOG_RETENTION_DAYS = 30
LOG_DELIVERY_SERVICE = "delivery.logs.amazonaws.com"  # writes vended logs (WAF's among them)


# How long the provider keeps retrying AssociateWebACL while WAF answers WAFUnavailableEntityException
# ("couldn't retrieve the resource"), which it does for a while after the stage or the web ACL is
# created: the provider retries for its create timeout only, 5 or 10 minutes depending on its version
# (internal/service/wafv2/web_acl_association.go), and that has run out
# (https://github.com/hashicorp/terraform-provider-aws/issues/29080).
ASSOCIATION_CREATE_TIMEOUT = "30m"


@dataclass
class FirewallArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    stage: aws.apigateway.Stage


def _visibility(metric_name: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric_name, "sampled_requests_enabled": True}


def waf_rules(rate_limit_per_5min: int, metric_prefix: str) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """Managed groups first (cheap rejections), then the rate rule."""
    rules: list[aws.wafv2.WebAclRuleArgsDict] = [
        {
            "name": group,
            "priority": priority,
            "override_action": {"none": {}},  # enforce the group's own BLOCK actions
            "statement": {"managed_rule_group_statement": {"vendor_name": "AWS", "name": group}},
            "visibility_config": _visibility(f"{metric_prefix}-{group}"),
        }
        for priority, group in enumerate(MANAGED_RULE_GROUPS)
    ]
    rules.append(
        {
            "name": "PerIpRateLimit",
            "priority": len(MANAGED_RULE_GROUPS),
            "action": {"block": {}},
            # Providers send from few addresses, so the limit is per IP and sized well above 1,000 TPS.
            "statement": {"rate_based_statement": {"limit": rate_limit_per_5min, "aggregate_key_type": "IP"}},
            "visibility_config": _visibility(f"{metric_prefix}-PerIpRateLimit"),
        }
    )
    return rules


class Firewall(TaggedComponent):
    """A REGIONAL web ACL associated with the API stage, with logging."""

    component_name = "firewall"

    def __init__(self, name: str, args: FirewallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Firewall", name, args.context, opts)
        ctx = args.context
        child = self.child_opts
        acl_name = ctx.name("api-waf")
        self.web_acl = aws.wafv2.WebAcl(
            "web-acl",
            name=acl_name,
            description="Protects the transaction API",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=waf_rules(ctx.settings.waf_rate_limit_per_5min, acl_name),
            visibility_config=_visibility(acl_name),
            tags=self.tags("api-firewall"),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            "stage-association",
            resource_arn=args.stage.arn,
            web_acl_arn=self.web_acl.arn,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The stage must exist (not only its ARN be known) before WAF can find it.
                depends_on=[args.stage],
                custom_timeouts=pulumi.CustomTimeouts(create=ASSOCIATION_CREATE_TIMEOUT),
            ),
        )
        log_group = aws.cloudwatch.LogGroup(
            "waf-log-group",
            name=f"aws-waf-logs-{ctx.name('api')}",
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            tags=self.tags("firewall-logs"),
            opts=child,
        )
        delivery_policy = self._log_delivery_policy(ctx, log_group)
        aws.wafv2.WebAclLoggingConfiguration(
            "web-acl-logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[log_group.arn],
            # The API key, and the URI and query string: a card number pasted into a GET path must
            # not reach the WAF logs (the function refuses it without logging it).
            redacted_fields=[
                {"single_header": {"name": "x-api-key"}},
                {"uri_path": {}},
                {"query_string": {}},
            ],
            # Delivery is authorised before logging starts, so WAF finds a policy that covers the
            # group and does not add it to the account-wide AWSWAF-LOGS policy.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[delivery_policy]),
        )
        self.register_outputs({"web_acl_arn": self.web_acl.arn})

    def _log_delivery_policy(
        self, ctx: AwsContext, log_group: aws.cloudwatch.LogGroup
    ) -> aws.cloudwatch.LogResourcePolicy:
        """Lets CloudWatch Logs' delivery service write WAF logs into this stack's group only.

        Without it WAF creates or extends one account-wide resource policy, AWSWAF-LOGS, with every
        web ACL's log group; that policy is capped at 5,120 characters, so in a busy account new
        logging configurations start failing (terraform-provider-aws #25296, and the warning on
        WebAclLoggingConfiguration in the pulumi-aws docs). The statement is AWS's documented one
        for vended logs, with aws:SourceAccount and aws:SourceArn pinning the delivery to this
        account and region: https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-CWL.html
        Account-scoped resource policies are limited to 10 per region (PutResourcePolicy), one per
        stack here: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutResourcePolicy.html
        """
        return aws.cloudwatch.LogResourcePolicy(
            "waf-log-delivery-policy",
            policy_name=ctx.name("waf-log-delivery"),
            policy_document=iam.document(
                [
                    {
                        "Sid": "WafLogDelivery",
                        "Effect": "Allow",
                        "Principal": {"Service": LOG_DELIVERY_SERVICE},
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [pulumi.Output.concat(log_group.arn, ":log-stream:*")],
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": ctx.account_id},
                            "ArnLike": {"aws:SourceArn": ctx.arn("logs", "*")},
                        },
                    }
                ]
            ),
            opts=self.child_opts,
        )

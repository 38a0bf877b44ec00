"""WAF (v2): web ACLs with rules, logging to aws-waf-logs-*, metrics, and the required blocking rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lib.graph import StackGraph
from lib.policy import documents as doc
from lib.policy.controls.base import ControlList, Finding, arn_of

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"

REQUIRED_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"

CONTROLS = ControlList()
control = CONTROLS.add


@control("WAF.10", "WAF web ACLs have at least one rule")
def waf_has_rules(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        if not doc.as_list(acl.inputs.get("rules")):
            yield acl, "web ACL has no rules"


@control("WAF.11", "WAF web ACL logging is on, to a log group named aws-waf-logs-*")
def waf_logging(graph: StackGraph) -> Iterator[Finding]:
    for acl in graph.of_type(WEB_ACL):
        configs = [c for c in graph.of_type(WEB_ACL_LOGGING) if c.inputs.get("resourceArn") == arn_of(acl)]
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

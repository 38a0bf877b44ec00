"""Naming, region and lifecycle rules, and F22 tagging, over every resource in the graph."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from functools import cache

import pytest

from lib.graph import RecordedResource
from lib.packaging import REPO_ROOT
from tap_testing.stack import evaluate_stack

UNUSUAL_SUFFIX = "zq9x-7"
# Inputs that are physical names a person would search for in the console.
NAME_INPUTS = ("name", "dashboardName", "stageName", "policyName")


@pytest.fixture(scope="module")
def eu_graph():
    return evaluate_stack(region="eu-west-1", environment_suffix=UNUSUAL_SUFFIX)


@cache
def accepts_tags(type_token: str) -> bool:
    """Whether the pulumi-aws resource class for a type token takes a `tags` argument."""
    package, module_path, class_name = type_token.split(":")
    module = module_path.split("/")[0]
    module_name = {"index": "", "lambda": ".lambda_"}.get(module, f".{module}")
    python_module = importlib.import_module(f"pulumi_{package}{module_name}")
    resource_class = getattr(python_module, class_name)
    return "tags" in inspect.signature(resource_class._internal_init).parameters


def test_region_comes_from_config_and_nothing_mentions_us_east_2(eu_graph):
    serialized = json.dumps([r.inputs for r in eu_graph.resources], default=str)
    assert "us-east-2" not in serialized
    assert "eu-west-1" in serialized
    assert "us-east-2" not in json.dumps(eu_graph.outputs)
    zones = {s.inputs["availabilityZone"] for s in eu_graph.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}
    endpoints = {r.inputs["serviceName"] for r in eu_graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert all(name.startswith("com.amazonaws.eu-west-1.") for name in endpoints)
    (provider,) = eu_graph.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "eu-west-1"


# One per account, not per region: the name must tell two regions' deployments apart.
ACCOUNT_GLOBAL_TYPES = ("aws:iam/role:Role", "aws:cloudwatch/dashboard:Dashboard")


# Roles IAM names from a prefix plus a unique id (a role retained by `pulumi destroy` must not block
# the next `pulumi up`): unique in every region by construction, so the prefix needs only the suffix.
PREFIX_NAMED_ROLES = {"cloudwatch-role"}
IAM_NAME_PREFIX_LIMIT = 38


def test_account_global_resources_are_named_per_region_so_regions_never_collide(graph, eu_graph):
    same_suffix_in_eu = evaluate_stack(region="eu-west-1")  # the default graph's suffix, another region
    for type_token in ACCOUNT_GLOBAL_TYPES:
        for resource in eu_graph.of_type(type_token):
            if resource.name in PREFIX_NAMED_ROLES:
                assert "name" not in resource.inputs
                assert UNUSUAL_SUFFIX in resource.inputs["namePrefix"]
                continue
            name = resource.inputs.get("name") or resource.inputs["dashboardName"]
            assert "eu-west-1" in name and UNUSUAL_SUFFIX in name, (type_token, name)
        key = "dashboardName" if "dashboard" in type_token else "name"
        here = {r.inputs[key] for r in graph.of_type(type_token) if r.name not in PREFIX_NAMED_ROLES}
        there = {
            r.inputs[key] for r in same_suffix_in_eu.of_type(type_token) if r.name not in PREFIX_NAMED_ROLES
        }
        assert here and there and not here & there, type_token
    longest = evaluate_stack(region="ap-southeast-2", environment_suffix="a" * 20)
    for role in [*graph.of_type("aws:iam/role:Role"), *longest.of_type("aws:iam/role:Role")]:
        if role.name in PREFIX_NAMED_ROLES:
            assert len(role.inputs["namePrefix"]) <= IAM_NAME_PREFIX_LIMIT
        else:
            assert len(role.inputs["name"]) <= 64  # IAM's limit, at the longest suffix too


def test_no_account_id_or_environment_name_is_hard_coded_in_the_program():
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "lib").rglob("*.py") if p.name != "graph.py")
    assert not re.search(r"\b\d{12}\b", source), "an account id is hard-coded in lib/"
    assert not re.search(r"[\"'](prod|production|staging)[\"']", source)
    assert not re.search(r"[\"']us-(east|west)-\d[\"']", source.replace('DEFAULT_REGION = "us-east-2"', ""))


def test_every_named_resource_carries_the_environment_suffix(eu_graph):
    # A Lambda alias's name is scoped to its function: its ARN is the function's (suffixed) ARN
    # plus the alias name, so the name itself ("live") carries no suffix; its ARN does.
    aliases = eu_graph.of_type("aws:lambda/alias:Alias")
    assert aliases and all(UNUSUAL_SUFFIX in alias.state["arn"] for alias in aliases)
    named = [
        (r.type, r.name, key, r.inputs[key])
        for r in eu_graph.custom_resources()
        for key in NAME_INPUTS
        if isinstance(r.inputs.get(key), str)
        and r.type not in ("aws:apigateway/account:Account", "aws:lambda/alias:Alias")
    ]
    assert len(named) > 40
    missing = [entry for entry in named if UNUSUAL_SUFFIX not in entry[3]]
    assert not missing, f"names without the suffix: {missing}"
    name_tags = [
        r.inputs["tags"]["Name"] for r in eu_graph.custom_resources() if "Name" in r.inputs.get("tags", {})
    ]
    assert name_tags and all(UNUSUAL_SUFFIX in tag for tag in name_tags)


def test_f22_every_taggable_resource_has_component_and_purpose_tags(graph):
    taggable: list[RecordedResource] = [r for r in graph.custom_resources() if accepts_tags(r.type)]
    assert len(taggable) > 60
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        assert tags.get("Component"), f"{resource.type} {resource.name} has no Component tag"
        assert tags.get("Purpose"), f"{resource.type} {resource.name} has no Purpose tag"
        assert tags.get("Environment") == "unit"
    (provider,) = graph.of_type("pulumi:providers:aws")
    default_tags = (
        json.loads(provider.inputs["defaultTags"])
        if isinstance(provider.inputs["defaultTags"], str)
        else provider.inputs["defaultTags"]
    )
    assert default_tags["tags"]["Project"] == "tap-transaction-pipeline"


def test_f22_tag_check_would_catch_an_untagged_resource():
    assert accepts_tags("aws:sqs/queue:Queue")
    assert accepts_tags("aws:lambda/function:Function")
    assert not accepts_tags("aws:lambda/permission:Permission")


def test_everything_is_destroyable(graph):
    for table in graph.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["deletionProtectionEnabled"] is False
    for group in graph.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert not group.inputs.get("skipDestroy")
        assert not group.inputs.get("deletionProtectionEnabled")
    secret = graph.one("aws:secretsmanager/secret:Secret", "card-fingerprint-secret")
    assert secret.inputs["recoveryWindowInDays"] == 0
    assert graph.one("aws:kms/key:Key", "data-key").inputs["deletionWindowInDays"] == 7
    sources = {p: p.read_text() for p in (REPO_ROOT / "lib").rglob("*.py")}
    assert not [p for p, text in sources.items() if "protect=True" in text]
    # The one exception: API Gateway's account-level CloudWatch role is the account's and region's,
    # not this stack's (lib/components/api.py): it and the role it names outlive the stack.
    assert [p.name for p, text in sources.items() if "retain_on_delete=True" in text] == ["api.py"]
    retained = {(r.type, r.name) for r in graph.resources if r.retain_on_delete}
    assert retained == API_GATEWAY_ACCOUNT_RESOURCES


API_GATEWAY_ACCOUNT_RESOURCES = {
    ("aws:iam/role:Role", "cloudwatch-role"),
    ("aws:iam/rolePolicy:RolePolicy", "cloudwatch-role-policy"),
    ("aws:apigateway/account:Account", "account-logging"),
}


def test_without_manage_api_gateway_account_nothing_is_retained_and_the_setting_is_left_alone():
    graph = evaluate_stack(manage_api_gateway_account=False)
    assert not [r for r in graph.resources if r.retain_on_delete]
    present = {(r.type, r.name) for r in graph.resources}
    assert not present & API_GATEWAY_ACCOUNT_RESOURCES
    assert graph.of_type("aws:apigateway/stage:Stage")

"""Issue 13: SnapStart on the API path, published versions and the alias everything invokes.

Under Pulumi mocks: what the stack asks AWS for. Each point checks a constraint or a choice that
AWS's SnapStart documentation states (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html):
SnapStart applies to published versions only, never to $LATEST; it excludes provisioned concurrency
and ephemeral storage above 512 MB; snapshots are encrypted with the function's KMS key
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-security.html).
"""

from __future__ import annotations

import json

import pytest

from lib.config import DEFAULT_SNAP_START, ConfigError, snap_start_functions
from lib.graph import StackGraph
from tap_contract.environment import FAILED_HANDLER, FRAUD_DETECTOR, HANDLERS, RECONCILER, VALIDATOR
from tap_testing.stack import alias_of, evaluate_stack, function_invoked_by

FUNCTION = "aws:lambda/function:Function"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
PERMISSION = "aws:lambda/permission:Permission"


def function(graph: StackGraph, key: str):
    return graph.one(FUNCTION, f"{key}-function")


def test_the_validator_snapshots_its_published_versions_and_the_consumers_do_not_by_default(graph):
    assert {VALIDATOR} == DEFAULT_SNAP_START
    assert function(graph, VALIDATOR).inputs["snapStart"] == {"applyOn": "PublishedVersions"}
    for key in (FRAUD_DETECTOR, FAILED_HANDLER, RECONCILER):
        assert not function(graph, key).inputs.get("snapStart")


@pytest.mark.parametrize("key", sorted(HANDLERS))
def test_every_function_publishes_versions_and_has_an_alias_on_the_published_version(graph, key):
    fn = function(graph, key)
    assert fn.inputs["publish"] is True
    alias = alias_of(graph, key)
    assert alias.inputs["name"] == "live"
    assert alias.inputs["functionName"] == fn.state["name"]
    # The version this update published, never $LATEST.
    assert alias.inputs["functionVersion"] == fn.state["version"] == "1"
    assert alias.inputs["functionVersion"] != "$LATEST"
    assert alias.state["arn"] == f"arn:aws:lambda:us-east-2:123456789012:function:tap-{key}-unit:live"


@pytest.mark.parametrize("key", sorted(HANDLERS))
def test_snapstart_constraints_hold_for_every_function(graph, key):
    fn = function(graph, key)
    # SnapStart does not support ephemeral storage above 512 MB.
    assert fn.inputs["ephemeralStorage"] == {"size": 512}
    # Snapshots (and the environment) are encrypted with the stack's customer managed key.
    assert fn.inputs["kmsKeyArn"] == graph.one("aws:kms/key:Key", "data-key").state["arn"]
    assert fn.inputs["runtime"] == "python3.12"  # SnapStart for Python: 3.12 and later
    assert not fn.inputs.get("fileSystemConfigs")  # nor EFS


def test_no_provisioned_concurrency_anywhere(graph):
    # SnapStart does not support provisioned concurrency.
    assert not graph.of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
    for alias in graph.of_type("aws:lambda/alias:Alias"):
        assert not alias.inputs.get("provisionedConcurrencyConfig")


def test_the_api_invokes_the_validators_alias_and_may_invoke_nothing_else(graph):
    alias = alias_of(graph, VALIDATOR)
    document = json.loads(graph.one("aws:apigateway/restApi:RestApi", "rest-api").inputs["body"])
    uris = {
        operation["x-amazon-apigateway-integration"]["uri"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert uris == {alias.state["invokeArn"]}
    assert uris == {
        "arn:aws:apigateway:us-east-2:lambda:path/2015-03-31/functions/"
        "arn:aws:lambda:us-east-2:123456789012:function:tap-validator-unit:live/invocations"
    }
    assert "$LATEST" not in json.dumps(document)
    execution_arn = graph.one("aws:apigateway/restApi:RestApi", "rest-api").state["executionArn"]
    # The API's two; the other permission is Secrets Manager's, on the rotation function's alias.
    permissions = [
        p for p in graph.of_type(PERMISSION) if p.inputs["principal"] == "apigateway.amazonaws.com"
    ]
    assert {p.name for p in graph.of_type(PERMISSION)} - {p.name for p in permissions} == {
        "key-rotation-invoke-permission"
    }
    assert {p.name for p in permissions} == {"invoke-post-transaction", "invoke-get-transaction"}
    for permission in permissions:
        assert permission.inputs["function"] == function(graph, VALIDATOR).state["name"]
        assert permission.inputs["qualifier"] == "live"
        # The source ARN is unchanged by the alias: this API's stage, per route.
        assert permission.inputs["sourceArn"].startswith(f"{execution_arn}/unit/")


def test_event_source_mappings_invoke_the_consumers_aliases(graph):
    mappings = {m.name: m.inputs for m in graph.of_type(ESM)}
    assert (
        mappings["fraud-detector-queue-trigger"]["functionName"]
        == alias_of(graph, FRAUD_DETECTOR).state["arn"]
    )
    assert (
        mappings["failed-handler-queue-trigger"]["functionName"]
        == alias_of(graph, FAILED_HANDLER).state["arn"]
    )
    for mapping in mappings.values():
        assert mapping["functionName"].endswith(":live")
        assert function_invoked_by(graph, mapping["functionName"]).inputs["publish"] is True


def test_the_reconcilers_schedule_invokes_its_alias(graph):
    (schedule,) = graph.of_type("aws:scheduler/schedule:Schedule")
    alias = alias_of(graph, RECONCILER)
    assert schedule.inputs["target"]["arn"] == alias.state["arn"]
    assert schedule.inputs["target"]["arn"].endswith(":live")
    (policy,) = [
        p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if "InvokeReconciler" in p.inputs["policy"]
    ]
    (invoke,) = [
        s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Sid"] == "InvokeReconciler"
    ]
    assert invoke["Resource"] in (alias.state["arn"], [alias.state["arn"]])


def test_snapstart_follows_config_per_function():
    graph = evaluate_stack(snap_start_functions=frozenset({FRAUD_DETECTOR}))
    assert not function(graph, VALIDATOR).inputs.get("snapStart")
    assert function(graph, FRAUD_DETECTOR).inputs["snapStart"] == {"applyOn": "PublishedVersions"}
    assert not function(graph, FAILED_HANDLER).inputs.get("snapStart")
    # Versions and aliases do not depend on SnapStart: the wiring is the same either way.
    for key in HANDLERS:
        assert function(graph, key).inputs["publish"] is True
        assert alias_of(graph, key).inputs["functionVersion"] == "1"


def test_the_snapstart_config_key_is_an_object_of_functions_over_the_defaults():
    assert snap_start_functions(None) == {VALIDATOR}
    assert snap_start_functions({FRAUD_DETECTOR: True}) == {VALIDATOR, FRAUD_DETECTOR}
    assert snap_start_functions({VALIDATOR: False}) == frozenset()
    with pytest.raises(ConfigError, match="unknown functions"):
        snap_start_functions({"validatr": True})
    with pytest.raises(ConfigError, match="object of function name"):
        snap_start_functions({VALIDATOR: "yes"})
    with pytest.raises(ConfigError, match="object of function name"):
        snap_start_functions(True)

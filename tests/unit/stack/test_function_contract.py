"""The stack gives each function exactly the environment its code reads (docs/function-contract.md)."""

from __future__ import annotations

from tap_contract.environment import FUNCTION_ENVIRONMENT


def test_each_function_gets_exactly_the_variables_its_settings_declare(graph):
    deployed = {
        r.inputs["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"]: r.inputs["environment"]["variables"]
        for r in graph.of_type("aws:lambda/function:Function")
    }
    assert set(deployed) == set(FUNCTION_ENVIRONMENT)
    for function, variables in deployed.items():
        assert set(variables) == set(FUNCTION_ENVIRONMENT[function]), function
        assert all(isinstance(value, str) and value for value in variables.values()), function


def test_no_secret_material_is_placed_in_the_environment(graph):
    for function in graph.of_type("aws:lambda/function:Function"):
        variables = function.inputs["environment"]["variables"]
        secret_value = graph.one(
            "random:index/randomPassword:RandomPassword", "card-fingerprint-key-material"
        )
        assert secret_value.state["result"] not in variables.values()
        if "CARD_FINGERPRINT_SECRET_ARN" in variables:
            assert variables["CARD_FINGERPRINT_SECRET_ARN"].startswith("arn:aws:secretsmanager:")

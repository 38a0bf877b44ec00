"""The stack gives each function exactly the environment its code reads (docs/function-contract.md)."""

from __future__ import annotations

import pytest

from tap_contract.environment import FUNCTION_ENVIRONMENT
from tap_pipeline import settings

LOADERS = {
    "validator": settings.validator_settings,
    "fraud-detector": settings.fraud_detector_settings,
    "failed-handler": settings.failed_handler_settings,
    "reconciler": settings.reconciler_settings,
    "key-rotation": settings.key_rotation_settings,
}


def deployed_environments(graph) -> dict[str, dict[str, str]]:
    return {
        r.inputs["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"]: r.inputs["environment"]["variables"]
        for r in graph.of_type("aws:lambda/function:Function")
    }


def test_each_function_gets_exactly_the_variables_the_contract_declares(graph):
    deployed = deployed_environments(graph)
    assert set(deployed) == set(FUNCTION_ENVIRONMENT) == set(LOADERS)
    for function, variables in deployed.items():
        assert set(variables) == set(FUNCTION_ENVIRONMENT[function]), function
        assert all(isinstance(value, str) and value for value in variables.values()), function


@pytest.mark.parametrize("function", sorted(LOADERS))
def test_each_function_code_loads_from_exactly_the_deployed_environment(graph, monkeypatch, function):
    """Independent of the contract: the function's own settings loader, given the deployed variables
    and nothing else of ours, loads; without any one of them, it refuses naming that variable."""
    variables = deployed_environments(graph)[function]
    for name in {*variables, *(n for names in FUNCTION_ENVIRONMENT.values() for n in names)}:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings.clear_cache()
    try:
        LOADERS[function]()
        for name in sorted(n for n in variables if not n.startswith("POWERTOOLS_")):
            monkeypatch.delenv(name)
            settings.clear_cache()
            with pytest.raises(settings.ConfigurationError, match=name):
                LOADERS[function]()
            monkeypatch.setenv(name, variables[name])
    finally:
        settings.clear_cache()


def test_no_secret_material_is_placed_in_the_environment(graph):
    for function in graph.of_type("aws:lambda/function:Function"):
        variables = function.inputs["environment"]["variables"]
        secret_value = graph.one(
            "random:index/randomPassword:RandomPassword", "card-fingerprint-key-material"
        )
        assert secret_value.state["result"] not in variables.values()
        if "CARD_FINGERPRINT_SECRET_ARN" in variables:
            assert variables["CARD_FINGERPRINT_SECRET_ARN"].startswith("arn:aws:secretsmanager:")

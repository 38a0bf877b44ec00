"""Issue 13: the SnapStart runtime hooks each handler registers, called as Lambda calls them.

Lambda's Python runtime reads the hooks from ``snapshot_restore_py``'s registries (the functions
it returns are (callable, args, kwargs)); these tests call them the same way, against moto, and
check state, never timing: before the snapshot nothing is fetched into a cache; after a restore
every cache is empty, the clients are new objects and ``random`` draws a new sequence.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import Any

import pytest
import snapshot_restore_py

from tap_contract.environment import (
    FAILED_HANDLER,
    FRAUD_DETECTOR,
    HANDLERS,
    KEY_ROTATION,
    RECONCILER,
    VALIDATOR,
)
from tap_pipeline import snapstart
from tap_pipeline.data import clients, merchants, secrets
from tap_testing.backend import TEST_MERCHANT, transaction

HANDLER_MODULES = {
    VALIDATOR: "tap_pipeline.handlers.validator",
    FRAUD_DETECTOR: "tap_pipeline.handlers.fraud_detector",
    FAILED_HANDLER: "tap_pipeline.handlers.failed_handler",
    RECONCILER: "tap_pipeline.handlers.reconciler",
    KEY_ROTATION: "tap_pipeline.handlers.key_rotation",
}
Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@pytest.fixture(autouse=True)
def fresh_clients_afterwards():
    """The hooks build clients with whatever credentials the environment has at that moment (none,
    outside the moto fixture); later tests must build their own, as the package's tests expect."""
    yield
    clients.clear_cache()


def hooks_for(function: str, registry: list[Hook]) -> list[Hook]:
    return [hook for hook in registry if hook[1][:1] == (function,)]


def run(hooks: list[Hook]) -> None:
    for func, args, kwargs in hooks:
        func(*args, **kwargs)


def test_every_function_of_the_contract_has_its_handler_here():
    assert {key: HANDLERS[key].rsplit(".", 1)[0] for key in HANDLERS} == HANDLER_MODULES


@pytest.mark.parametrize("function", sorted(HANDLER_MODULES))
def test_every_handler_registers_one_before_snapshot_and_one_after_restore_hook(function):
    importlib.import_module(HANDLER_MODULES[function])
    before = hooks_for(function, snapshot_restore_py.get_before_snapshot())
    after = hooks_for(function, snapshot_restore_py.get_after_restore())
    # Registered once at import (a re-import in the same process finds the module in sys.modules).
    assert [hook[0] for hook in before] == [snapstart.before_snapshot]
    assert [hook[0] for hook in after] == [snapstart.after_restore]


def test_the_validator_warms_its_models_before_the_snapshot():
    validator = importlib.import_module(HANDLER_MODULES[VALIDATOR])
    ((_, (_, warmers), _),) = hooks_for(VALIDATOR, snapshot_restore_py.get_before_snapshot())
    assert validator._warm_models in warmers
    assert "4" * 12 not in str(validator.WARM_REQUEST)  # a token: the snapshot holds no card number


def test_before_snapshot_builds_the_clients_and_calls_no_aws_api(pipeline, api_calls):
    importlib.import_module(HANDLER_MODULES[VALIDATOR])
    clients.clear_cache()
    run(hooks_for(VALIDATOR, snapshot_restore_py.get_before_snapshot()))

    assert api_calls == {}  # no secret, merchant or profile fetched into the snapshot
    for factory in snapstart.CLIENTS[VALIDATOR]:
        assert factory.cache_info().currsize == 1  # type: ignore[attr-defined]  # functools.cache
    assert secrets._provider.cache_info().currsize == 0
    assert merchants.directory.cache_info().currsize == 0


def test_after_restore_forgets_cached_secrets_and_merchants_and_rebuilds_the_clients(pipeline):
    importlib.import_module(HANDLER_MODULES[VALIDATOR])
    assert pipeline.post(transaction(merchant_id=TEST_MERCHANT))["statusCode"] == 202
    # The request cached the fingerprint key and the merchant's configuration.
    provider = secrets._provider()
    assert provider.store  # Powertools' cache of fetched values
    assert merchants.directory()._cache
    old_clients = [factory() for factory in snapstart.CLIENTS[VALIDATOR]]

    run(hooks_for(VALIDATOR, snapshot_restore_py.get_after_restore()))

    assert secrets._provider.cache_info().currsize == 0
    assert merchants.directory.cache_info().currsize == 0
    assert secrets._provider() is not provider and not secrets._provider().store
    new_clients = [factory() for factory in snapstart.CLIENTS[VALIDATOR]]
    assert all(new is not old for new, old in zip(new_clients, old_clients, strict=True))
    # The restored environment still serves requests, reading key and merchant afresh.
    assert pipeline.post(transaction(merchant_id=TEST_MERCHANT))["statusCode"] == 202


def test_after_restore_drops_the_detectors_profiles_and_idempotent_publishers(pipeline):
    from tap_pipeline import alerts, idempotency
    from tap_pipeline.data import fraud_state

    importlib.import_module(HANDLER_MODULES[FRAUD_DETECTOR])
    assert pipeline.post(transaction(merchant_id=TEST_MERCHANT))["statusCode"] == 202
    assert pipeline.run_detector()["batchItemFailures"] == []
    alerts._idempotent_fraud_alert()
    assert fraud_state.state.cache_info().currsize == 1
    assert idempotency.persistence_layer.cache_info().currsize == 1

    run(hooks_for(FRAUD_DETECTOR, snapshot_restore_py.get_after_restore()))

    assert fraud_state.state.cache_info().currsize == 0
    assert idempotency.persistence_layer.cache_info().currsize == 0
    assert alerts._idempotent_fraud_alert.cache_info().currsize == 0
    assert pipeline.post(transaction(merchant_id=TEST_MERCHANT))["statusCode"] == 202
    assert pipeline.run_detector()["batchItemFailures"] == []


def test_after_restore_reseeds_random_so_restored_environments_draw_different_sequences():
    importlib.import_module(HANDLER_MODULES[VALIDATOR])
    # Two environments restored from one snapshot start with the same generator state.
    random.seed(1234)
    snapshot_state = random.getstate()
    without_hook = [random.random() for _ in range(4)]
    random.setstate(snapshot_state)
    assert [random.random() for _ in range(4)] == without_hook  # what the hook must prevent

    random.setstate(snapshot_state)
    run(hooks_for(VALIDATOR, snapshot_restore_py.get_after_restore()))
    assert random.getstate() != snapshot_state
    assert [random.random() for _ in range(4)] != without_hook


def test_install_refuses_a_function_the_contract_does_not_define():
    with pytest.raises(ValueError, match="no SnapStart hooks"):
        snapstart.install("payments")

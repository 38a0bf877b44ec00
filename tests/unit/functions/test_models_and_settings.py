"""Request model, its draft-4 JSON schema for API Gateway, and environment settings."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft4Validator

from tap_contract import api as models
from tap_contract import environment
from tap_pipeline import settings
from tap_testing.backend import ENVIRONMENT, transaction
from tap_testing.cards import FUTURE_EXPIRY, VISA

DRAFT4_KEYWORDS = {
    "$schema", "title", "type", "properties", "required", "additionalProperties", "pattern", "maxLength",
    "minLength", "oneOf", "anyOf", "allOf", "not", "enum", "items", "minimum", "maximum", "description",
}  # fmt: skip


def _keywords(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            found |= (
                _keywords(value)
                if key != "properties"
                else set().union(*(_keywords(v) for v in value.values()))
            )
    elif isinstance(node, list):
        for value in node:
            found |= _keywords(value)
    return found


def test_schema_is_valid_draft4_without_refs_or_null_types():
    schema = models.transaction_request_json_schema()

    Draft4Validator.check_schema(schema)
    assert _keywords(schema) <= DRAFT4_KEYWORDS
    text = json.dumps(schema)
    assert "$ref" not in text and "null" not in text and "$defs" not in text


def test_schema_lists_exactly_the_model_fields():
    schema = models.transaction_request_json_schema()

    assert set(schema["properties"]) == set(models.TransactionRequest.model_fields)
    required = {name for name, f in models.TransactionRequest.model_fields.items() if f.is_required()}
    assert set(schema["required"]) == required
    assert set(schema["properties"]["card"]["properties"]) == set(models.CardInput.model_fields)


VALID = [
    transaction(),
    transaction(card={"token": "tok_abcdefgh"}),
    transaction(card={"number": VISA, "expiry": FUTURE_EXPIRY}),
    transaction(transaction_id="abc-1", customer_id="c.1", timestamp="2024-05-01T12:00:00.123+02:00"),
    transaction(currency="JPY", amount="1500"),
]

STRUCTURALLY_INVALID = [
    transaction(extra=1),
    transaction(amount=12.5),
    transaction(amount="-1"),
    transaction(currency="usd"),
    transaction(card={}),
    transaction(card={"token": "tok_abcdefgh", "number": VISA, "expiry": FUTURE_EXPIRY}),
    transaction(card={"token": "tok_abcdefgh", "cvv": "123"}),
    transaction(card={"number": VISA}),
    transaction(merchant_id="x'; DROP"),
    transaction(country="USA"),
    {"merchant_id": "m", "amount": "1.00", "currency": "USD"},
]


@pytest.mark.parametrize("body", VALID)
def test_schema_and_model_both_accept_valid_requests(body):
    assert not list(Draft4Validator(models.transaction_request_json_schema()).iter_errors(body))
    models.TransactionRequest.model_validate(body)


@pytest.mark.parametrize("body", STRUCTURALLY_INVALID)
def test_schema_and_model_both_reject_structurally_invalid_requests(body):
    from pydantic import ValidationError

    assert list(Draft4Validator(models.transaction_request_json_schema()).iter_errors(body))
    with pytest.raises(ValidationError):
        models.TransactionRequest.model_validate(body)


def test_schema_is_a_fresh_copy_each_call():
    first = models.transaction_request_json_schema()
    first["properties"].clear()

    assert models.transaction_request_json_schema()["properties"]


def test_every_function_declares_its_environment():
    common = set(environment.COMMON_ENVIRONMENT)

    assert environment.required_environment("validator") >= common | {
        "TRANSACTION_QUEUE_URL",
        "CARD_FINGERPRINT_SECRET_ARN",
    }
    assert environment.required_environment("fraud-detector") >= common | {
        "FRAUD_STATE_TABLE_NAME",
        "FRAUD_ALERT_TOPIC_ARN",
    }
    assert environment.required_environment("failed-handler") == common | {
        "OPS_ALERT_TOPIC_ARN",
        "FRAUD_ALERT_TOPIC_ARN",
    }
    assert environment.required_environment("key-rotation") == {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
        "CARD_FINGERPRINT_SECRET_ARN",
        "CARD_KEY_SWITCH_DELAY_SECONDS",
    }
    with pytest.raises(ValueError, match="unknown function"):
        environment.required_environment("nope")


@pytest.mark.parametrize(
    ("function", "loader"),
    [
        ("validator", settings.validator_settings),
        ("fraud-detector", settings.fraud_detector_settings),
        ("failed-handler", settings.failed_handler_settings),
        ("key-rotation", settings.key_rotation_settings),
    ],
)
def test_settings_read_exactly_the_declared_variables(monkeypatch, function, loader):
    """Each loader fails, naming the variable, when any declared non-Powertools variable is absent."""
    declared = environment.required_environment(function)
    ours = sorted(name for name in declared if not name.startswith("POWERTOOLS_"))
    for name in ours:
        monkeypatch.setenv(name, ENVIRONMENT.get(name, "value"))
    settings.clear_cache()
    loader()  # complete environment: loads
    for name in ours:
        settings.clear_cache()
        monkeypatch.delenv(name)
        with pytest.raises(settings.ConfigurationError, match=name):
            loader()
        monkeypatch.setenv(name, ENVIRONMENT.get(name, "value"))
    settings.clear_cache()


def test_numeric_settings_are_validated(monkeypatch):
    for name in environment.required_environment("fraud-detector"):
        monkeypatch.setenv(name, ENVIRONMENT.get(name, "value"))
    monkeypatch.setenv("FRAUD_STATE_SHARDS", "sixteen")
    settings.clear_cache()

    with pytest.raises(settings.ConfigurationError, match="FRAUD_STATE_SHARDS must be an integer"):
        settings.fraud_detector_settings()
    settings.clear_cache()

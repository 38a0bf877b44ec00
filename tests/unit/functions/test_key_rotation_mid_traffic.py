"""Issue 12 item 1: rotating the card-fingerprint key in the middle of a card's traffic.

The real validator, rotation function and fraud detector run in-process against moto. A card is
used three times, the key is rotated (Secrets Manager's four steps through the rotation handler,
switch delay compressed to 0 by the test backend, validators' cached ring dropped as a new
container would), then used four more times. The card's history must run on across the switch:
the seventh use counts six earlier ones (not the three since the switch), velocity fires, no event
is counted twice, and what GET and the fraud alert show does not change shape.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tap_contract import tables
from tap_contract.messages import TransactionMessage
from tap_pipeline.data import fraud_state, secrets
from tap_testing.backend import apply_environment, build_pipeline, clear_package_caches, transaction
from tap_testing.rotation import rotate_key, rotation_enabled

AMOUNTS = ["21.00", "22.00", "23.00", "24.00", "25.00", "26.00", "27.00"]


@pytest.fixture
def rotating(pipeline):
    with rotation_enabled(pipeline):
        yield pipeline


def use_card(pipe, index: int, transaction_id: str | None = None) -> dict:
    body = transaction(transaction_id=transaction_id or f"mid-{index}", amount=AMOUNTS[index])
    response = pipe.post(body)
    assert response["statusCode"] == 202, response["json"]
    messages = pipe.drain(pipe.queue_url)
    assert pipe.run_detector(messages) == {"batchItemFailures": []}
    return json.loads(messages[0]["Body"])


def card_events(pipe) -> dict[str, list[str]]:
    """Transaction ids of the card events, by partition (fingerprint)."""
    events: dict[str, list[str]] = {}
    for item in pipe.scan(pipe.fraud_state_table):
        if item[tables.FRAUD_STATE_PK].startswith("card#"):
            events.setdefault(item[tables.FRAUD_STATE_PK], []).append(
                item[tables.FRAUD_STATE_SK].split("#")[1]
            )
    return events


def test_velocity_counts_run_on_across_a_key_rotation_without_double_counting(rotating):
    pipe = rotating
    before = [use_card(pipe, i) for i in range(3)]
    report = rotate_key(pipe)
    assert [s["step"] for s in report.steps] == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    secrets.clear_cache()  # every validator container has reloaded the ring (the switch delay's job)
    after = [use_card(pipe, i) for i in range(3, 7)]

    # The key did change at the switch: new fingerprint and version, the old one carried along.
    old, new = before[0]["card"], after[0]["card"]
    assert {m["card"]["fingerprint"] for m in before} == {old["fingerprint"]}
    assert {m["card"]["fingerprint"] for m in after} == {new["fingerprint"]} != {old["fingerprint"]}
    assert new["key_version"] == report.new_version != old["key_version"]
    assert all(m["card"]["lookback_fingerprints"] == [old["fingerprint"]] for m in after)
    assert all(m["card"]["lookback_fingerprints"] == [] for m in before)

    # Counts run on: 1..7 within the minute and the hour, one more per use, none counted twice.
    records = {r["transaction_id"]: r for r in pipe.records()}
    counts = [int(records[f"mid-{i}"]["features"]["card_count_minute"]) for i in range(7)]
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert [int(records[f"mid-{i}"]["features"]["card_count_hour"]) for i in range(7)] == counts
    seventh = records["mid-6"]
    assert seventh["status"] == "FLAGGED"
    assert any("7 transactions on this card in the last minute" in r for r in seventh["reasons"])
    assert records["mid-5"]["status"] == "FLAGGED"  # the sixth use, the first past the threshold 5

    # Each event was written once, under the fingerprint primary when it was received.
    events = card_events(pipe)
    assert sorted(events) == sorted([f"card#{old['fingerprint']}", f"card#{new['fingerprint']}"])
    assert sorted(events[f"card#{old['fingerprint']}"]) == ["mid-0", "mid-1", "mid-2"]
    assert sorted(events[f"card#{new['fingerprint']}"]) == ["mid-3", "mid-4", "mid-5", "mid-6"]


def test_without_the_old_fingerprint_the_history_would_reset(rotating):
    """The check above can fail: the same seventh message minus its lookback sees only the three
    uses since the switch (what a rotation without an overlap would do)."""
    pipe = rotating
    for i in range(3):
        use_card(pipe, i)
    rotate_key(pipe)
    secrets.clear_cache()
    after = [use_card(pipe, i) for i in range(3, 7)]
    seventh = TransactionMessage.model_validate(after[-1])
    state = fraud_state.state()
    assert len(state.card_history(seventh)) == 6
    alone = seventh.model_copy(update={"card": seventh.card.model_copy(update={"lookback_fingerprints": ()})})
    assert len(state.card_history(alone)) == 3


def test_get_and_fraud_alerts_keep_their_shape_and_show_no_fingerprint_or_key_version(rotating):
    pipe = rotating
    before = [use_card(pipe, i) for i in range(3)]
    rotate_key(pipe)
    secrets.clear_cache()
    after = [use_card(pipe, i) for i in range(3, 7)]
    first, last = pipe.get("mid-0")["json"], pipe.get("mid-6")["json"]
    assert set(first) == set(last)
    assert first["card"] == last["card"] == {"bin": "411111", "last4": "1111"}
    alerts = pipe.published(pipe.fraud_capture_url)
    assert {a["transaction_id"] for a in alerts} == {"mid-5", "mid-6"}
    for text in [json.dumps(first), json.dumps(last), *(json.dumps(a) for a in alerts)]:
        for message in [*before, *after]:
            assert message["card"]["fingerprint"] not in text
            assert message["card"]["key_version"] not in text
        assert "fingerprint" not in text and "key_version" not in text and "4111111111111111" not in text


def test_an_honest_retry_across_the_switch_gets_its_original_answer_and_a_changed_one_409(rotating):
    pipe = rotating
    body = transaction(transaction_id="retry-across", amount="31.00")
    first = pipe.post(body)
    assert first["statusCode"] == 202
    rotate_key(pipe)
    secrets.clear_cache()
    again = pipe.post(body)
    assert again["statusCode"] == 202 and again["json"] == first["json"]
    changed = pipe.post({**body, "amount": "32.00"})
    assert changed["statusCode"] == 409
    assert changed["json"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_retry_whose_guard_key_left_the_ring_is_refused_409(rotating, monkeypatch):
    pipe = rotating
    body = transaction(transaction_id="retry-forgotten", amount="33.00")
    assert pipe.post(body)["statusCode"] == 202
    guards = pipe.ddb.Table(pipe.idempotency_table)
    guards.update_item(
        Key={"id": "transaction#retry-forgotten"},
        UpdateExpression="SET key_version = :v",
        ExpressionAttributeValues={":v": "000000000000"},
    )
    refused = pipe.post(body)
    assert refused["statusCode"] == 409
    assert "can no longer be verified" in refused["json"]["message"]


def test_a_retry_of_a_request_accepted_before_rotation_existed_still_matches(rotating):
    """Guards written before key versions existed carry none: they were keyed with the key primary
    at their record's time."""
    pipe = rotating
    body = transaction(transaction_id="retry-legacy", amount="34.00")
    assert pipe.post(body)["statusCode"] == 202
    pipe.ddb.Table(pipe.idempotency_table).update_item(
        Key={"id": "transaction#retry-legacy"}, UpdateExpression="REMOVE key_version"
    )
    rotate_key(pipe)
    secrets.clear_cache()
    assert pipe.post(body)["statusCode"] == 202
    assert pipe.post({**body, "amount": "35.00"})["statusCode"] == 409


def test_a_re_enqueued_received_record_carries_the_same_fingerprints(rotating, monkeypatch):
    """An enqueue failure leaves the record RECEIVED; the retry rebuilds the message from it, with
    the key version and lookback fingerprints it had."""
    from tap_pipeline.data import queue

    pipe = rotating
    for i in range(2):
        use_card(pipe, i)
    rotate_key(pipe)
    secrets.clear_cache()
    body = transaction(transaction_id="mid-requeue", amount="41.00")

    def unreachable(message):
        raise ConnectionError("sqs unreachable")

    real = queue.send_transaction
    monkeypatch.setattr(queue, "send_transaction", unreachable)
    assert pipe.post(body)["statusCode"] == 503
    monkeypatch.setattr(queue, "send_transaction", real)
    assert pipe.post(body)["statusCode"] == 202
    (message,) = [json.loads(m["Body"]) for m in pipe.drain(pipe.queue_url)]
    record = pipe.record("mid-requeue")
    assert message["card"]["key_version"] == record["card_key_version"]
    assert message["card"]["lookback_fingerprints"] == record["card_lookback_fingerprints"] != []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=st.integers(min_value=1, max_value=4),
    between=st.integers(min_value=0, max_value=3),
    after=st.integers(min_value=1, max_value=4),
)
def test_counts_are_continuous_across_one_or_two_rotations(before, between, after):
    """Any split of a card's uses around one rotation, or two (the second within the hour, so the
    detector merges three fingerprints): the n-th use always counts n, each event stored once."""
    with pytest.MonkeyPatch.context() as patch:
        apply_environment(patch.setenv)
        with mock_aws():
            pipe = build_pipeline(patch.setenv)
            with rotation_enabled(pipe):
                plan = ["use"] * before + ["rotate"] + ["use"] * between
                plan += (["rotate"] if between else []) + ["use"] * after
                uses = 0
                for action in plan:
                    if action == "rotate":
                        rotate_key(pipe)
                        secrets.clear_cache()
                        continue
                    message = use_card(pipe, uses % len(AMOUNTS), transaction_id=f"prop-{uses}")
                    uses += 1
                    record = pipe.record(message["transaction_id"])
                    assert int(record["features"]["card_count_hour"]) == uses
                rotations = plan.count("rotate")
                assert len(message["card"]["lookback_fingerprints"]) == rotations
                events = card_events(pipe)
                assert sorted(t for ids in events.values() for t in ids) == sorted(
                    f"prop-{i}" for i in range(uses)
                )
            clear_package_caches()

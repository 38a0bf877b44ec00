"""The moto corrections in `tap_local.moto_fixes` change what a call costs, never what it answers.

Every scenario here runs twice in one process, each time in a fresh ``moto.mock_aws()``: once on moto
as released and once with `moto_fixes.install()`; the two observable outcomes (API answers, errors
with their cancellation reasons, whole-table scans afterwards) must be equal. Where a correction is
about cost, the test counts the work (deep copies) instead of timing it. A fixture uninstalls the
corrections after each test, so every other test in the run sees moto as released.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto.backends
import moto.dynamodb.models
import moto.sqs.models
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.common_models import BaseModel
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.moto_api._internal import mock_random
from moto.sqs.models import SQSBackend, sqs_backends

from tap_local import moto_fixes
from tap_local.moto_fixes import sqs_retention

REGION = "us-east-2"
SEED = 20240609


def current_functions() -> dict[str, Any]:
    return {
        "DynamoDBBackend.transact_write_items": DynamoDBBackend.transact_write_items,
        "Table.query": Table.query,
        "Table.all_items": Table.all_items,
        "SQSBackend.is_message_valid_based_on_retention_period": (
            SQSBackend.is_message_valid_based_on_retention_period
        ),
        "moto.backends.list_of_moto_modules": moto.backends.list_of_moto_modules,
        "BaseJSONSerializer._serialize_type_structure": BaseJSONSerializer._serialize_type_structure,
        "Item.__init__": Item.__init__,
        "BaseModel.__new__": BaseModel.__new__,
    }


# moto's own functions, taken before any test can install a correction (checked in
# test_originals_are_moto_as_released, so a stray install elsewhere cannot fool the identity tests).
ORIGINALS: dict[str, Any] = current_functions()


# --------------------------------------------------------------------------------------------------
# Fixtures: fake credentials, and the released-versus-patched runner
# --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override: everything stays inside moto, never real AWS."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def released_moto() -> Iterator[None]:
    """Starts and ends the test on moto as released, whatever the test installed in between."""
    moto_fixes.uninstall()
    try:
        yield
    finally:
        moto_fixes.uninstall()


@pytest.fixture
def installed(released_moto: None) -> Iterator[None]:
    """The corrections installed for this test only."""
    moto_fixes.install()
    yield


Scenario = Callable[[], Any]


@pytest.fixture
def both_ways(released_moto: None) -> Callable[[Scenario], tuple[Any, Any]]:
    """``run(scenario) -> (released, patched)``: the scenario's outcome on moto as released and on
    moto with the corrections, each in its own fresh ``mock_aws()`` with the same random seed."""

    def run(scenario: Scenario) -> tuple[Any, Any]:
        outcomes = []
        for patched in (False, True):
            if patched:
                moto_fixes.install()
            else:
                moto_fixes.uninstall()
            mock_random.seed(SEED)
            try:
                with mock_aws():
                    outcomes.append(scenario())
            finally:
                moto_fixes.uninstall()
        return outcomes[0], outcomes[1]

    return run


# --------------------------------------------------------------------------------------------------
# Helpers: clients, tables, canonical views of what moto holds
# --------------------------------------------------------------------------------------------------


def dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int | str) -> dict[str, str]:
    return {"N": str(value)}


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """A response minus ResponseMetadata (request ids and headers differ between any two calls)."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def canonical(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def scan_sorted(client: Any, table: str, index: str | None = None) -> list[dict[str, Any]]:
    """Every item of a table (or index), all Scan pages, in a canonical order: the table's contents,
    independent of the order moto happens to hand them out in."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    if index:
        kwargs["IndexName"] = index
    else:
        kwargs["ConsistentRead"] = True
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=canonical)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def error_of(error: ClientError) -> dict[str, Any]:
    """Everything a caller can see of a failed call, request ids aside."""
    return {
        "type": type(error).__name__,
        "code": error.response["Error"]["Code"],
        "message": error.response["Error"]["Message"],
        "cancellation_reasons": error.response.get("CancellationReasons"),
    }


def attempt(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return {"response": without_metadata(call())}
    except ClientError as error:
        return {"error": error_of(error)}


def backend_table(name: str) -> Table:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[name]


def partition_keys(name: str) -> list[str]:
    """The partitions moto keeps for a table, empty ones included (a rolled-back Put into a new
    partition must not leave one behind)."""
    return sorted(canonical(key.to_json()) for key in backend_table(name).items)


# Two tables, as in the pipeline: one keyed by partition only, one by partition and sort key with a
# global and a local secondary index (indexes are derived from the items, so they must follow a
# rollback too).
ACCOUNTS = "accounts"
LEDGER = "ledger"
NUMBERED = "numbered"
BY_STATUS = "by_status"
BY_AMOUNT = "by_amount"
STATUSES = ("approved", "declined", "review")


def create_accounts(client: Any, stream: bool = False) -> None:
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    client.create_table(
        TableName=ACCOUNTS,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def create_ledger(client: Any, stream: bool = False) -> None:
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    client.create_table(
        TableName=LEDGER,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "amount", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": BY_STATUS,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "amount", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": BY_AMOUNT,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "amount", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def account_item(rng: random.Random, index: int) -> dict[str, Any]:
    """Varied attribute types, so a rollback that restored a shallow copy would show."""
    return {
        "pk": s(f"a{index}"),
        "balance": n(rng.randint(0, 10_000)),
        "label": s(f"label-{index}"),
        "tags": {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})},
        "profile": {"M": {"level": n(rng.randint(1, 5)), "flags": {"L": [{"BOOL": rng.random() < 0.5}]}}},
        "history": {"L": [n(rng.randint(0, 99)) for _ in range(rng.randint(1, 3))]},
        "note": s("to be removed by an update"),
    }


def ledger_item(rng: random.Random, partition: int, sort: int) -> dict[str, Any]:
    return {
        "pk": s(f"p{partition}"),
        "sk": s(f"t{sort:03d}"),
        "status": s(rng.choice(STATUSES)),
        "amount": n(rng.randint(1, 500)),
        "detail": {"M": {"seen": n(rng.randint(0, 3)), "notes": {"L": [s("x")]}}},
    }


def seed_world(stream: bool = False, partitions: int = 4, per_partition: int = 6) -> None:
    """Both tables, filled from a seeded generator (the same data on both runs)."""
    client = dynamodb()
    create_accounts(client, stream)
    create_ledger(client, stream)
    rng = random.Random(SEED)
    for index in range(6):
        client.put_item(TableName=ACCOUNTS, Item=account_item(rng, index))
    for partition in range(partitions):
        for sort in range(1, per_partition + 1):
            client.put_item(TableName=LEDGER, Item=ledger_item(rng, partition, sort))


def world_contents() -> dict[str, Any]:
    """Everything a client can read back from both tables (moto's internal partition map is checked
    separately, in test_rolled_back_put_into_new_partition_leaves_no_partition)."""
    client = dynamodb()
    return {
        "accounts": scan_sorted(client, ACCOUNTS),
        "ledger": scan_sorted(client, LEDGER),
        "ledger_by_status": scan_sorted(client, LEDGER, BY_STATUS),
        "ledger_by_amount": scan_sorted(client, LEDGER, BY_AMOUNT),
    }


# --------------------------------------------------------------------------------------------------
# TransactWriteItems actions
# --------------------------------------------------------------------------------------------------


def account_key(name: str) -> dict[str, Any]:
    return {"pk": s(name)}


def ledger_key(partition: str, sort: str) -> dict[str, Any]:
    return {"pk": s(partition), "sk": s(sort)}


def put(table: str, item: dict[str, Any], condition: str | None = None, **extra: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": table, "Item": item, **extra}
    if condition:
        action["ConditionExpression"] = condition
    return {"Put": action}


def update(
    table: str,
    key: dict[str, Any],
    expression: str,
    values: dict[str, Any] | None = None,
    condition: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": table, "Key": key, "UpdateExpression": expression, **extra}
    if values:
        action["ExpressionAttributeValues"] = values
    if condition:
        action["ConditionExpression"] = condition
    return {"Update": action}


def delete(table: str, key: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": table, "Key": key}
    if condition:
        action["ConditionExpression"] = condition
    return {"Delete": action}


def check(table: str, key: dict[str, Any], condition: str, return_old: bool = False) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": table, "Key": key, "ConditionExpression": condition}
    if return_old:
        action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"ConditionCheck": action}


NEW_ACCOUNT = {"pk": s("a9"), "balance": n(1), "label": s("new")}
REPLACED_ACCOUNT = {"pk": s("a0"), "balance": n(-1), "label": s("replaced")}
# Changes every kind of attribute of an existing item: moto's update mutates the stored Item in
# place, so only a real snapshot can give the old one back.
BIG_UPDATE = update(
    ACCOUNTS,
    account_key("a1"),
    "SET balance = balance + :d, profile.#level = :l, history = list_append(history, :h), "
    "label = :label ADD tags :t REMOVE note",
    {":d": n(7), ":l": n(99), ":h": {"L": [n(1000)]}, ":label": s("changed"), ":t": {"SS": ["zz"]}},
    ExpressionAttributeNames={"#level": "level"},
)


def account_writes() -> list[dict[str, Any]]:
    """Put/Update/Delete on existing and on absent items of the partition-only table."""
    return [
        put(ACCOUNTS, REPLACED_ACCOUNT),
        put(ACCOUNTS, NEW_ACCOUNT),
        BIG_UPDATE,
        update(ACCOUNTS, account_key("a8"), "SET balance = :z", {":z": n(0)}),
        delete(ACCOUNTS, account_key("a2")),
        delete(ACCOUNTS, account_key("a7")),
    ]


def ledger_writes() -> list[dict[str, Any]]:
    """The same on the partition+sort table, into existing and into brand-new partitions."""
    return [
        put(LEDGER, {**ledger_key("p0", "t001"), "status": s("review"), "amount": n(1)}),
        put(LEDGER, {**ledger_key("p0", "t099"), "status": s("approved"), "amount": n(2)}),
        put(LEDGER, {**ledger_key("p9", "t001"), "status": s("approved"), "amount": n(3)}),
        update(
            LEDGER,
            ledger_key("p1", "t002"),
            "SET amount = amount + :d, #s = :s, detail.seen = :one",
            {":d": n(5), ":s": s("declined"), ":one": n(1)},
            ExpressionAttributeNames={"#s": "status"},
        ),
        update(LEDGER, ledger_key("p8", "t001"), "SET amount = :a", {":a": n(4)}),
        delete(LEDGER, ledger_key("p2", "t003")),
        delete(LEDGER, ledger_key("p2", "t777")),
        delete(LEDGER, ledger_key("p7", "t001")),
    ]


FAILS = "attribute_not_exists(pk)"  # on an item that exists
FAILS_ABSENT = "attribute_exists(pk)"  # on an item that does not exist

# Transactions that moto refuses after having applied earlier actions: each must leave both tables
# exactly as they were, and exactly as released moto leaves them.
REFUSED_TRANSACTIONS: dict[str, list[dict[str, Any]]] = {
    "partition_only_table_last_condition_fails": [
        *account_writes(),
        put(ACCOUNTS, {"pk": s("a3"), "label": s("never")}, FAILS),
    ],
    "sorted_table_last_condition_fails": [
        *ledger_writes(),
        check(LEDGER, ledger_key("p3", "t001"), FAILS),
    ],
    "both_tables_last_update_fails_returning_old_item": [
        *account_writes(),
        *ledger_writes(),
        update(
            LEDGER,
            ledger_key("p3", "t002"),
            "SET amount = :a",
            {":a": n(1)},
            FAILS,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    ],
    "last_delete_condition_fails_on_absent_item": [
        *ledger_writes(),
        delete(ACCOUNTS, account_key("a6"), FAILS_ABSENT),
    ],
    "first_action_fails_later_ones_still_run": [
        check(ACCOUNTS, account_key("a4"), FAILS, return_old=True),
        *account_writes(),
        *ledger_writes(),
    ],
    "condition_checks_only": [
        check(ACCOUNTS, account_key("a0"), "attribute_exists(pk)"),
        check(LEDGER, ledger_key("p1", "t001"), FAILS, return_old=True),
        check(LEDGER, ledger_key("p5", "t001"), FAILS_ABSENT, return_old=True),
    ],
    "action_on_missing_table_is_cancelled": [
        *account_writes(),
        delete("no_such_table", account_key("a0")),
    ],
    "validation_two_actions_on_one_item": [
        *account_writes(),
        *ledger_writes(),
        delete(ACCOUNTS, account_key("a1")),  # a1 was updated above
    ],
    "validation_put_then_update_of_one_new_item": [
        *ledger_writes(),
        update(LEDGER, ledger_key("p9", "t001"), "SET amount = :a", {":a": n(9)}),
    ],
    "validation_operand_type_in_last_update": [
        *account_writes(),
        *ledger_writes(),
        update(ACCOUNTS, account_key("a3"), "SET label = label + :d", {":d": n(1)}),
    ],
}

# An action naming two operations: released moto raises this one outside its rollback handling and
# keeps the writes of the earlier actions; the corrected one writes nothing, as DynamoDB does.
TWO_OPERATIONS_IN_ONE_ACTION = [
    *account_writes(),
    {**put(ACCOUNTS, {"pk": s("a5"), "label": s("x")}), **delete(ACCOUNTS, account_key("a4"))},
]


def refused_transaction_outcome(transact_items: list[dict[str, Any]]) -> dict[str, Any]:
    seed_world()
    before = world_contents()
    result = attempt(lambda: dynamodb().transact_write_items(TransactItems=transact_items))
    return {"result": result, "before": before, "after": world_contents()}


@pytest.mark.parametrize("name", list(REFUSED_TRANSACTIONS))
def test_refused_transaction_leaves_the_same_tables_as_released_moto(
    both_ways: Callable[[Scenario], tuple[Any, Any]], name: str
) -> None:
    """A refused transaction: same error (type, code, message, CancellationReasons) and the same
    table contents as released moto, and those contents are the ones from before the call."""
    transact_items = REFUSED_TRANSACTIONS[name]
    released, patched = both_ways(lambda: refused_transaction_outcome(transact_items))

    assert "error" in released["result"], released["result"]
    assert patched["result"] == released["result"]
    assert patched["after"] == released["after"]
    assert released["before"] == patched["before"]
    assert patched["after"] == patched["before"]
    assert released["after"] == released["before"]


def test_action_with_two_operations_writes_nothing_unlike_released_moto(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """The one intended difference (see transact_snapshot's docstring): same error, but the earlier
    actions' writes are rolled back too, where released moto keeps them."""
    released, patched = both_ways(lambda: refused_transaction_outcome(TWO_OPERATIONS_IN_ONE_ACTION))

    assert patched["result"] == released["result"]
    assert patched["result"]["error"]["code"] == "ValidationException"
    assert patched["after"] == patched["before"]
    assert released["after"] != released["before"]  # released moto's behaviour, pinned


def test_cancellation_reasons_are_reported_per_action(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """Spot-check what the comparison above compares: a cancellation names the failing action, with
    the old item when asked, and None for the others (both ways)."""
    transact_items = REFUSED_TRANSACTIONS["condition_checks_only"]
    released, patched = both_ways(lambda: refused_transaction_outcome(transact_items))

    for outcome in (released, patched):
        error = outcome["result"]["error"]
        assert error["code"] == "TransactionCanceledException"
        reasons = error["cancellation_reasons"]
        assert [reason["Code"] for reason in reasons] == [
            "None",
            "ConditionalCheckFailed",
            "ConditionalCheckFailed",
        ]
        assert reasons[1]["Item"]["pk"] == s("p1")
        assert "Item" not in reasons[2]
    assert patched == released


def successful_transaction_outcome() -> dict[str, Any]:
    seed_world()
    before = world_contents()
    transact_items = [
        *account_writes(),
        *ledger_writes(),
        check(ACCOUNTS, account_key("a3"), "attribute_exists(pk)"),
        put(ACCOUNTS, {"pk": s("a10"), "label": s("guarded")}, "attribute_not_exists(pk)"),
    ]
    result = attempt(lambda: dynamodb().transact_write_items(TransactItems=transact_items))
    return {"result": result, "before": before, "after": world_contents()}


def test_successful_transaction_writes_the_same_items(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    released, patched = both_ways(successful_transaction_outcome)

    assert "response" in released["result"], released["result"]
    assert patched == released
    assert patched["after"] != patched["before"]


def updated_item_rollback_outcome() -> dict[str, Any]:
    seed_world()
    client = dynamodb()
    read = {"TableName": ACCOUNTS, "Key": account_key("a1"), "ConsistentRead": True}
    before = client.get_item(**read)["Item"]
    result = attempt(
        lambda: client.transact_write_items(
            TransactItems=[BIG_UPDATE, check(ACCOUNTS, account_key("a3"), FAILS)]
        )
    )
    after = client.get_item(**read)["Item"]
    stored = backend_table(ACCOUNTS).get_item(DynamoType(s("a1")))
    assert stored is not None
    return {"result": result, "before": before, "after": after, "stored": stored.to_json()}


def test_rolled_back_update_restores_the_item_exactly(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """moto's Update changes the stored Item in place; after a cancellation every attribute (number,
    string, set, nested map, list, and the removed one) is back, as on released moto."""
    released, patched = both_ways(updated_item_rollback_outcome)

    assert patched == released
    assert patched["after"] == patched["before"]
    assert patched["stored"]["Attributes"] == patched["before"]


def new_partition_rollback_outcome() -> dict[str, Any]:
    seed_world()
    client = dynamodb()
    partitions_before = partition_keys(LEDGER)
    result = attempt(
        lambda: client.transact_write_items(
            TransactItems=[
                put(LEDGER, {**ledger_key("p9", "t001"), "status": s("approved"), "amount": n(3)}),
                put(LEDGER, {**ledger_key("p9", "t002"), "status": s("approved"), "amount": n(4)}),
                update(LEDGER, ledger_key("p8", "t001"), "SET amount = :a", {":a": n(4)}),
                check(LEDGER, ledger_key("p0", "t001"), FAILS),
            ]
        )
    )
    return {
        "result": result,
        "partitions_before": partitions_before,
        "partitions_after": partition_keys(LEDGER),
        "scan": scan_sorted(client, LEDGER),
        "query_new_partition": client.query(
            TableName=LEDGER, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": s("p9")}
        )["Items"],
    }


def test_rolled_back_put_into_new_partition_leaves_no_partition(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    released, patched = both_ways(new_partition_rollback_outcome)

    assert patched == released
    assert patched["partitions_after"] == patched["partitions_before"]
    assert canonical(s("p9")) not in patched["partitions_after"]
    assert patched["query_new_partition"] == []


def stream_records(table: str) -> list[dict[str, Any]]:
    """The table's stream as a consumer reads it, minus creation times and SizeBytes (moto measures
    the record with its timestamp in it: both clock-dependent). Event ids stay: they come from
    moto's seeded random source, so both runs must draw them alike. (The endpoint is given because
    this botocore sends ARN calls to an account-specific host that mock_aws does not route.)"""
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )
    arn = dynamodb().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    for record in records:
        record["dynamodb"].pop("ApproximateCreationDateTime", None)
        record["dynamodb"].pop("SizeBytes", None)
    return records


def stream_outcome() -> dict[str, Any]:
    seed_world(stream=True, partitions=2, per_partition=2)
    client = dynamodb()
    refused = attempt(
        lambda: client.transact_write_items(
            TransactItems=[
                *account_writes(),
                *ledger_writes(),
                check(LEDGER, ledger_key("p0", "t002"), FAILS),
            ]
        )
    )
    records_after_refusal = {ACCOUNTS: stream_records(ACCOUNTS), LEDGER: stream_records(LEDGER)}
    client.transact_write_items(TransactItems=[put(ACCOUNTS, NEW_ACCOUNT), BIG_UPDATE])
    return {
        "refused": refused,
        "records_after_refusal": records_after_refusal,
        "records_after_success": {ACCOUNTS: stream_records(ACCOUNTS), LEDGER: stream_records(LEDGER)},
    }


def test_refused_transaction_leaves_the_same_stream_records(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """Released moto's table copy also holds the stream; the correction drops the records a refused
    call appended. The next write's sequence numbers must then match too."""
    released, patched = both_ways(stream_outcome)

    assert patched == released
    assert len(patched["records_after_refusal"][ACCOUNTS]) == 6  # the seeded puts only
    assert len(patched["records_after_success"][ACCOUNTS]) == 8


# --------------------------------------------------------------------------------------------------
# TransactWriteItems cost: no whole-table copy
# --------------------------------------------------------------------------------------------------


def count_copies_during_transaction(monkeypatch: pytest.MonkeyPatch, items_in_table: int) -> dict[str, int]:
    """How many Tables and Items are deep-copied by one 2-action transaction (a Put of a new item and
    an Update of an existing one, the pipeline's pattern) on a table holding `items_in_table`, then
    by one refused transaction. Counted, not timed."""
    counts = {"tables": 0, "items": 0}
    original_item_deepcopy = Item.__deepcopy__

    def counting_table_deepcopy(table: Table, memo: dict[int, Any]) -> Table:
        counts["tables"] += 1
        clone = Table.__new__(Table)
        memo[id(table)] = clone
        clone.__dict__.update(copy.deepcopy(table.__dict__, memo))
        return clone

    def counting_item_deepcopy(item: Item, memo: dict[int, Any]) -> Item:
        counts["items"] += 1
        return original_item_deepcopy(item, memo)

    with mock_aws():
        client = dynamodb()
        create_ledger(client)
        rng = random.Random(SEED)
        for sort in range(items_in_table):
            client.put_item(TableName=LEDGER, Item=ledger_item(rng, sort % 7, sort))
        with monkeypatch.context() as patch:
            patch.setattr(Table, "__deepcopy__", counting_table_deepcopy, raising=False)
            patch.setattr(Item, "__deepcopy__", counting_item_deepcopy)
            client.transact_write_items(
                TransactItems=[
                    put(LEDGER, {**ledger_key("p99", "t001"), "status": s("approved"), "amount": n(1)}),
                    update(LEDGER, ledger_key("p0", "t000"), "SET amount = :a", {":a": n(2)}),
                ]
            )
            with pytest.raises(ClientError):
                client.transact_write_items(
                    TransactItems=[
                        put(LEDGER, {**ledger_key("p98", "t001"), "status": s("approved"), "amount": n(1)}),
                        check(LEDGER, ledger_key("p0", "t000"), FAILS),
                    ]
                )
        assert len(scan_sorted(client, LEDGER)) == items_in_table + 1
    return counts


def test_released_moto_copies_the_whole_table(released_moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The counters see the cost the correction removes (else the next test would prove nothing)."""
    counts = count_copies_during_transaction(monkeypatch, 200)

    assert counts["tables"] == 4  # once per action naming the table, in each of the two calls
    assert counts["items"] >= 2 * 200


def test_patched_transaction_copies_only_the_items_it_addresses(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the correction, no Table is deep-copied and the Items copied do not depend on how many
    the table holds: the cost of a transaction no longer grows with the data stored."""
    small = count_copies_during_transaction(monkeypatch, 20)
    large = count_copies_during_transaction(monkeypatch, 400)

    assert small["tables"] == large["tables"] == 0
    assert small["items"] == large["items"]
    assert large["items"] <= 6  # 2 snapshots + moto's own per-update copy, per transaction


def test_table_copy_is_skipped_only_inside_a_transaction(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's module-level ``copy.deepcopy`` returns the live Table only while a patched transaction
    runs (its whole-table backup is then a no-op); before, after, and after a refused transaction,
    it is a real deep copy again."""
    seen_inside: list[bool] = []
    original_put_item = Table.put_item

    def spying_put_item(table: Table, *args: Any, **kwargs: Any) -> Any:
        seen_inside.append(moto.dynamodb.models.copy.deepcopy(table) is table)
        return original_put_item(table, *args, **kwargs)

    with mock_aws():
        client = dynamodb()
        create_ledger(client)
        client.put_item(TableName=LEDGER, Item={**ledger_key("p0", "t000"), "amount": n(1)})
        table = backend_table(LEDGER)
        assert moto.dynamodb.models.copy.deepcopy(table) is not table
        monkeypatch.setattr(Table, "put_item", spying_put_item)
        client.transact_write_items(TransactItems=[put(LEDGER, {**ledger_key("p1", "t000"), "amount": n(2)})])
        assert moto.dynamodb.models.copy.deepcopy(table) is not table
        with pytest.raises(ClientError):
            client.transact_write_items(
                TransactItems=[
                    put(LEDGER, {**ledger_key("p2", "t000"), "amount": n(2)}),
                    check(LEDGER, ledger_key("p0", "t000"), FAILS),
                ]
            )
        assert moto.dynamodb.models.copy.deepcopy(table) is not table
        client.put_item(TableName=LEDGER, Item={**ledger_key("p3", "t000"), "amount": n(3)})

    assert seen_inside == [True, True, False]
    # Other uses of `copy` in moto's module pass through to the real module.
    assert moto.dynamodb.models.copy.copy is copy.copy
    assert moto.dynamodb.models.copy.deepcopy([1, [2]]) == [1, [2]]


# --------------------------------------------------------------------------------------------------
# Query reads one partition
# --------------------------------------------------------------------------------------------------


def query_pages(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """All pages of a Query, following LastEvaluatedKey as a client would."""
    pages: list[dict[str, Any]] = []
    while True:
        page = without_metadata(client.query(**kwargs))
        pages.append(page)
        if "LastEvaluatedKey" not in page or len(pages) > 50:
            return pages
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def seed_query_world() -> None:
    """Several partitions of uneven size, plus a partition-only and a numeric-key table."""
    client = dynamodb()
    create_accounts(client)
    create_ledger(client)
    client.create_table(
        TableName=NUMBERED,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(SEED)
    for index in range(8):
        client.put_item(TableName=ACCOUNTS, Item=account_item(rng, index))
    for partition in range(5):
        sorts = rng.sample(range(1, 40), k=3 + 2 * partition)  # inserted out of order
        for sort in sorts:
            client.put_item(TableName=LEDGER, Item=ledger_item(rng, partition, sort))
    for number in (1, 2, 10, 25):
        client.put_item(TableName=NUMBERED, Item={"pk": n(number), "v": s(f"v{number}")})


def by_partition(partition: str, condition: str = "", **values: Any) -> dict[str, Any]:
    return {
        "TableName": LEDGER,
        "KeyConditionExpression": "pk = :p" + (f" AND {condition}" if condition else ""),
        "ExpressionAttributeValues": {":p": s(partition), **values},
    }


QUERIES: dict[str, dict[str, Any]] = {
    "partition": by_partition("p3"),
    "missing_partition": by_partition("p42"),
    "consistent_read": {**by_partition("p2"), "ConsistentRead": True},
    "sort_between": by_partition("p4", "sk BETWEEN :lo AND :hi", **{":lo": s("t005"), ":hi": s("t030")}),
    "sort_begins_with": by_partition("p4", "begins_with(sk, :b)", **{":b": s("t01")}),
    "sort_greater_descending": {
        **by_partition("p3", "sk > :lo", **{":lo": s("t010")}),
        "ScanIndexForward": False,
    },
    "descending": {**by_partition("p4"), "ScanIndexForward": False},
    "limit_paginated": {**by_partition("p4"), "Limit": 2},
    "limit_paginated_descending_with_sort_condition": {
        **by_partition("p4", "sk >= :lo", **{":lo": s("t003")}),
        "Limit": 2,
        "ScanIndexForward": False,
    },
    "limit_paginated_with_filter": {
        **by_partition("p4", **{":a": n(200)}),
        "FilterExpression": "amount > :a",
        "Limit": 3,
    },
    "filter_on_nested_attribute": {
        **by_partition("p3", **{":x": n(1)}),
        "FilterExpression": "detail.seen >= :x",
    },
    "projection": {**by_partition("p2"), "ProjectionExpression": "sk, amount, detail.seen"},
    "count_only": {**by_partition("p4"), "Select": "COUNT"},
    "gsi": {
        "TableName": LEDGER,
        "IndexName": BY_STATUS,
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": s("approved")},
    },
    "gsi_range_paginated": {
        "TableName": LEDGER,
        "IndexName": BY_STATUS,
        "KeyConditionExpression": "#s = :s AND amount > :a",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": s("declined"), ":a": n(100)},
        "Limit": 2,
        "ScanIndexForward": False,
    },
    "lsi_paginated": {
        "TableName": LEDGER,
        "IndexName": BY_AMOUNT,
        "KeyConditionExpression": "pk = :p AND amount < :a",
        "ExpressionAttributeValues": {":p": s("p4"), ":a": n(400)},
        "Limit": 3,
    },
    "partition_only_table": {
        "TableName": ACCOUNTS,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": s("a3")},
    },
    "partition_only_table_missing": {
        "TableName": ACCOUNTS,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": s("a99")},
    },
    "partition_only_table_filtered_out": {
        "TableName": ACCOUNTS,
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "balance < :b",
        "ExpressionAttributeValues": {":p": s("a3"), ":b": n(-1)},
    },
    "numeric_key_written_differently": {
        "TableName": NUMBERED,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": n("10.0")},
    },
    "key_of_the_wrong_type": by_partition("p1") | {"ExpressionAttributeValues": {":p": n(1)}},
}


def query_outcome(query: dict[str, Any]) -> dict[str, Any]:
    seed_query_world()
    client = dynamodb()
    try:
        result: Any = query_pages(client, **query)
    except ClientError as error:
        result = {"error": error_of(error)}
    # A scan afterwards: the partition scope must not outlive the query.
    return {"query": result, "scan_after": scan_sorted(client, query["TableName"])}


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_answers_like_released_moto(
    both_ways: Callable[[Scenario], tuple[Any, Any]], name: str
) -> None:
    """Items, order, counts, LastEvaluatedKey of every page: identical with the partition shortcut."""
    query = QUERIES[name]
    released, patched = both_ways(lambda: query_outcome(query))

    assert patched == released


def test_queries_cover_what_they_claim(both_ways: Callable[[Scenario], tuple[Any, Any]]) -> None:
    """The comparison above would pass vacuously on empty answers: check a few are not."""
    paginated, _ = both_ways(lambda: query_outcome(QUERIES["limit_paginated"]))
    numeric, _ = both_ways(lambda: query_outcome(QUERIES["numeric_key_written_differently"]))

    assert len(paginated["query"]) >= 3
    assert all(page["Count"] <= 2 for page in paginated["query"])
    assert numeric["query"][0]["Items"] == [{"pk": n(10), "v": s("v10")}]


# --------------------------------------------------------------------------------------------------
# SQS retention check
# --------------------------------------------------------------------------------------------------


def sqs_backend() -> SQSBackend:
    return sqs_backends[DEFAULT_ACCOUNT_ID][REGION]


def retention_outcome() -> dict[str, Any]:
    """Three queues: retention of 60 s set at creation, 90 s set afterwards, and the default (4 days).
    Each gets a fresh message, one sent "two minutes ago" (its sent_timestamp moved back in moto's
    backend), and another fresh one; then two receives. (moto stops a batch at the first expired
    message it meets, leaving it in flight; the second receive reaches the message behind it.)"""
    sqs = boto3.client("sqs", region_name=REGION)
    urls = {
        "at_creation": sqs.create_queue(QueueName="at_creation", Attributes={"MessageRetentionPeriod": "60"})[
            "QueueUrl"
        ],
        "set_later": sqs.create_queue(QueueName="set_later")["QueueUrl"],
        "default": sqs.create_queue(QueueName="default")["QueueUrl"],
    }
    sqs.set_queue_attributes(QueueUrl=urls["set_later"], Attributes={"MessageRetentionPeriod": "90"})
    outcome: dict[str, Any] = {}
    for name, url in urls.items():
        sqs.send_message(QueueUrl=url, MessageBody="fresh-1")
        old_id = sqs.send_message(QueueUrl=url, MessageBody="old")["MessageId"]
        sqs.send_message(QueueUrl=url, MessageBody="fresh-2")
        for message in sqs_backend().queues[name]._messages:
            if message.id == old_id:
                message.sent_timestamp -= 120_000
        receives = [sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10) for _ in range(2)]
        outcome[name] = {
            "received": [[message["Body"] for message in r.get("Messages", [])] for r in receives],
            "kept": sorted(message.body for message in sqs_backend().queues[name]._messages),
        }
    return outcome


def test_expired_messages_are_dropped_like_released_moto(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    released, patched = both_ways(retention_outcome)

    assert patched == released
    assert patched["at_creation"]["received"] == [["fresh-1"], ["fresh-2"]]
    assert patched["set_later"]["received"] == [["fresh-1"], ["fresh-2"]]
    assert patched["default"]["received"] == [["fresh-1", "old", "fresh-2"], []]


@pytest.mark.parametrize("retention", [60, 90, 345_600, 1_209_600])
@pytest.mark.parametrize("offset_ms", [-1_000, -1, 0, 1, 1_000])
def test_retention_check_agrees_at_the_boundary(
    monkeypatch: pytest.MonkeyPatch, retention: int, offset_ms: int
) -> None:
    """With the clock frozen, both checks give the same answer just before, at, and just after the
    end of the retention period (a message whose retention ends exactly now is expired)."""
    now = 1_700_000_000.0
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda: now)
    monkeypatch.setattr(sqs_retention, "unix_time", lambda: now)
    original = ORIGINALS["SQSBackend.is_message_valid_based_on_retention_period"]
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": str(retention)})[
            "QueueUrl"
        ]
        sqs.send_message(QueueUrl=url, MessageBody="m")
        backend = sqs_backend()
        message = backend.queues["q"]._messages[0]
        message.sent_timestamp = int((now - retention) * 1000) + offset_ms

        released = original(backend, "q", message)
        patched = sqs_retention._is_message_valid_based_on_retention_period(backend, "q", message)

    assert patched == released == (offset_ms > 0)


# --------------------------------------------------------------------------------------------------
# Backend lookup
# --------------------------------------------------------------------------------------------------


def test_module_list_is_the_same_once_cached(released_moto: None) -> None:
    released = list(moto.backends.list_of_moto_modules())
    moto_fixes.install()

    assert list(moto.backends.list_of_moto_modules()) == released
    assert list(moto.backends.list_of_moto_modules()) == released  # a fresh iterator each call
    assert "dynamodb" in moto.backends.list_of_moto_modules()
    assert "sqs" in moto.backends.list_of_moto_modules()
    assert "no_such_service" not in moto.backends.list_of_moto_modules()
    moto_fixes.uninstall()
    assert list(moto.backends.list_of_moto_modules()) == released


# --------------------------------------------------------------------------------------------------
# The package: version pin, install/uninstall
# --------------------------------------------------------------------------------------------------


def test_moto_version_is_the_one_the_fixes_were_checked_against() -> None:
    """Each correction replaces moto internals by name: another moto version needs a fresh look
    (the fix may be upstream, or the internals may have moved). Update MOTO_VERSION after that."""
    assert importlib.metadata.version("moto") == moto_fixes.MOTO_VERSION


def test_originals_are_moto_as_released() -> None:
    """The identities below are moto's own functions, not a correction installed by an earlier test."""
    for name, function in ORIGINALS.items():
        assert function.__module__.startswith("moto."), name


def test_install_is_idempotent_and_uninstall_restores_moto(released_moto: None) -> None:
    assert current_functions() == ORIGINALS
    assert moto.dynamodb.models.copy is copy

    moto_fixes.install()
    patched = current_functions()
    moto_fixes.install()

    assert current_functions() == patched  # a second install wraps nothing twice
    for name, function in patched.items():
        assert function is not ORIGINALS[name], name
        assert function.__module__.startswith("tap_local.moto_fixes."), name
    assert moto.dynamodb.models.copy is not copy

    moto_fixes.uninstall()

    for name, function in current_functions().items():
        assert function is ORIGINALS[name], name
    assert moto.dynamodb.models.copy is copy

    moto_fixes.uninstall()  # harmless when nothing is installed
    assert current_functions() == ORIGINALS
    assert moto.dynamodb.models.copy is copy


# -- attribute_value_serializer ------------------------------------------------------------------


EVERY_ATTRIBUTE_TYPE = {
    "pk": s("typed"),
    "number": n("1.50"),
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "strings": {"SS": ["x", "y"]},
    "numbers": {"NS": ["1", "2.5"]},
    "binary": {"B": b"\xff\x00"},
    "binaries": {"BS": [b"a", b"b"]},
    "nested": {"M": {"k": s("v"), "list": {"L": [n("3"), {"B": b"\x01"}, {"M": {"deep": {"BOOL": True}}}]}}},
    "empty_list": {"L": []},
    "empty_map": {"M": {}},
}


def item_responses() -> dict[str, Any]:
    """Every data-plane response that carries items, for an item holding every attribute type."""
    client = dynamodb()
    create_accounts(client)
    client.put_item(TableName=ACCOUNTS, Item=EVERY_ATTRIBUTE_TYPE)
    key = {"pk": s("typed")}
    return {
        "get": without_metadata(client.get_item(TableName=ACCOUNTS, Key=key)),
        "batch_get": without_metadata(
            client.batch_get_item(RequestItems={ACCOUNTS: {"Keys": [key, {"pk": s("absent")}]}})
        ),
        "query": without_metadata(
            client.query(
                TableName=ACCOUNTS,
                KeyConditionExpression="pk = :k",
                ExpressionAttributeValues={":k": s("typed")},
            )
        ),
        "scan": without_metadata(client.scan(TableName=ACCOUNTS)),
        "update": without_metadata(
            client.update_item(
                TableName=ACCOUNTS,
                Key=key,
                UpdateExpression="ADD #n :one",
                ExpressionAttributeNames={"#n": "number"},
                ExpressionAttributeValues={":one": n(1)},
                ReturnValues="ALL_NEW",
            )
        ),
    }


def test_attribute_values_of_every_type_are_returned_as_released_moto_returns_them(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """The fast path covers scalar members only; binary, sets of binary, maps and lists still go
    through moto's serializer, and every response is the same both ways."""
    released, patched = both_ways(item_responses)

    assert patched == released
    assert released["get"]["Item"]["nested"]["M"]["list"]["L"][1] == {"B": b"\x01"}
    assert released["update"]["Attributes"]["number"] == n("2.50")  # moto keeps the operand's scale


# -- item_memory ----------------------------------------------------------------------------------


def test_items_share_attribute_names_and_short_values(installed: None) -> None:
    """Equal names and short values are one string object across items; long values are not
    interned (mostly unique ids); every response above is unchanged with this installed."""
    with mock_aws():
        client = dynamodb()
        create_accounts(client)
        long_value = "x" * 40
        for key in ("first", "second"):
            client.put_item(
                TableName=ACCOUNTS,
                Item={"pk": s(key), "status_name": s("CLEARED"), "note": s(long_value), "amount": n("7.07")},
            )
        first, second = (backend_table(ACCOUNTS).items[DynamoType(s(key))] for key in ("first", "second"))
        assert first.attrs["status_name"].value == "CLEARED"
        name_first = next(name for name in first.attrs if name == "status_name")
        name_second = next(name for name in second.attrs if name == "status_name")
        assert name_first is name_second
        assert first.attrs["status_name"].value is second.attrs["status_name"].value
        assert first.attrs["amount"].value is second.attrs["amount"].value
        assert client.get_item(TableName=ACCOUNTS, Key={"pk": s("first")})["Item"]["note"] == s(long_value)


# -- ttl_expiry -----------------------------------------------------------------------------------


def test_expired_items_are_deleted_as_dynamodb_does(released_moto: None) -> None:
    """Only a Number TTL attribute at or before now expires; missing or non-Number ones never do;
    a table without TTL keeps everything; an emptied partition disappears."""
    from tap_local.moto_fixes import ttl_expiry

    now = 1_800_000_000
    with mock_aws():
        client = dynamodb()
        create_ledger(client)
        client.update_time_to_live(
            TableName=LEDGER, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        create_accounts(client)  # no TTL
        rows = {
            ("p1", "t1"): {"expires_at": n(now - 1)},  # expired
            ("p1", "t2"): {"expires_at": n(now)},  # expires exactly now
            ("p2", "t1"): {"expires_at": n(now + 60)},  # not yet
            ("p2", "t2"): {"expires_at": s(str(now - 100))},  # not a Number: never
            ("p3", "t1"): {},  # no TTL attribute: never
        }
        for (partition, sort), extra in rows.items():
            client.put_item(TableName=LEDGER, Item={**ledger_key(partition, sort), **extra})
        client.put_item(TableName=ACCOUNTS, Item={"pk": s("a1"), "expires_at": n(now - 1)})

        assert ttl_expiry.delete_expired(now) == 2

        left = {(item["pk"]["S"], item["sk"]["S"]) for item in client.scan(TableName=LEDGER)["Items"]}
        assert left == {("p2", "t1"), ("p2", "t2"), ("p3", "t1")}
        assert canonical(s("p1")) not in partition_keys(LEDGER)
        assert canonical(s("p2")) in partition_keys(LEDGER)
        assert client.scan(TableName=ACCOUNTS)["Count"] == 1
        assert ttl_expiry.delete_expired(now) == 0


# -- instance_tracking ----------------------------------------------------------------------------


def _item_and_message_refs() -> tuple[Any, Any]:
    """Weak references to a DynamoDB item and an SQS message that moto no longer holds."""
    import weakref

    client = dynamodb()
    create_accounts(client)
    client.put_item(TableName=ACCOUNTS, Item={"pk": s("gone"), "label": s("x")})
    item_ref = weakref.ref(backend_table(ACCOUNTS).items[DynamoType(s("gone"))])
    client.delete_item(TableName=ACCOUNTS, Key={"pk": s("gone")})
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="tracked")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    backend = sqs_backends[DEFAULT_ACCOUNT_ID][REGION]
    message_ref = weakref.ref(backend.queues["tracked"]._messages[0])
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return item_ref, message_ref


def test_deleted_items_and_messages_are_freed_only_with_the_fix(
    both_ways: Callable[[Scenario], tuple[Any, Any]],
) -> None:
    """Released moto keeps every Item and Message it created (instances_tracked, for its
    dashboard) until a reset; with the fix a deleted one is garbage like any other object."""
    import gc

    def freed() -> tuple[bool, bool]:
        item_ref, message_ref = _item_and_message_refs()
        gc.collect()
        return item_ref() is None, message_ref() is None

    released, patched = both_ways(freed)
    assert released == (False, False)
    assert patched == (True, True)

"""Contract fuzzing: requests generated from the stack's own OpenAPI document, sent to the local API.

The body schema comes from the RestApi `body` the local gateway serves (`LocalRestApi.document`
is the same JSON), so a change to the contract changes what is fuzzed. Hypothesis generates a mix
of valid bodies (every string from its schema pattern), near-valid ones (one field broken, one
required field missing, one unknown field, wrong types) and arbitrary JSON or bytes, plus requests
without the API key. Checks: no 5xx; every 4xx body says what is wrong (a non-empty `message`);
a rejected request leaves no trace (no transaction record, idempotency guard or queue message
that an accepted request did not make).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seed_
from hypothesis import strategies as st

from resilience import harness
from tap_contract.seed import TEST_MERCHANT_ID

# A seeded merchant and an amount/currency it accepts: some generated requests must get through.
KNOWN = {"merchant_id": TEST_MERCHANT_ID, "currency": "USD", "amount": "12.34"}
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid instances of the (draft-4, no $ref) body schema, enough of it for this contract."""
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            strategy = st.from_regex(schema["pattern"], fullmatch=True)
            return strategy.filter(lambda s: len(s) <= schema.get("maxLength", 10**6))
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        if "oneOf" in schema:  # the card: one branch's required fields, never the other's
            return st.sampled_from(schema["oneOf"]).flatmap(
                lambda branch: _object(properties, set(branch["required"]), _excluded(branch))
            )
        return _object(properties, required, set())
    return ANY_JSON


def _excluded(branch: dict[str, Any]) -> set[str]:
    forbidden = branch.get("not", {})
    names = set(forbidden.get("required", []))
    for alternative in forbidden.get("anyOf", []):
        names |= set(alternative.get("required", []))
    return names


def _object(properties: dict[str, Any], required: set[str], excluded: set[str]) -> st.SearchStrategy[Any]:
    optional = {k: from_schema(v) for k, v in properties.items() if k not in required and k not in excluded}
    return st.fixed_dictionaries({k: from_schema(properties[k]) for k in sorted(required)}, optional=optional)


def mutations(schema: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """(kind, body): valid, or broken in exactly one way, or not a transaction at all."""
    valid = from_schema(schema)
    names = sorted(schema["properties"])

    def drop_required(body: dict[str, Any], data: Any) -> dict[str, Any]:
        name = data.draw(st.sampled_from(sorted(schema["required"])))
        return {k: v for k, v in body.items() if k != name}

    @st.composite
    def broken(draw: Any) -> tuple[str, Any]:
        body = dict(draw(valid))
        how = draw(st.sampled_from(["missing", "wrong_type", "bad_value", "unknown_field", "card_mix"]))
        if how == "missing":
            name = draw(st.sampled_from(sorted(schema["required"])))
            body.pop(name, None)
        elif how == "wrong_type":
            body[draw(st.sampled_from(names))] = draw(JSON_SCALARS.filter(lambda v: not isinstance(v, str)))
        elif how == "bad_value":
            body[draw(st.sampled_from(names))] = draw(st.text(max_size=80))
        elif how == "unknown_field":
            body[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in names))] = draw(ANY_JSON)
        else:
            body["card"] = {"token": "tok_abcdefgh", "number": "4111111111111111", "expiry": "12/30"}
        return how, body

    return st.one_of(
        valid.map(lambda body: ("valid", body)),
        broken(),
        hostile(valid),
        ANY_JSON.map(lambda body: ("any_json", body)),
        st.binary(max_size=200).map(lambda raw: ("raw_bytes", raw)),
        valid.map(lambda body: ("no_api_key", body)),
        valid.map(lambda body: ("valid_known_merchant", {**body, **KNOWN})),
    )


HOSTILE = frozenset({"deep_nesting", "duplicate_key"})


def hostile(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """Bodies built to break a parser rather than a field: deep nesting (thousands of levels, which
    exhausts Python's recursion) and a repeated key, which two parsers can read differently. Sent as
    raw text (``bytes``), since a dict cannot hold a key twice."""
    deep = st.tuples(st.integers(min_value=33, max_value=6000), st.sampled_from(["[", '{"a":'])).map(
        lambda pair: (pair[1] * pair[0] + "1" + ("]" if pair[1] == "[" else "}") * pair[0]).encode()
    )

    @st.composite
    def duplicate(draw: Any) -> bytes:
        body = {**draw(valid), **KNOWN}
        name = draw(st.sampled_from(sorted(body)))
        # The same value again (a parser that keeps the last one accepts it) or any other value.
        other = draw(st.one_of(st.just(body[name]), ANY_JSON))
        text = json.dumps(body)
        return (text[:-1] + f", {json.dumps(name)}: {json.dumps(other)}}}").encode()

    return st.one_of(
        deep.map(lambda raw: ("deep_nesting", raw)), duplicate().map(lambda raw: ("duplicate_key", raw))
    )


@dataclass
class FuzzResult:
    cases: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexplained_4xx: list[str] = field(default_factory=list)
    traces_of_rejected: list[str] = field(default_factory=list)
    accepted_ids: set[str] = field(default_factory=set)
    malformed_json: list[str] = field(default_factory=list)
    hostile_not_refused: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.server_errors + self.unexplained_4xx + self.traces_of_rejected + self.hostile_not_refused

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [
            f"fuzz cases:                  {self.cases}",
            "by kind:                     " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items())),
            "by status:                   "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())),
            f"5xx (must be 0):             {len(self.server_errors)}",
            f"4xx without a reason:        {len(self.unexplained_4xx)}",
            f"traces of rejected requests: {len(self.traces_of_rejected)}",
            f"hostile bodies not 400:      {len(self.hostile_not_refused)} (deep nesting, repeated keys)",
            *[f"  {line}" for line in self.problems[:10]],
            f"4xx body not valid JSON:     {len(self.malformed_json)} (a finding when > 0; message present)",
            *[f"  {line}" for line in self.malformed_json[:3]],
        ]


MESSAGE_FIELD = re.compile(r'"message"\s*:\s*"[^"\s][^"]*"')


def _explains(response: requests.Response, result: FuzzResult, summary: str) -> bool:
    try:
        body = response.json()
    except ValueError:
        # The body is not JSON (e.g. an unescaped character in the validation errors the gateway
        # templates into it); it still explains itself if it carries a message.
        result.malformed_json.append(summary + f" body={response.text[:160]!r}")
        return bool(MESSAGE_FIELD.search(response.text))
    return isinstance(body, dict) and isinstance(body.get("message"), str) and bool(body["message"].strip())


def run(cases: int, seed: int = 5) -> FuzzResult:
    result = FuzzResult()
    with harness.pipeline() as running:
        document = running.api.document if running.api is not None else None
        document = document or running.graph.of_type("aws:apigateway/restApi:RestApi")[0].inputs["body"]
        if isinstance(document, str):
            document = json.loads(document)
        schema = _body_schema(document)
        url, key = running.outputs["api_url"], running.outputs["api_key_value"]
        session = requests.Session()

        @settings(
            max_examples=cases,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=mutations(schema))
        def one(case: tuple[str, Any]) -> None:
            kind, body = case
            headers = {"content-type": "application/json"}
            if kind != "no_api_key":
                headers["x-api-key"] = key
            data = body if isinstance(body, bytes) else json.dumps(body)
            response = session.post(url, data=data, headers=headers, timeout=60)
            result.cases += 1
            result.by_kind[kind] += 1
            result.by_status[response.status_code] += 1
            summary = f"{kind} -> {response.status_code}: {data[:120]!r}"
            if kind in HOSTILE and response.status_code != 400:
                result.hostile_not_refused.append(summary)
            if response.status_code >= 500:
                result.server_errors.append(summary)
            elif response.status_code >= 400 and not _explains(response, result, summary):
                result.unexplained_4xx.append(summary + f" body={response.text[:120]!r}")
            elif 200 <= response.status_code < 300:
                result.accepted_ids.add(str(response.json().get("transaction_id")))

        seed_(seed)(one)()
        harness.settle(running, result.accepted_ids, timeout=120)
        _check_no_trace(running, result)
    return result


def _body_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The published request contract, `TransactionRequest` (the document's own schema).

    Not the schema API Gateway validates against: the edge checks only that the body is a JSON
    object and leaves every field to the validator function (`lib/openapi.py` says why), so the
    contract the clients are given is what the fuzzing has to respect and break.
    """
    return document["components"]["schemas"]["TransactionRequest"]


def _check_no_trace(running: Any, result: FuzzResult) -> None:
    """Only accepted requests may have left records, guards or messages."""
    tables = harness.scan_all_tables(running)
    transactions_table = running.outputs["transactions_table_name"]
    for item in tables.get(transactions_table, []):
        if str(item["transaction_id"]) not in result.accepted_ids:
            result.traces_of_rejected.append(f"transaction record {item['transaction_id']}")
    for name, items in tables.items():
        for item in items:
            identifier = str(item.get("id", ""))
            if (
                identifier.startswith("transaction#")
                and identifier.split("#", 1)[1] not in result.accepted_ids
            ):
                result.traces_of_rejected.append(f"idempotency guard {identifier} in {name}")
    for queue, depth in harness.queue_depths(running).items():
        if depth:
            result.traces_of_rejected.append(f"{depth} message(s) left in {queue}")

"""Schema conformance: schemathesis against the local API, driven by the stack's own OpenAPI document.

The document is the one the stack deploys: the RestApi `body` of the evaluated Pulumi program, with
its outputs (the validator's invoke ARN) resolved, as the local gateway serves it
(`LocalRestApi.document`). Nothing here restates it: whatever responses it declares are what the
responses are checked against.

schemathesis generates the requests (positive and negative) and runs its checks on every response:
no 5xx, a documented status code, a documented content type, a body valid against the declared
response schema, the declared response headers, and negative data answered with a 4xx. Streams:

* coverage: schemathesis's deterministic boundary and missing-part cases, every operation, both modes;
* positive / negative: hypothesis-generated cases from the deployed document, every operation;
* contract-positive / contract-negative: `POST /transaction` with the body generated from
  `TransactionRequest`, the contract the document publishes for clients (the edge itself checks only
  that the body is an object; `lib/openapi.py` says why), so that valid transactions reach the
  function and get 202, 409 or 422. About half of the positive ones carry a seeded merchant,
  currency, amount and card token (and no timestamp), so that some are accepted;
* lookup: `GET /transaction/{id}` of every accepted id, once right after it was accepted (RECEIVED,
  most likely) and once after the pipeline settled (CLEARED, FLAGGED or FAILED), so that 200 bodies
  in every state are checked.

A generated case identical to one already sent is not sent again, so every request counted is
distinct but the second lookup of each accepted id. Every response is checked. A request is
non-conforming when any check other than the 5xx one fails on its response; a 5xx is counted on its
own (a 5xx answer to negative data also fails `negative_data_rejection`, so it counts in both).
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seed_
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.auths import AuthContext, set_on_generated_case
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from resilience import harness
from resilience.fuzz import KNOWN

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
SERVER_ERROR_CHECK = "not_a_server_error"
# The request contract the document publishes (API Gateway is given only its shape).
CONTRACT_SCHEMA = "TransactionRequest"
# A token card for the seeded merchant: with KNOWN it makes an otherwise generated body acceptable.
KNOWN_CARD = {"token": "tok_conformance_0001"}
REQUEST_TIMEOUT_SECONDS = 60
SETTLE_TIMEOUT_SECONDS = 180
# Shares of the generated requests (after the coverage cases and the lookups) per stream.
SHARES = {"positive": 0.2, "negative": 0.35, "contract-positive": 0.3, "contract-negative": 0.15}
# Of the contract-positive stream about this share is accepted (most with the seeded merchant): each
# accepted id is looked up twice, on top of the streams' budgets.
ACCEPTED_SHARE = 0.15
MAX_ROUNDS = 40  # a stream whose strategy runs dry is re-run with the next seed while it still yields

_PAN_LIKE = re.compile(r"\d{12,19}")
_CVV_FIELD = re.compile(r'("cvv"\s*:\s*)"[^"]*"')


def masked(text: str) -> str:
    """Printable without card data: digit runs that could be a PAN and CVV values are masked."""
    return _CVV_FIELD.sub(r'\1"***"', _PAN_LIKE.sub(lambda m: f"<{len(m.group())} digits>", text))


@dataclass
class Finding:
    """One kind of non-conformance (check, operation, status, where), its first request and how often."""

    check: str
    operation: str
    status: int
    stream: str
    request: str
    response: str
    detail: str
    count: int = 1

    def line(self) -> str:
        return (
            f"[{self.check}] {self.operation} -> {self.status} ({self.stream}, x{self.count}): "
            f"{self.detail}\n      request:  {self.request}\n      response: {self.response}"
        )


@dataclass
class ConformanceResult:
    target: int
    document_title: str = ""
    declared: list[str] = field(default_factory=list)
    requests: int = 0
    repeated: int = 0  # requests sent again on purpose (the lookup of an accepted id once it is final)
    duplicates_skipped: int = 0
    by_stream: Counter[str] = field(default_factory=Counter)
    by_status: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # (stream, method, status)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: int = 0
    findings: dict[tuple[str, str, int, str], Finding] = field(default_factory=dict)
    negative_not_rejected: list[str] = field(default_factory=list)  # negative cases answered 2xx/3xx/5xx
    transport_errors: list[str] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    looked_up_states: Counter[str] = field(default_factory=Counter)  # `status` of each 200 body
    refused_valid: Counter[str] = field(default_factory=Counter)  # contract-valid bodies' 400s, by field
    seconds: float = 0.0

    @property
    def distinct(self) -> int:
        """What the target counts: every request but the deliberate repeats."""
        return self.requests - self.repeated

    @property
    def server_error_count(self) -> int:
        return len(self.server_errors)

    @property
    def ok(self) -> bool:
        return (
            self.distinct >= self.target
            and not self.server_errors
            and self.nonconforming == 0
            and not self.negative_not_rejected
            and not self.transport_errors
        )

    def statuses(self, stream: str) -> str:
        counts = sorted((m, s, n) for (name, m, s), n in self.by_status.items() if name == stream)
        return ", ".join(f"{method} {status} {count}" for method, status, count in counts)

    def lines(self) -> list[str]:
        rate = self.requests / self.seconds if self.seconds else 0.0
        refused = ", ".join(f"{name} {count}" for name, count in self.refused_valid.most_common(8))
        return [
            f"document:                   {self.document_title} (the deployed RestApi body); declares",
            *[f"  {line}" for line in self.declared],
            f"requests (target {self.target}):   {self.requests} ({self.distinct} distinct, "
            f"{self.duplicates_skipped} duplicate generated cases not sent), "
            f"{self.seconds:.0f} s, {rate:.0f}/s",
            *[
                f"  {stream:<18} {count:>5}: {self.statuses(stream)}"
                for stream, count in self.by_stream.items()
            ],
            "200 bodies checked by state: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.looked_up_states.items())) or "none"),
            f"contract-valid bodies the function refused (400, by field; documented: Luhn, expiry, "
            f"currency, decimals, clock skew): {refused or 'none'}",
            f"5xx (must be 0):            {self.server_error_count}",
            *[f"  {line}" for line in self.server_errors[:5]],
            f"non-conforming (must be 0): {self.nonconforming}",
            *[f"  {finding.line()}" for finding in self.findings.values()],
            f"negative cases not answered with a 4xx (must be 0): {len(self.negative_not_rejected)}",
            *[f"  {line}" for line in self.negative_not_rejected[:5]],
            f"transport errors (must be 0): {len(self.transport_errors)}",
            *[f"  {line}" for line in self.transport_errors[:5]],
        ]


def declared_responses(document: dict[str, Any]) -> list[str]:
    """Per operation, each declared status and the schema its body is checked against."""
    lines = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parts = []
            for status, response in operation.get("responses", {}).items():
                schemas = [
                    (media.get("schema") or {}).get("$ref", "inline schema").rsplit("/", 1)[-1]
                    for media in (response.get("content") or {}).values()
                ]
                parts.append(f"{status} {'/'.join(schemas) or '(no body schema)'}")
            lines.append(f"{method.upper()} {path}: " + (", ".join(parts) or "NO RESPONSES DECLARED"))
    return lines


def contract_view(document: dict[str, Any]) -> dict[str, Any]:
    """The deployed document with every JSON request body generated from the published contract.

    Only `requestBody` changes: routes, parameters, security and every declared response stay the
    deployed ones.
    """
    view = copy.deepcopy(document)
    if CONTRACT_SCHEMA not in view.get("components", {}).get("schemas", {}):
        raise ValueError(f"the document publishes no {CONTRACT_SCHEMA} schema")
    for operations in view["paths"].values():
        for operation in operations.values():
            media = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if media is not None:
                media["schema"] = {"$ref": f"#/components/schemas/{CONTRACT_SCHEMA}"}
    return view


def load_schema(document: dict[str, Any], base_url: str, api_key: str, seed: int) -> Any:
    """schemathesis's view of `document`: the local stage as base URL, the issued key for its API key."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "base-url": base_url,
            "request-timeout": REQUEST_TIMEOUT_SECONDS,
            "auth": {
                "openapi": {
                    name: {"api_key": api_key}
                    for name, scheme in schemes.items()
                    if scheme.get("type") == "apiKey"
                }
            },
            # Negative data must get a client error (its body is then the response schema check's business).
            "checks": {"negative_data_rejection": {"expected-statuses": ["4XX"]}},
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


def _operation(schema: Any, method: str) -> Any:
    return next(r.ok() for r in schema.get_all_operations() if r.ok().method.upper() == method)


def _case_key(case: Any) -> str:
    body = None if isinstance(case.body, NotSet) else case.body
    headers = sorted((str(k).lower(), str(v)) for k, v in (case.headers or {}).items())
    query = sorted((case.query or {}).items())
    return repr((case.method, case.formatted_path, headers, query, case.media_type, repr(body)))


def _summary(response: Any) -> str:
    """What was sent: method, path, whether the key was, and the (masked, truncated) body."""
    request = response.request
    path = request.url.split("//", 1)[-1].split("/", 1)[-1]
    text = f"{request.method} /{path} ({'with key' if request.headers.get('x-api-key') else 'no key'})"
    body = request.body
    if body is not None:
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="backslashreplace")
        text += f" body={masked(str(body))[:200]!r}"
    return text


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class Runner:
    """Sends each distinct case once, runs the checks on its response and tallies the result."""

    def __init__(self, result: ConformanceResult):
        self.result = result
        self.session = requests.Session()
        self.sent: set[str] = set()
        self.accepted: list[str] = []
        self.after_accepted: Callable[[str], Any] | None = None

    def send(self, stream: str, case: Any, *, repeat: bool = False) -> bool:
        """False when the case was a duplicate (not sent) or the request failed in transport."""
        result = self.result
        key = _case_key(case)
        if key in self.sent:
            if not repeat:
                result.duplicates_skipped += 1
                return False
            result.repeated += 1
        self.sent.add(key)
        try:
            response = case.call(session=self.session)
        except requests.RequestException as exc:
            result.transport_errors.append(f"{stream} {case.method} {case.formatted_path}: {exc!r}"[:300])
            return False
        result.requests += 1
        result.by_stream[stream] += 1
        status = response.status_code
        result.by_status[stream, case.method.upper(), status] += 1
        if status >= 500:
            result.server_errors.append(
                f"{stream} -> {status}: {_summary(response)} {masked(response.text)[:200]!r}"
            )
        if case.meta is not None and case.meta.generation.mode.is_negative and not 400 <= status < 500:
            result.negative_not_rejected.append(f"{stream} -> {status}: {_summary(response)}")
        failures = _failures(case, response)
        if any(_check_of(failure) != SERVER_ERROR_CHECK for failure in failures):
            result.nonconforming += 1
        for failure in failures:
            self._record(stream, case, response, failure)
        self._observe(stream, case, status, _json(response))
        return True

    def _observe(self, stream: str, case: Any, status: int, body: Any) -> None:
        if not isinstance(body, dict):
            return
        if status == 200 and case.method.upper() == "GET":
            self.result.looked_up_states[str(body.get("status"))] += 1
        elif status == 400 and stream == "contract-positive":
            for error in body.get("errors") or [{"field": "(no field)"}]:
                self.result.refused_valid[str(error.get("field"))] += 1
        elif status == 202 and case.method.upper() == "POST":
            transaction_id = body.get("transaction_id")
            if isinstance(transaction_id, str) and transaction_id not in self.accepted:
                self.accepted.append(transaction_id)
                if self.after_accepted is not None:
                    self.after_accepted(transaction_id)

    def _record(self, stream: str, case: Any, response: Any, failure: Failure) -> None:
        key = (failure.code, case.operation.label, response.status_code, failure._unique_key)
        finding = self.result.findings.get(key)
        if finding is not None:
            finding.count += 1
            return
        self.result.findings[key] = Finding(
            check=f"{failure.code} {_check_of(failure)}",
            operation=case.operation.label,
            status=response.status_code,
            stream=stream,
            request=_summary(response),
            response=masked(response.text)[:300],
            detail=masked(" ".join(f"{failure.title}: {failure.message}".split()))[:600],
        )


def _failures(case: Any, response: Any) -> list[Failure]:
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        return list(_flatten(group))
    except Failure as failure:
        return [failure]
    return []


def _flatten(group: BaseException) -> Iterator[Failure]:
    for exc in getattr(group, "exceptions", ()):
        if isinstance(exc, Failure):
            yield exc
        else:
            yield from _flatten(exc)


def _check_of(failure: Failure) -> str:
    return failure.checks[0] if failure.checks else type(failure).__name__


def _drive(
    runner: Runner,
    stream: str,
    strategy: st.SearchStrategy[Any],
    budget: int,
    seed: int,
    prepare: Callable[[Any], Any] = lambda drawn: drawn,
) -> None:
    """Send `budget` distinct cases drawn from `strategy`, seeded; when a round runs dry, the next seed."""
    goal = runner.result.by_stream[stream] + budget
    for round_ in range(MAX_ROUNDS):
        left = goal - runner.result.by_stream[stream]
        if left <= 0:
            return
        sent_before = runner.result.by_stream[stream]

        # Hypothesis starts every run from its simplest examples, which earlier rounds already sent:
        # draw more than are needed (surplus draws send nothing once the goal is met).
        @settings(
            max_examples=2 * left + 20,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(drawn=strategy)
        def one(drawn: Any) -> None:
            if runner.result.by_stream[stream] < goal:
                runner.send(stream, prepare(drawn))

        seed_(seed * 1000 + round_)(one)()
        if runner.result.by_stream[stream] == sent_before and round_ >= 2:
            return  # three rounds in a row and nothing new: the strategy is exhausted


@contextmanager
def _quiet_werkzeug() -> Iterator[None]:
    """The local API logs every request line; thousands of them would bury the figures."""
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(
    requests_target: int,
    seed: int = 11,
    document_override: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ConformanceResult:
    """At least `requests_target` distinct checked requests against a fresh local pipeline.

    `document_override` changes the document schemathesis generates from and checks against, never
    the one served: the tests use it to show that a response the document does not allow is reported.
    """
    with _quiet_werkzeug(), harness.pipeline() as running:
        assert running.api is not None
        document = running.api.document  # the RestApi body the stack deploys, outputs resolved
        if document_override is not None:
            document = document_override(copy.deepcopy(document))
        return exercise(
            document,
            base_url=running.outputs["api_url"].rsplit("/transaction", 1)[0],
            api_key=running.outputs["api_key_value"],
            requests_target=requests_target,
            seed=seed,
            settle=lambda ids: harness.settle(running, ids, timeout=SETTLE_TIMEOUT_SECONDS),
        )


def exercise(
    document: dict[str, Any],
    *,
    base_url: str,
    api_key: str,
    requests_target: int,
    seed: int,
    settle: Callable[[set[str]], object] = lambda ids: None,
) -> ConformanceResult:
    """The streams against the API at `base_url` (`settle` waits until the accepted ids are final)."""
    result = ConformanceResult(target=requests_target)
    started = time.monotonic()
    result.document_title = f"{document['info']['title']} {document['info']['version']}"
    result.declared = declared_responses(document)
    deployed = load_schema(document, base_url, api_key, seed)
    contract = load_schema(contract_view(document), base_url, api_key, seed)
    post, get = _operation(contract, "POST"), _operation(contract, "GET")
    runner = Runner(result)
    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

    for case in _coverage_cases(deployed):
        runner.send("coverage", case)
    # Two lookups per accepted transaction come on top of the streams.
    remaining = max(0, requests_target - result.distinct)
    remaining = round(remaining / (1 + 2 * ACCEPTED_SHARE * SHARES["contract-positive"]))
    budgets = {name: round(share * remaining) for name, share in SHARES.items()}

    _drive(runner, "positive", deployed.as_strategy(generation_mode=positive), budgets["positive"], seed)
    _drive(runner, "negative", deployed.as_strategy(generation_mode=negative), budgets["negative"], seed + 1)

    def with_known_merchant(drawn: tuple[Any, bool]) -> Any:
        case, use_known = drawn
        if use_known and isinstance(case.body, dict):
            case.body.update({**KNOWN, "card": dict(KNOWN_CARD)})
            case.body.pop("timestamp", None)  # a generated one is mostly not a real, past moment
        return case

    runner.after_accepted = lambda tid: runner.send("lookup", _lookup_case(get, tid))
    posts = st.tuples(post.as_strategy(generation_mode=positive), st.booleans())
    _drive(runner, "contract-positive", posts, budgets["contract-positive"], seed + 2, with_known_merchant)
    runner.after_accepted = None
    # The key's absence is the negative stream's business: here every broken body reaches the function.
    contract_negatives = post.as_strategy(generation_mode=negative).filter(
        lambda case: not contract.is_security_param_negated(case)
    )
    _drive(runner, "contract-negative", contract_negatives, budgets["contract-negative"], seed + 3)
    result.accepted_ids = list(runner.accepted)

    if result.accepted_ids:
        settle(set(result.accepted_ids))
        for transaction_id in result.accepted_ids:  # now CLEARED, FLAGGED or FAILED
            runner.send("lookup", _lookup_case(get, transaction_id), repeat=True)
    # Whatever is still short of the target: more of the deployed document's cases, both modes.
    for index, mode in enumerate((negative, positive, negative)):
        short = requests_target - result.distinct
        if short > 0:
            _drive(runner, mode.value, deployed.as_strategy(generation_mode=mode), short, seed + 10 + index)
    result.seconds = time.monotonic() - started
    return result


def _lookup_case(get: Any, transaction_id: str) -> Any:
    case = get.Case(path_parameters={"transaction_id": transaction_id})
    set_on_generated_case(case, AuthContext(operation=get, app=None), None)
    return case


def _coverage_cases(schema: Any) -> Iterator[Any]:
    """schemathesis's coverage phase: boundary and missing-part cases of every operation, both modes.

    The unexpected-method probes (e.g. DELETE /transaction) are left out: API Gateway answers a
    method the API does not define with its MISSING_AUTHENTICATION_TOKEN response, which no
    operation of the document can declare.
    """
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for result in schema.get_all_operations():
        operation = result.ok()
        context = AuthContext(operation=operation, app=None)
        config = schema.config.generation_for(operation=operation)
        for case in schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config):
            if case.method.upper() == operation.method.upper():
                set_on_generated_case(case, context, None)
                yield case

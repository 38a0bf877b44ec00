"""Fault injection for the local pipeline, without touching the function code.

Two layers, both driven by one `FaultPlan` (default: none):

* `FaultProxy`: an HTTP proxy on 127.0.0.1 in front of the emulator. The functions reach AWS
  through `AWS_ENDPOINT_URL`, so pointing that at the proxy lets it answer chosen operations with
  the error responses AWS really sends: DynamoDB throttling in the JSON protocol
  (`x-amzn-ErrorType`, HTTP 400) and SNS `Publish` throttling / internal errors in the query (XML)
  or JSON protocol. The SDK's retries then see exactly what they would see in AWS.
* Invocation faults, applied by the SQS pollers: a worker killed mid-batch, an invocation that
  times out, a batch delivered twice (SQS is at-least-once).
* Lost enqueues (off unless asked for): the validator's ``SendMessage`` of a chosen transaction
  never reaches the queue, after its record was written. Half of them *kill* the validator: the
  proxy holds the call until the invocation times out, so its sandbox is discarded mid-send and the
  client gets API Gateway's 502 with no word about a record; the other half fail every SDK attempt,
  so the validator answers its 503 ENQUEUE_FAILED. Either way the client (in the runs that use
  this) walks away. Only the reconciler can then finish the transaction; its own re-sends
  (``origin=reconciler``) pass.

Every injected fault is counted, so a run can print how many it survived.
"""

from __future__ import annotations

import contextlib
import email.message
import hashlib
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tap_contract.queues import ORIGIN_ATTRIBUTE, ORIGIN_INTAKE

LOOPBACK = "127.0.0.1"

# DynamoDB operations the functions call; the proxy throttles only these (never table management).
DYNAMODB_DATA_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem", "TransactWriteItems"}
)
HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "server", "date"})
INVOCATION_FAULTS = ("worker_crash", "timeout", "duplicate_delivery")


@dataclass
class FaultPlan:
    """At which rate to inject which faults; `counts` records what was actually injected."""

    rate: float = 0.05
    # Invocation faults are rolled once per batch, far fewer rolls than AWS calls: a separate,
    # usually higher rate makes sure a short run sees each of them. None: same as `rate`.
    invocation_rate: float | None = None
    seed: int = 5
    dynamodb_throttling: bool = True
    sns_publish_errors: bool = True
    worker_crash: bool = True
    timeout: bool = True
    duplicate_delivery: bool = True
    # Lambda's smallest meaningful timeout is far above this; the point is to die mid-invocation.
    timeout_seconds: float = 0.2
    # Share of transactions whose intake SendMessage is lost (chosen by a stable hash of the id, so
    # every retry of the SDK fails too). 0: none.
    lost_enqueue_rate: float = 0.0
    # How long a killed validator's send is held: past the (compressed) function timeout.
    lost_enqueue_hold_seconds: float = 15.0
    lost_enqueues: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    # (fault, function, transaction ids of the batch) for each invocation fault: what to look at
    # when a conservation check fails.
    events: list[tuple[str, str, list[str]]] = field(default_factory=list)
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible fault schedule, not crypto

    def roll(self, kind: str) -> bool:
        """True (and counted) when a fault of `kind` should be injected now."""
        if not getattr(self, kind, False):
            return False
        rate = self.rate
        if kind in INVOCATION_FAULTS and self.invocation_rate is not None:
            rate = self.invocation_rate
        with self._lock:
            hit = self._random.random() < rate
            if hit:
                self.counts[kind] += 1
        return hit

    def invocation_fault(self) -> str | None:
        """At most one of the invocation faults for the next batch."""
        for kind in INVOCATION_FAULTS:
            if self.roll(kind):
                return kind
        return None

    def _draw(self, transaction_id: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{transaction_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def chooses_lost_enqueue(self, transaction_id: str) -> bool:
        """Whether this transaction's intake send will be lost (pure: a client can know in advance)."""
        return self.lost_enqueue_rate > 0 and self._draw(transaction_id) < self.lost_enqueue_rate

    def kills_validator(self, transaction_id: str) -> bool:
        """For a lost send: the validator is killed mid-send (else the send fails and it answers 503)."""
        return self._draw(transaction_id) < self.lost_enqueue_rate / 2

    def loses_enqueue(self, transaction_id: str) -> bool:
        """True (and recorded) when this transaction's intake send is one of the lost ones."""
        if not self.chooses_lost_enqueue(transaction_id):
            return False
        with self._lock:
            if transaction_id not in self.lost_enqueues:
                self.lost_enqueues.add(transaction_id)
                self.counts["lost_enqueue"] += 1
        return True

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


def _dynamodb_throttle() -> tuple[int, dict[str, str], bytes]:
    error = "ProvisionedThroughputExceededException"
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{error}", "message": "Rate exceeded (injected)"}
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": error}
    return 400, headers, json.dumps(body).encode()


def _sns_error(json_protocol: bool, throttled: bool) -> tuple[int, dict[str, str], bytes]:
    code, status = ("Throttled", 400) if throttled else ("InternalError", 500)
    if json_protocol:
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}, body
    xml = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>injected</Message></Error><RequestId>injected</RequestId>"
        "</ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml"}, xml.encode()


def _sqs_internal_error() -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": "com.amazonaws.sqs#InternalError", "message": "injected"}).encode()
    return (
        500,
        {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "InternalError;Receiver"},
        body,
    )


class _QuietServer(ThreadingHTTPServer):
    """A caller killed by an injected fault resets its connection: expected, not worth a traceback."""

    daemon_threads = True

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultProxy:
    """Forwards every request to the emulator, except the ones the plan chooses to fail."""

    def __init__(self, upstream_port: int, plan: FaultPlan):
        self.plan = plan
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:  # quiet: one line per AWS call is noise
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                injected = proxy.fault_for(self.headers.get("X-Amz-Target", ""), body)
                if injected is None:
                    status, headers, payload = proxy.forward(self.command, self.path, self.headers, body)
                else:
                    status, headers, payload = injected
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)  # the caller may be a worker killed by a fault

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._upstream_port = upstream_port
        self._server = _QuietServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, target: str, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """The error response to send instead of forwarding, or None to forward."""
        if target.startswith("DynamoDB_20120810."):
            if target.split(".", 1)[1] in DYNAMODB_DATA_OPERATIONS and self.plan.roll("dynamodb_throttling"):
                return _dynamodb_throttle()
            return None
        if target == "AmazonSQS.SendMessage":
            lost = self._lost_enqueue(body)
            if lost is not None:
                if self.plan.kills_validator(lost):
                    time.sleep(self.plan.lost_enqueue_hold_seconds)  # the caller is killed meanwhile
                return _sqs_internal_error()
        json_publish = target.endswith(".Publish") and "SNS" in target.upper()
        form_publish = not target and b"Action=Publish" in body
        if form_publish:
            form_publish = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action") == ["Publish"]
        if (json_publish or form_publish) and self.plan.roll("sns_publish_errors"):
            return _sns_error(json_publish, throttled=self.plan.counts["sns_publish_errors"] % 2 == 1)
        return None

    def _lost_enqueue(self, body: bytes) -> str | None:
        """The transaction id of an intake send (not the reconciler's) the plan loses, else None."""
        if self.plan.lost_enqueue_rate <= 0:
            return None
        try:
            request = json.loads(body)
            origin = request.get("MessageAttributes", {}).get(ORIGIN_ATTRIBUTE, {}).get("StringValue")
            transaction_id = json.loads(request["MessageBody"]).get("transaction_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if origin != ORIGIN_INTAKE or not isinstance(transaction_id, str):
            return None
        return transaction_id if self.plan.loses_enqueue(transaction_id) else None

    def forward(
        self, method: str, path: str, headers: email.message.Message[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(LOOPBACK, self._upstream_port, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() != "connection"}
            connection.request(method, path, body=body or None, headers=forwarded)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

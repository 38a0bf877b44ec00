"""Lambda-like execution: each function in its own worker processes, with its own environment.

A worker process (`tap_local.runtime`) imports the handler once (so module-level state survives
between invocations, as in a warm Lambda sandbox), then serves invocations over its stdin/stdout.
The parent enforces the function's timeout by killing the process, and reports errors in Lambda's
shape (`errorType` / `errorMessage`), so callers see what API Gateway or an event source mapping
would.
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FunctionSpec:
    """What the stack defines for one function, plus where the emulator is."""

    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    log_group: str

    def process_environment(
        self, region: str, endpoint_url: str, credentials: dict[str, str]
    ) -> dict[str, str]:
        """The stack's variables, the ones Lambda sets itself, and the emulator's address."""
        return {
            **self.environment,
            **credentials,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group,
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:0",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "_HANDLER": self.handler,
            # There is no X-Ray daemon on this machine; Powertools' tracer becomes a no-op.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }


@dataclass
class Invocation:
    """The outcome of one invocation, as Lambda would report it."""

    payload: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Epoch seconds at which the invocation's context ran out (what Powertools sizes its
    # in-progress idempotency locks by).
    deadline: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def died(self) -> bool:
        """The worker crashed or timed out: the handler never got to clean up after itself."""
        return (self.error or {}).get("errorType") in ("Runtime.ExitError", "Sandbox.Timedout")


class _Sandbox:
    """One worker process running `tap_local.runtime`, talking JSON lines over its stdin/stdout."""

    def __init__(self, environment: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tap_local.runtime"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            text=True,
            bufsize=1,
        )

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The response line, or None when the timeout passes first."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError(f"worker exited with {self.process.poll()}")
        response: dict[str, Any] = json.loads(line)  # a worker answers with one JSON object a line
        return response

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]  # both were opened as pipes


class FunctionWorkers:
    """A pool of sandboxes for one function; `invoke` blocks like a synchronous Lambda invoke."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        log_path: Path,
        concurrency: int,
        prewarm: bool = True,
    ):
        """``prewarm``: start every sandbox now (functions on the request path); otherwise each
        starts on demand, as Lambda starts an execution environment, up to ``concurrency`` (a
        function invoked every few minutes or a few times a quarter holds no idle processes)."""
        self.spec = spec
        self._environment = {
            **environment,
            "TAP_LOCAL_LOG_PATH": str(log_path),
            "TAP_LOCAL_FUNCTION_ARN": spec.arn,
        }
        self._idle: queue.Queue[_Sandbox] = queue.Queue()
        self._all: list[_Sandbox] = []
        self._lock = threading.Lock()
        self._closed = False
        self._concurrency = concurrency
        self._prewarm = prewarm
        for _ in range(concurrency if prewarm else 0):
            self._add_sandbox()

    def _add_sandbox(self) -> None:
        sandbox = _Sandbox(self._environment)
        with self._lock:
            self._all.append(sandbox)
        self._idle.put(sandbox)

    def _replace(self, sandbox: _Sandbox) -> None:
        sandbox.stop()
        with self._lock:
            self._all.remove(sandbox)
        if not self._closed and self._prewarm:
            self._add_sandbox()

    def invoke(self, event: Any, fault: str | None = None, fault_after_seconds: float = 0.2) -> Invocation:
        """Run one invocation; `fault` ("worker_crash" / "timeout", for fault injection) kills the
        worker after `fault_after_seconds`, mid-invocation, as a crash or a timeout would."""
        invocation = Invocation()
        sandbox = self._idle_sandbox()
        if sandbox is None:
            invocation.error = {
                "errorType": "Runtime.Shutdown",
                "errorMessage": "the local pipeline is stopping",
            }
            return invocation
        started = time.perf_counter()
        timeout = fault_after_seconds if fault == "timeout" else self.spec.timeout_seconds
        deadline = invocation.deadline = time.time() + timeout
        try:
            sandbox.send({"request_id": invocation.request_id, "event": event, "deadline": deadline})
            if fault == "worker_crash":
                sandbox.receive(fault_after_seconds)  # a response already in flight is lost too
                raise EOFError("worker killed mid-invocation (injected fault)")
            response = sandbox.receive(timeout)
        except (EOFError, OSError, ValueError) as exc:
            invocation.error = {"errorType": "Runtime.ExitError", "errorMessage": f"worker exited: {exc}"}
            self._replace(sandbox)
            return invocation
        finally:
            invocation.duration_ms = (time.perf_counter() - started) * 1000
        if response is None:
            invocation.error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {timeout:.2f} seconds",
            }
            self._replace(sandbox)  # Lambda discards a timed-out sandbox too
            return invocation
        if "error" in response:
            invocation.error = response["error"]
        else:
            invocation.payload = json.loads(response["payload"])
        self._idle.put(sandbox)
        return invocation

    def _idle_sandbox(self) -> _Sandbox | None:
        """The next free sandbox, or None once the pool is closed (a caller never waits for ever)."""
        while not self._closed:
            with contextlib.suppress(queue.Empty):
                return self._idle.get_nowait()
            with self._lock:
                if len(self._all) < self._concurrency and not self._closed:
                    started = _Sandbox(self._environment)  # a cold start, on demand
                    self._all.append(started)
                    return started
            with contextlib.suppress(queue.Empty):
                return self._idle.get(timeout=0.2)
        return None

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sandboxes = list(self._all)
        for sandbox in sandboxes:
            sandbox.stop()

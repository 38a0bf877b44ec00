"""The in-sandbox side of a local function: `python -m tap_local.runtime` (what Lambda's bootstrap does).

Reads one JSON invocation per line on stdin, answers one JSON line on stdout. The handler's own
stdout and stderr (its logs) go to the function's log file, never into the protocol stream.
The handler module is imported once, so module state survives between invocations as in a warm
Lambda sandbox; an import failure is reported on every invocation, as Lambda reports init errors.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, request_id: str, deadline: float):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ["TAP_LOCAL_FUNCTION_ARN"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main() -> None:
    # Ctrl-C in `make local`'s terminal reaches the whole process group; a sandbox is stopped by its
    # pipeline (stdin closed or killed), never mid-invocation by the terminal, as in Lambda.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol_in = os.fdopen(os.dup(0), "r", buffering=1)
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1)
    log_path = os.environ.pop("TAP_LOCAL_LOG_PATH")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)

    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        traceback.print_exc()
        init_error = _error(exc, "Runtime.ImportModuleError")

    for line in protocol_in:
        request = json.loads(line)
        if init_error is not None:
            response: dict[str, Any] = {"error": init_error}
        else:
            try:
                result = handler(request["event"], LambdaContext(request["request_id"], request["deadline"]))
                response = {"payload": json.dumps(result)}  # Lambda serialises the result as JSON too
            except Exception as exc:
                traceback.print_exc()
                response = {"error": _error(exc)}
        protocol_out.write(json.dumps(response) + "\n")


if __name__ == "__main__":
    main()

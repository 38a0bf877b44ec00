"""The embedded AWS emulator: moto's server on loopback, in a process of its own, and clients bound to it.

Its own process because moto is pure Python: sharing one interpreter (one GIL) with the local API
and the SQS pollers, every emulated AWS call and every HTTP request they serve took turns on one
core, and the local pipeline could not use the machine's second core (issue 9). The child runs
``python -m tap_local.emulator``; it exits when its parent closes its stdin or dies, so a killed
pipeline never leaves an emulator behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

LOOPBACK = "127.0.0.1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


def endpoint_of(outputs: Mapping[str, Any]) -> str | None:
    """A running local pipeline's emulator address, read off the queue URL in its outputs (every
    resource is served from it); ``None`` for a deployed stack's outputs (``amazonaws.com``)."""
    url = urlparse(str(outputs.get("transaction_queue_url", "")))
    if not url.netloc or (url.hostname or "").endswith(".amazonaws.com"):
        return None
    return f"{url.scheme}://{url.netloc}"


START_TIMEOUT_SECONDS = 60
# Requests are served one at a time anyway (_SerializedApp); threads only overlap socket I/O.
EMULATOR_THREADS = 8
# How often expired items are deleted (DynamoDB gives no bound; minutes keep a long run small).
TTL_SWEEP_SECONDS = 30


class _SerializedApp:
    """Runs one emulated AWS request at a time.

    moto's backends are not thread-safe (a receive deep-copies a message another thread is
    changing), and its handlers are pure Python under the GIL anyway, so one lock costs little
    and keeps concurrent pollers, workers and the API from corrupting queue state.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self._app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            return list(self._app(environ, start_response))


def serve(port: int, announce: Callable[[int], None]) -> None:
    """The child's side: moto with our corrections, serialized, on loopback; `announce(port)` once
    it accepts connections. Serves until the process ends.

    Served by waitress, not moto's own werkzeug server: werkzeug closes the connection after every
    response ("Connection: close"), so each emulated AWS call paid a TCP handshake and a new thread,
    which was a fifth of the emulator's time under load. waitress keeps connections alive.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    from tap_local import moto_fixes, moto_rotation

    # Without them a call's cost grows with what the emulator holds (see the package). "none" is
    # for bench/emulators.py, which measures moto as released against the corrected one.
    corrected = os.environ.get("TAP_LOCAL_MOTO_FIXES") != "none"
    if corrected:
        moto_fixes.install()
    # Not a cost correction: without it the emulator cannot rotate a secret (tap_local.moto_rotation).
    moto_rotation.install()
    app = _SerializedApp(DomainDispatcherApplication(create_backend_app))
    if corrected:
        threading.Thread(target=_expire_items, args=(app,), name="ttl-expiry", daemon=True).start()
    server = create_server(
        app, host=LOOPBACK, port=port, threads=EMULATOR_THREADS, connection_limit=1000, channel_timeout=300
    )
    announce(int(server.effective_port))  # waitress is untyped: a single TCP listener has one port
    server.run()


def _expire_items(app: _SerializedApp) -> None:
    """DynamoDB's TTL deletions, which moto never makes (see moto_fixes/ttl_expiry.py)."""
    from tap_local.moto_fixes import ttl_expiry

    while True:
        time.sleep(TTL_SWEEP_SECONDS)
        with app.lock:  # no request runs while items are deleted
            ttl_expiry.delete_expired()


@dataclass
class Emulator:
    """A running moto server process; `client(service)` talks to it."""

    region: str
    port: int = 0
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def start(self) -> Emulator:
        self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "tap_local.emulator", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self._process.stdout is not None
        ready = _read_line(self._process.stdout, START_TIMEOUT_SECONDS)
        if not ready.startswith("port "):
            self.stop()
            raise RuntimeError(f"the AWS emulator did not start (port {self.port} in use?): {ready!r}")
        self.port = int(ready.split()[1])  # the real port when 0 asked for any free one
        # Every pipeline starts from empty (the same call resets a long-lived emulator).
        reset = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - the loopback emulator
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]  # both were opened as pipes

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )


def _read_line(stream: Any, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


def _exit_with_parent() -> None:
    """Stdin closes when the parent closes it or dies: the emulator must not outlive its pipeline."""
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()

    def _announce(port: int) -> None:
        print(f"port {port}", flush=True)

    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0, _announce)

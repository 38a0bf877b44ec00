"""The embedded AWS emulator: moto's threaded server on loopback, and clients bound to it."""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

LOOPBACK = "127.0.0.1"
# moto's fixed account; ARNs the mock engine builds must match what moto returns.
EMULATOR_ACCOUNT_ID = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


class _SerializedApp:
    """Runs one emulated AWS request at a time.

    moto's backends are not thread-safe (a receive deep-copies a message another thread is
    changing), and its handlers are pure Python under the GIL anyway, so one lock costs little
    and keeps concurrent pollers, workers and the API from corrupting queue state.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class _LockedMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = _SerializedApp(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.server_close()  # release the port, not just stop serving


@dataclass
class Emulator:
    """A running moto server; `client(service)` talks to it."""

    region: str
    port: int = 0
    _server: _LockedMotoServer | None = None

    def start(self) -> Emulator:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per emulated AWS call
        self._server = _LockedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]  # the real port when 0 asked for any free one
        # moto keeps its state in process-wide backends: start every pipeline from empty.
        reset = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - the loopback emulator
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

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

"""`LocalPipeline`: evaluate the stack into the emulator, then run its functions, triggers and API."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config import StackSettings
from lib.graph import StackGraph, evaluate
from lib.tap_stack import build
from tap_local.answers import LocalAnswers
from tap_local.emulator import CREDENTIALS, Emulator
from tap_local.faults import FaultPlan, FaultProxy
from tap_local.gateway import ApiKeyPlan, LocalRestApi
from tap_local.pollers import BatchOutcome, MappingSpec, SqsPoller
from tap_local.rotation import FUNCTIONS_FILE
from tap_local.schedules import ScheduleTimer, schedule_specs
from tap_local.workers import FunctionSpec, FunctionWorkers, Invocation

REPO_ROOT = Path(__file__).resolve().parents[2]
# How long `stop()` waits for the API, pollers and outbox threads once the workers are gone.
STOP_GRACE_SECONDS = 2.0


@dataclass
class LocalConfig:
    """Where and how the local pipeline runs; every field has an environment variable."""

    region: str = field(default_factory=lambda: os.environ.get("TAP_LOCAL_REGION", "us-east-2"))
    environment_suffix: str = field(default_factory=lambda: os.environ.get("TAP_LOCAL_SUFFIX", "local"))
    alert_email: str = field(
        default_factory=lambda: os.environ.get("TAP_LOCAL_ALERT_EMAIL", "alerts@example.com")
    )
    emulator_port: int = field(default_factory=lambda: int(os.environ.get("TAP_LOCAL_EMULATOR_PORT", "4566")))
    api_port: int = field(default_factory=lambda: int(os.environ.get("TAP_LOCAL_API_PORT", "3000")))
    workers_per_function: int = field(default_factory=lambda: int(os.environ.get("TAP_LOCAL_WORKERS", "2")))
    retry_delay_seconds: int = field(
        default_factory=lambda: int(os.environ.get("TAP_LOCAL_RETRY_DELAY", "2"))
    )
    workdir: Path = field(
        default_factory=lambda: Path(os.environ.get("TAP_LOCAL_WORKDIR", REPO_ROOT / ".local"))
    )
    outputs_path: Path = field(
        default_factory=lambda: Path(
            os.environ.get("TAP_LOCAL_OUTPUTS", REPO_ROOT / "cfn-outputs" / "flat-outputs.json")
        )
    )
    # Compresses the stack's function timeouts, as `retry_delay_seconds` compresses the visibility
    # timeout: fault runs that kill workers then wait seconds, not a minute, for the dead
    # invocation's deadline before its batch is retried. None: the stack's own timeouts.
    function_timeout_seconds: int | None = field(
        default_factory=lambda: (
            int(os.environ["TAP_LOCAL_FUNCTION_TIMEOUT"])
            if os.environ.get("TAP_LOCAL_FUNCTION_TIMEOUT")
            else None
        )
    )
    # Compresses the stack's schedules (the reconciler runs every 5 minutes in AWS) and the age at
    # which the reconciler calls a RECEIVED record stale, so a fault run sees lost enqueues finish
    # in seconds. None: the stack's own values.
    schedule_interval_seconds: float | None = field(
        default_factory=lambda: (
            float(os.environ["TAP_LOCAL_SCHEDULE_SECONDS"])
            if os.environ.get("TAP_LOCAL_SCHEDULE_SECONDS")
            else None
        )
    )
    stale_received_after_seconds: int | None = field(
        default_factory=lambda: (
            int(os.environ["TAP_LOCAL_STALE_AFTER"]) if os.environ.get("TAP_LOCAL_STALE_AFTER") else None
        )
    )
    verbose: bool = True
    # Fault injection (resilience runs only): None runs the pipeline exactly as before.
    faults: FaultPlan | None = None

    @property
    def outbox_path(self) -> Path:
        return self.workdir / "outbox.jsonl"


def function_specs(graph: StackGraph) -> list[FunctionSpec]:
    return [
        FunctionSpec(
            name=f.inputs["name"],
            arn=f.state["arn"],
            handler=f.inputs["handler"],
            environment=dict(f.inputs["environment"]["variables"]),
            timeout_seconds=int(f.inputs["timeout"]),
            memory_mb=int(f.inputs["memorySize"]),
            log_group=f.inputs["loggingConfig"]["logGroup"],
        )
        for f in graph.of_type("aws:lambda/function:Function")
    ]


def invoked_function(graph: StackGraph, reference: str) -> str:
    """The (unqualified) ARN of the function that ``reference`` invokes: an alias ARN (what the
    stack's API integration and event source mappings name), a function ARN qualified with a
    version, or the function's own ARN. Locally every function runs one version, its source, so an
    alias or version resolves to the function; a reference to nothing the stack defines is an error,
    as it would be in AWS."""
    functions = {f.state["arn"]: f for f in graph.of_type("aws:lambda/function:Function")}
    by_name = {f.state["name"]: arn for arn, f in functions.items()}
    aliases = {a.state["arn"]: a for a in graph.of_type("aws:lambda/alias:Alias")}
    if reference in aliases:
        target = str(aliases[reference].inputs["functionName"])
        return target if target in functions else by_name[target]
    unqualified = ":".join(reference.split(":")[:7])  # arn:aws:lambda:<region>:<account>:function:<name>
    if unqualified in functions:
        return unqualified
    raise LookupError(f"{reference} names no function or alias of the stack")


def integration_target(uri: str) -> str:
    """The function (or alias) ARN an API Gateway Lambda integration URI invokes."""
    return uri.split("/functions/", 1)[1].removesuffix("/invocations")


def request_path_functions(graph: StackGraph) -> set[str]:
    """Functions the API or an event source mapping invokes: their sandboxes start with the pipeline.
    The others (the scheduled reconciler, the key rotation) start one when first invoked."""
    targets = {function_arn for function_arn, _ in mapping_specs(graph)}
    for rest_api in graph.of_type("aws:apigateway/restApi:RestApi"):
        for path in json.loads(rest_api.inputs["body"])["paths"].values():
            for operation in path.values():
                uri = operation["x-amazon-apigateway-integration"]["uri"]
                targets.add(invoked_function(graph, integration_target(uri)))
    return targets


def mapping_specs(graph: StackGraph) -> list[tuple[str, MappingSpec]]:
    """(function ARN, mapping) for every SQS event source mapping the stack defines; the mapping
    names the function's alias, resolved here to the function that runs."""
    queues = {q.state["arn"]: q for q in graph.of_type("aws:sqs/queue:Queue")}
    mappings = []
    for mapping in graph.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        inputs = mapping.inputs
        source = queues[inputs["eventSourceArn"]]
        mappings.append(
            (
                invoked_function(graph, inputs["functionName"]),
                MappingSpec(
                    queue_url=source.state["url"],
                    queue_arn=source.state["arn"],
                    batch_size=int(inputs.get("batchSize") or 10),
                    batching_window_seconds=float(inputs.get("maximumBatchingWindowInSeconds") or 0),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (inputs.get("functionResponseTypes") or []),
                    maximum_concurrency=int(
                        (inputs.get("scalingConfig") or {}).get("maximumConcurrency") or 1000
                    ),
                ),
            )
        )
    return mappings


def api_key_plans(graph: StackGraph) -> list[ApiKeyPlan]:
    keys = {k.id: k for k in graph.of_type("aws:apigateway/apiKey:ApiKey")}
    plans = {p.id: p for p in graph.of_type("aws:apigateway/usagePlan:UsagePlan")}
    result = []
    for binding in graph.of_type("aws:apigateway/usagePlanKey:UsagePlanKey"):
        key, plan = keys[binding.inputs["keyId"]], plans[binding.inputs["usagePlanId"]]
        throttle = plan.inputs.get("throttleSettings") or {}
        result.append(
            ApiKeyPlan(
                key_id=key.id,
                value=key.state["value"],
                rate_limit=float(throttle.get("rateLimit", 10_000)),
                burst_limit=float(throttle.get("burstLimit", 5_000)),
            )
        )
    return result


class LocalPipeline:
    """Start with `start()` (or as a context manager); `stop()` leaves no process or port behind."""

    def __init__(self, config: LocalConfig | None = None):
        self.config = config or LocalConfig()
        self.emulator = Emulator(self.config.region, self.config.emulator_port)
        self.graph: StackGraph | None = None
        self.answers: LocalAnswers | None = None
        self.workers: dict[str, FunctionWorkers] = {}
        self.pollers: list[SqsPoller] = []
        self.timers: list[ScheduleTimer] = []
        self.api: LocalRestApi | None = None
        self.fault_proxy: FaultProxy | None = None
        self._stop = threading.Event()
        self._outbox_thread: threading.Thread | None = None
        self._print_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> LocalPipeline:
        config = self.config
        config.workdir.mkdir(parents=True, exist_ok=True)
        (config.workdir / "logs").mkdir(exist_ok=True)
        try:
            self.emulator.start()
            self.api = LocalRestApi(self._log_request, port=config.api_port)
            self._evaluate_stack()
            self._start_functions()
            self._start_api()
            self._start_outbox()
            self._write_outputs()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops in a few seconds however busy: nothing new starts, then running invocations end
        with their worker processes (Lambda would finish them; locally their messages are simply
        received again), then the threads that drove them are given until STOP_GRACE_SECONDS."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        self._stop.set()
        for poller in self.pollers:
            poller.signal_stop()
        for timer in self.timers:
            timer.signal_stop()
        if self.api is not None:
            self.api.stop()
        for workers in self.workers.values():
            workers.close()
        for poller in self.pollers:
            poller.join(deadline)
        for timer in self.timers:
            timer.join(deadline - time.monotonic())
        if self._outbox_thread is not None:
            self._outbox_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.fault_proxy is not None:
            self.fault_proxy.stop()
            self.fault_proxy = None
        self.emulator.stop()

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------------------------------
    def _evaluate_stack(self) -> None:
        config = self.config
        settings = StackSettings(
            environment_suffix=config.environment_suffix, region=config.region, alert_email=config.alert_email
        )
        if config.stale_received_after_seconds is not None:
            settings = dataclasses.replace(
                settings, stale_received_after_seconds=config.stale_received_after_seconds
            )
        assert self.api is not None
        self.answers = LocalAnswers(emulator=self.emulator, api_base_url=self.api.base_url)
        self.graph = evaluate(lambda: build(settings).outputs, self.answers, stack=config.environment_suffix)

    def _start_functions(self) -> None:
        assert self.graph is not None
        # The code asset's root, like LAMBDA_TASK_ROOT: the functions can import only their own package.
        environment_base = {"PYTHONPATH": str(REPO_ROOT / "src"), "LAMBDA_TASK_ROOT": str(REPO_ROOT / "src")}
        by_arn: dict[str, FunctionWorkers] = {}
        endpoint_url = self.emulator.endpoint_url
        if self.config.faults is not None:
            # The functions reach "AWS" through the fault proxy; the pipeline's own calls do not.
            self.fault_proxy = FaultProxy(self.emulator.port, self.config.faults).start()
            endpoint_url = self.fault_proxy.endpoint_url
        on_request_path = request_path_functions(self.graph)
        for spec in function_specs(self.graph):
            if self.config.function_timeout_seconds is not None:
                spec = dataclasses.replace(spec, timeout_seconds=self.config.function_timeout_seconds)
            environment = {
                **environment_base,
                **spec.process_environment(self.config.region, endpoint_url, CREDENTIALS),
            }
            log_path = self.config.workdir / "logs" / f"{spec.name}.log"
            workers = FunctionWorkers(
                spec,
                environment,
                log_path,
                self.config.workers_per_function,
                prewarm=spec.arn in on_request_path,
            )
            self.workers[spec.name] = by_arn[spec.arn] = workers
        self._write_function_specs()
        for function_arn, mapping in mapping_specs(self.graph):
            poller = SqsPoller(
                mapping,
                by_arn[function_arn],
                lambda: self.emulator.client("sqs"),
                self.config.region,
                self.config.retry_delay_seconds,
                self._log_batch,
                poller_count=self.config.workers_per_function,
                faults=self.config.faults,
            )
            poller.start()
            self.pollers.append(poller)
        for schedule in schedule_specs(self.graph, self.config.schedule_interval_seconds):
            target = by_arn[invoked_function(self.graph, schedule.target_arn)]  # the reconciler's alias
            timer = ScheduleTimer(schedule, target, self._log_scheduled_run)
            timer.start()
            self.timers.append(timer)

    def _write_function_specs(self) -> None:
        """What the stack defines for each function (names, handlers, environments: no secret), for
        commands that run a function on demand against this pipeline (`tap_local rotate-key`)."""
        assert self.graph is not None
        specs = [dataclasses.asdict(spec) for spec in function_specs(self.graph)]
        path = self.config.workdir / FUNCTIONS_FILE
        path.write_text(json.dumps(specs, indent=2) + "\n")

    def _start_api(self) -> None:
        assert self.graph is not None
        rest_api = self.graph.of_type("aws:apigateway/restApi:RestApi")[0]
        stage = self.graph.of_type("aws:apigateway/stage:Stage")[0]
        document = json.loads(rest_api.inputs["body"])
        integration_uris = {
            op["x-amazon-apigateway-integration"]["uri"]
            for path in document["paths"].values()
            for op in path.values()
        }
        (uri,) = integration_uris  # one function (its alias) behind every route
        function_arn = invoked_function(self.graph, integration_target(uri))
        workers = next(w for w in self.workers.values() if w.spec.arn == function_arn)
        assert self.api is not None
        self.api.serve(document, stage.inputs["stageName"], rest_api.id, api_key_plans(self.graph), workers)

    def _start_outbox(self) -> None:
        assert self.answers is not None
        subscriptions = list(self.answers.email_subscriptions)
        self.config.outbox_path.touch()

        def drain() -> None:
            sqs = self.emulator.client("sqs")
            while not self._stop.is_set():
                for subscription in subscriptions:
                    try:
                        messages = sqs.receive_message(
                            QueueUrl=subscription.outbox_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                        ).get("Messages", [])
                    except Exception:
                        messages = []
                    for message in messages:
                        envelope = json.loads(message["Body"])
                        record = {
                            "to": subscription.endpoint,
                            "topic": subscription.topic_arn,
                            "subject": envelope.get("Subject"),
                            "message": envelope.get("Message"),
                            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        }
                        with self.config.outbox_path.open("a") as outbox:
                            outbox.write(json.dumps(record) + "\n")
                        sqs.delete_message(
                            QueueUrl=subscription.outbox_queue_url, ReceiptHandle=message["ReceiptHandle"]
                        )
                        self._say(f"email to {subscription.endpoint}: {record['subject']}")
                self._stop.wait(0.3)

        self._outbox_thread = threading.Thread(target=drain, name="outbox", daemon=True)
        self._outbox_thread.start()

    def _write_outputs(self) -> None:
        assert self.graph is not None
        self.config.outputs_path.parent.mkdir(parents=True, exist_ok=True)
        # Written last and atomically: its appearance is the signal that the pipeline is ready.
        partial = self.config.outputs_path.with_suffix(".partial")
        partial.write_text(json.dumps(self.graph.outputs, indent=2) + "\n")
        partial.replace(self.config.outputs_path)

    # -- reporting ---------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, Any]:
        assert self.graph is not None
        return self.graph.outputs

    def aws_only_resources(self) -> list[tuple[str, str]]:
        assert self.answers is not None
        return self.answers.aws_only

    def _say(self, line: str) -> None:
        if self.config.verbose:
            with self._print_lock:
                print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    def _log_request(self, method: str, path: str, status: int, invocation: Invocation | None) -> None:
        detail = ""
        if invocation is not None:
            body = invocation.payload.get("body") if isinstance(invocation.payload, dict) else None
            transaction_id = _field(body, "transaction_id")
            detail = f" validator {invocation.duration_ms:.0f} ms" + (
                f" txn={transaction_id}" if transaction_id else ""
            )
            if invocation.error:
                detail += f" error={invocation.error.get('errorType')}"
        self._say(f"API {method} {path} -> {status}{detail}")

    def _log_scheduled_run(self, schedule: str, invocation: Invocation) -> None:
        if invocation.error:
            error = invocation.error
            self._say(f"schedule {schedule}: {error.get('errorType')}: {error.get('errorMessage')}")
        elif isinstance(invocation.payload, dict) and any(
            invocation.payload.get(action) for action in ("requeued", "failed", "notified")
        ):
            self._say(f"schedule {schedule}: {json.dumps(invocation.payload, sort_keys=True)}")

    def _log_batch(self, outcome: BatchOutcome) -> None:
        for message_id in outcome.message_ids:
            transaction_id = (
                _field(outcome.bodies.get(message_id), "transaction_id") or f"message {message_id}"
            )
            verdict = "retry" if message_id in outcome.failed_ids else "done"
            error = outcome.invocation.error
            self._say(
                f"{outcome.function}: {transaction_id} {verdict}"
                + (f" ({error.get('errorType')}: {error.get('errorMessage')})" if error else "")
            )


def _field(body: str | None, name: str) -> str | None:
    try:
        value = json.loads(body or "")
    except ValueError:
        return None
    return value.get(name) if isinstance(value, dict) else None

"""`python -m tap_local rotate-key`: rotate the card-fingerprint key of a running local pipeline.

What Secrets Manager does in AWS, against the emulator: ``RotateSecret`` labels a new version id
``AWSPENDING`` (moto as corrected by :mod:`tap_local.moto_rotation`), then the stack's rotation
function runs ``createSecret``, ``setSecret``, ``testSecret`` and ``finishSecret`` with that token,
in a sandbox of its own exactly as the pipeline runs every function (same handler, same
environment as the stack gives it, from the running pipeline's ``functions.json``). A failed step
stops the rotation there, as Secrets Manager does; the key in use does not change.

The new key takes over ``CARD_KEY_SWITCH_DELAY_SECONDS`` after the rotation (the stack's value, 10
minutes: longer than the validators' 5-minute cache of the key); ``--switch-delay`` shortens it for a
demonstration, at the price the README's operations section explains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tap_contract.card_keys import SWITCH_DELAY_VARIABLE
from tap_contract.environment import KEY_ROTATION

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
FUNCTIONS_FILE = "functions.json"

Invoke = Callable[[dict[str, str]], dict[str, Any]]


class RotationFailed(RuntimeError):
    """A step of the rotation function failed; the rotation stopped there."""


@dataclass
class RotationReport:
    token: str
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def new_version(self) -> str | None:
        return next((s.get("new_version") for s in self.steps if s.get("new_version")), None)

    @property
    def use_from(self) -> str | None:
        return next((s.get("use_from") for s in self.steps if s.get("use_from")), None)


def rotate(secretsmanager: Any, secret_arn: str, invoke: Invoke) -> RotationReport:
    """Start a rotation of ``secret_arn`` and run the rotation function's four steps through ``invoke``."""
    token = str(secretsmanager.rotate_secret(SecretId=secret_arn)["VersionId"])
    report = RotationReport(token)
    for step in STEPS:
        event = {"Step": step, "SecretId": secret_arn, "ClientRequestToken": token}
        try:
            report.steps.append(invoke(event))
        except Exception as exc:
            raise RotationFailed(f"{step} failed: {exc}") from exc
    return report


def function_spec_of(workdir: Path, key: str = KEY_ROTATION) -> dict[str, Any] | None:
    """The running pipeline's spec of function ``key`` (its POWERTOOLS_SERVICE_NAME), or None."""
    path = workdir / FUNCTIONS_FILE
    if not path.exists():
        return None
    for spec in json.loads(path.read_text()):
        if spec["environment"].get("POWERTOOLS_SERVICE_NAME") == key:
            return dict(spec)
    return None


def main(outputs_path: Path, workdir: Path, switch_delay: int | None, endpoint_url: str | None) -> int:
    from tap_local.emulator import CREDENTIALS, endpoint_of
    from tap_local.pipeline import REPO_ROOT
    from tap_local.workers import FunctionSpec, FunctionWorkers

    if not outputs_path.exists():
        print(f"No running local pipeline found ({outputs_path}); run `make local` first.")
        return 1
    outputs = json.loads(outputs_path.read_text())
    endpoint_url = endpoint_url or endpoint_of(outputs)
    described = function_spec_of(workdir)
    if not endpoint_url or described is None:
        print(f"No running local pipeline with a key-rotation function found (in {workdir}).")
        return 1
    spec = FunctionSpec(**described)
    secret_arn = spec.environment["CARD_FINGERPRINT_SECRET_ARN"]
    # As the pipeline runs every function: the code asset's root only (tap_local.pipeline).
    environment = {
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "LAMBDA_TASK_ROOT": str(REPO_ROOT / "src"),
        **spec.process_environment(outputs["region"], endpoint_url, CREDENTIALS),
    }
    if switch_delay is not None:
        environment[SWITCH_DELAY_VARIABLE] = str(switch_delay)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    workers = FunctionWorkers(spec, environment, workdir / "logs" / f"{spec.name}.log", 1)

    def invoke(event: dict[str, str]) -> dict[str, Any]:
        invocation = workers.invoke(event)
        if invocation.error:
            raise RotationFailed(
                f"{invocation.error.get('errorType')}: {invocation.error.get('errorMessage')}"
            )
        payload: dict[str, Any] = invocation.payload
        return payload

    import boto3

    client = boto3.client(
        "secretsmanager",
        region_name=outputs["region"],
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    try:
        report = rotate(client, secret_arn, invoke)
    except RotationFailed as exc:
        print(f"rotation failed, the current key stays in use: {exc} (log: {workdir / 'logs'})")
        return 1
    finally:
        workers.close()
    print(f"rotated {secret_arn}")
    print(f"  new key version {report.new_version}, primary from {report.use_from}")
    print("  until then fingerprints use the current key; for an hour after, the detector also reads")
    print("  the card history under the previous key (README: Rotating the card-fingerprint key)")
    return 0

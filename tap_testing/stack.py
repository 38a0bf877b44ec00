"""The real Pulumi program evaluated under the mock engine, and readers of what it declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lib import layer
from lib.config import StackSettings
from lib.graph import AwsLikeAnswers, RecordedResource, StackGraph, evaluate
from lib.tap_stack import build

ALERT_EMAIL = "fraud-alerts@example.com"


def evaluate_stack(*, answers: AwsLikeAnswers | None = None, **overrides: Any) -> StackGraph:
    """The stack for these StackSettings overrides; `answers` stand in for the account (default: an
    account with AWS's default quotas in the settings' region)."""
    values = {"environment_suffix": "unit", "region": "us-east-2", "alert_email": ALERT_EMAIL, **overrides}
    settings = StackSettings(**values)
    return evaluate(lambda: build(settings).outputs, answers or AwsLikeAnswers(settings.region))


def policy_of(resource: RecordedResource, key: str = "policy") -> dict:
    return json.loads(resource.inputs[key])


def statements_of(resource: RecordedResource, key: str = "policy") -> list[dict]:
    return policy_of(resource, key)["Statement"]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def fake_built_layer(layer_dir: Path, versions: dict[str, str] | None = None) -> Path:
    """A layer directory as `python -m lib.layer` leaves it, without the network: one dist-info per
    pinned distribution (at the pinned version unless `versions` says otherwise) and its manifest."""
    site_dir = layer_dir / layer.SITE_DIR_NAME
    for name, version in {**layer.pins(), **(versions or {})}.items():
        module = name.replace("-", "_")
        dist_info = site_dir / f"{module}-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist_info / "RECORD").write_text(f"{module}/__init__.py,,\n{dist_info.name}/METADATA,,\n")
        (site_dir / module).mkdir(exist_ok=True)
        (site_dir / module / "__init__.py").write_text("")
    manifest = layer.manifest_for(layer_dir)
    (layer_dir / layer.MANIFEST_NAME).write_text(json.dumps(manifest))
    return layer_dir


ALIAS = "aws:lambda/alias:Alias"


def alias_of(graph: StackGraph, key: str) -> RecordedResource:
    """The alias of function ``key`` (validator, fraud-detector, ...) that everything invokes."""
    return graph.one(ALIAS, f"{key}-alias")


def function_invoked_by(graph: StackGraph, reference: str) -> RecordedResource:
    """The function behind an alias ARN or an alias's invoke ARN (the stack invokes only aliases)."""
    for alias in graph.of_type(ALIAS):
        if reference in (alias.state["arn"], alias.state["invokeArn"]):
            target = alias.inputs["functionName"]
            return next(
                f
                for f in graph.of_type("aws:lambda/function:Function")
                if target in (f.state["name"], f.state["arn"])
            )
    raise LookupError(f"{reference} is no alias of the stack")

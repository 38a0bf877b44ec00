"""Imports run one way: contract <- functions, contract <- infrastructure <- local runtime.

Read from the source (the import statements themselves), so a new import in the wrong direction
fails here before it can make the stack, the functions and the local runtime depend on each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tap_testing.imports import imports_of

REPO_ROOT = Path(__file__).resolve().parents[2]
TREES = {
    "tap_contract": REPO_ROOT / "src" / "tap_contract",
    "tap_pipeline": REPO_ROOT / "src" / "tap_pipeline",
    "tap_local": REPO_ROOT / "src" / "tap_local",
    "lib": REPO_ROOT / "lib",
    "tap_testing": REPO_ROOT / "tap_testing",
    "bench": REPO_ROOT / "bench",
    "fraud_eval": REPO_ROOT / "fraud_eval",
    "resilience": REPO_ROOT / "resilience",
}
# What each tree must never import (top-level package names).
FORBIDDEN = {
    "tap_contract": {
        "pulumi",
        "pulumi_aws",
        "boto3",
        "botocore",
        "tap_pipeline",
        "lib",
        "tap_local",
        "tests",
    },
    "tap_pipeline": {"pulumi", "pulumi_aws", "lib", "tap_local", "tap_testing", "tests"},
    "lib": {"tap_pipeline", "tap_local", "tap_testing", "tests"},
    "tap_local": {"tap_testing", "tests"},
    "tap_testing": {"tests"},
    "bench": {"tests"},
    "fraud_eval": {"tests"},
    "resilience": {"tests"},
}
# Modules of the function package that may call AWS themselves: the data-access layer, and the
# Powertools utilities configured with its clients (idempotency store, parameters).
DATA_ACCESS = "tap_pipeline.data"
AWS_SDKS = {"boto3", "botocore"}


def modules_of(tree: str) -> dict[str, set[str]]:
    root = TREES[tree]
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found[module] = imports_of(path, package)
    return found


@pytest.mark.parametrize("tree", sorted(FORBIDDEN))
def test_imports_run_one_way(tree):
    wrong = {
        module: sorted(name for name in names if name.split(".")[0] in FORBIDDEN[tree])
        for module, names in modules_of(tree).items()
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_only_the_data_access_layer_calls_the_aws_sdk():
    callers = {
        module
        for module, names in modules_of("tap_pipeline").items()
        if any(name.split(".")[0] in AWS_SDKS for name in names)
    }
    assert callers and all(module.startswith(DATA_ACCESS) for module in callers), sorted(callers)


def test_handlers_never_import_data_access():
    for module, names in modules_of("tap_pipeline").items():
        if module.startswith("tap_pipeline.handlers"):
            assert not [name for name in names if name.startswith(DATA_ACCESS)], module


# What the data layer may import from the function package: itself, its configuration and
# observability, and the domain values it reads and writes (amount profiles, card snapshots' key size).
DATA_MAY_IMPORT = {
    "tap_pipeline.data",
    "tap_pipeline.settings",
    "tap_pipeline.observability",
    "tap_pipeline.amounts",
    "tap_pipeline.card",
}


def test_data_access_imports_no_logic_and_no_handler():
    for module, names in modules_of("tap_pipeline").items():
        if module.startswith(DATA_ACCESS):
            used = {".".join(name.split(".")[:2]) for name in names if name.startswith("tap_pipeline.")}
            assert used - DATA_MAY_IMPORT == set(), module


def test_the_layering_check_sees_a_wrong_import(tmp_path):
    planted = tmp_path / "tap_contract"
    planted.mkdir()
    (planted / "leak.py").write_text(
        "import boto3\nfrom lib.config import StackSettings\nfrom . import api\n"
    )
    names = imports_of(planted / "leak.py", "tap_contract")
    assert {"boto3", "lib.config", "tap_contract.api"} <= names
    assert {name.split(".")[0] for name in names} & FORBIDDEN["tap_contract"] == {"boto3", "lib"}

"""Cold start: what the stack ships lets Lambda load bytecode instead of compiling at every cold start.

Lambda mounts the layer and unpacks the code asset read-only, so a module without a `.pyc` of the
runtime's version is compiled in memory by every new execution environment. Bytecode can only be
written by an interpreter of that version, so these tests exercise the compile path by declaring
this interpreter's tag the runtime's (`runtime_tag`), and the refusal path with a tag no interpreter
here has.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib import layer, packaging

THIS_INTERPRETER = sys.implementation.cache_tag
OTHER_PYTHON = "cpython-299"
CHECKED_HASH_FLAGS = 0b11  # PEP 552: hash-based, check the source


def pyc_flags(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[4:8], "little")


def make_site(site_dir: Path) -> None:
    (site_dir / "libpkg").mkdir(parents=True)
    (site_dir / "libpkg" / "__init__.py").write_text("VALUE = 41\n")
    (site_dir / "libpkg" / "core.py").write_text("from libpkg import VALUE\nANSWER = VALUE + 1\n")
    (site_dir / "single.py").write_text("X = 1\n")


def bytecode_of(source: Path) -> Path:
    """Where CPython looks for `source`'s bytecode by default (no pycache prefix, no -O)."""
    return source.parent / "__pycache__" / f"{source.stem}.{THIS_INTERPRETER}.pyc"


def materialize(assets: dict[str, str], root: Path) -> Path:
    """Unpack an asset map the way Lambda unpacks a zip: same paths, modification times not kept."""
    for name, path in assets.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        os.utime(target, (315532800, 315532800))  # 1980-01-01, the zip format's earliest time
    return root


def loaded_from(pythonpath: Path, module: str) -> str:
    """`python -B -v` import trace of `module` (never writes bytecode, like a read-only mount)."""
    probe = subprocess.run(  # noqa: S603 - this interpreter, a module name of the test's own
        [sys.executable, "-B", "-v", "-c", f"import {module}"],
        env={"PYTHONPATH": str(pythonpath)},
        cwd=pythonpath,
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stderr


def test_layer_build_compiles_every_module_with_hash_checked_bytecode(tmp_path, monkeypatch):
    site_dir = tmp_path / "python"
    make_site(site_dir)
    # A developer's PYTHONPYCACHEPREFIX must not send the layer's bytecode out of the layer.
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "elsewhere"))
    assert layer.compile_bytecode(site_dir, runtime_tag=THIS_INTERPRETER) == THIS_INTERPRETER
    assert sys.pycache_prefix == str(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    for source in site_dir.rglob("*.py"):
        compiled = bytecode_of(source)
        assert compiled.is_file(), source
        # Timestamp-checked bytecode would be ignored where zips lose their mtimes; hash-checked is
        # used, and a stale one can never run.
        assert pyc_flags(compiled) == CHECKED_HASH_FLAGS
    # Paths as Lambda shows them in tracebacks, and nothing of the build machine in the layer.
    code = marshal.loads(bytecode_of(site_dir / "libpkg" / "core.py").read_bytes()[16:])  # noqa: S302
    assert code.co_filename == "/opt/python/libpkg/core.py"
    # Python loads it without compiling, also once unpacked without the build's modification times.
    trace = loaded_from(
        materialize(
            {str(p.relative_to(site_dir)): str(p) for p in site_dir.rglob("*.py*")}, tmp_path / "opt"
        ),
        "libpkg.core",
    )
    assert f"code object from '{tmp_path / 'opt' / 'libpkg' / '__pycache__'}" in trace


def test_layer_built_by_another_python_holds_no_bytecode_and_the_stack_says_so(tmp_path):
    site_dir = tmp_path / "python"
    make_site(site_dir)
    assert layer.compile_bytecode(site_dir, runtime_tag=OTHER_PYTHON) is None
    assert not list(site_dir.rglob("*.pyc"))

    manifest = {"bytecode": None}
    (tmp_path / layer.MANIFEST_NAME).write_text(json.dumps(manifest))
    problem = layer.bytecode_problem(tmp_path)
    assert problem is not None
    assert "every cold start compiles" in problem and "python3.12 -m lib.layer" in problem
    (tmp_path / layer.MANIFEST_NAME).write_text(json.dumps({"bytecode": layer.RUNTIME_CACHE_TAG}))
    assert layer.bytecode_problem(tmp_path) is None


def test_layer_manifest_records_the_bytecode_it_holds(tmp_path, monkeypatch):
    def fake_pip(argv, check):
        make_site(Path(argv[argv.index("--target") + 1]))

    monkeypatch.setattr(layer.subprocess, "run", fake_pip)
    monkeypatch.setattr(layer, "layer_problem", lambda *args: None)
    manifest = layer.build(tmp_path / "built")
    expected = layer.RUNTIME_CACHE_TAG if THIS_INTERPRETER == layer.RUNTIME_CACHE_TAG else None
    assert manifest["bytecode"] == expected
    assert layer.read_manifest(tmp_path / "built")["bytecode"] == expected


def test_code_asset_bytecode_is_one_reproducible_pyc_per_source_with_lambda_paths(tmp_path):
    first = packaging.function_bytecode(build_dir=tmp_path / "a", runtime_tag=THIS_INTERPRETER)
    sources = packaging.function_source_files()
    assert sorted(first) == sorted(str(bytecode_of(Path(name))) for name in sources)
    for archive_name, path in first.items():
        assert archive_name.startswith(("tap_pipeline/", "tap_contract/")) and "/__pycache__/" in archive_name
        assert pyc_flags(path) == CHECKED_HASH_FLAGS
    handler = first[str(bytecode_of(Path("tap_pipeline/handlers/validator.py")))]
    code = marshal.loads(handler.read_bytes()[16:])  # noqa: S302 - bytecode we just compiled
    assert code.co_filename == "/var/task/tap_pipeline/handlers/validator.py"  # as tracebacks show it
    # Reproducible, so the asset hash (and a function update) changes only with the code, also
    # when compiled by another process.
    second_dir = tmp_path / "b"
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from lib import packaging; packaging.function_bytecode("
            f"build_dir=Path({str(second_dir)!r}), runtime_tag={THIS_INTERPRETER!r})",
        ],
        cwd=packaging.REPO_ROOT,
        check=True,
    )
    for archive_name, path in first.items():
        assert (second_dir / archive_name).read_bytes() == path.read_bytes(), archive_name


def test_code_asset_unpacked_without_its_mtimes_loads_its_bytecode(tmp_path):
    archive = packaging.function_code_archive(build_dir=tmp_path / "build", runtime_tag=THIS_INTERPRETER)
    assets = {name: asset.path for name, asset in archive.assets.items()}
    assert {name for name in assets if name.endswith(".py")} == set(packaging.function_source_files())
    task_root = materialize(assets, tmp_path / "task")
    trace = loaded_from(task_root, "tap_pipeline.card")
    assert f"code object from '{task_root / 'tap_pipeline' / '__pycache__'}" in trace
    assert f"code object from '{task_root / 'tap_pipeline' / 'card.py'}" not in trace  # not compiled


def test_code_asset_holds_no_bytecode_another_python_would_ignore(tmp_path):
    assert packaging.function_bytecode(build_dir=tmp_path, runtime_tag=OTHER_PYTHON) == {}
    assert not tmp_path.exists() or not list(tmp_path.rglob("*.pyc"))


@pytest.mark.skipif(THIS_INTERPRETER == layer.RUNTIME_CACHE_TAG, reason="this interpreter is the runtime's")
def test_stack_warns_at_preview_when_cold_starts_would_compile(monkeypatch):
    from tests.unit.stack.conftest import evaluate_stack

    warnings: list[str] = []
    monkeypatch.setattr(
        "lib.components.functions.pulumi.log.warn", lambda message, resource=None: warnings.append(message)
    )
    monkeypatch.setattr("lib.components.functions.deploying", lambda: True)  # as under preview/up
    graph = evaluate_stack()
    for function in graph.of_type("aws:lambda/function:Function"):
        assert not [name for name in function.inputs["code"].assets if name.endswith(".pyc")]
    assert any("code asset ships no Python 3.12 bytecode" in warning for warning in warnings)
    assert any("layer" in warning and "holds no Python 3.12 bytecode" in warning for warning in warnings)


def test_no_deploy_warnings_when_evaluated_under_mocks(monkeypatch):
    """Issue 9: `make local` and `make demo` evaluate the program under mocks and ship nothing, so
    the bytecode notices (which concern what `pulumi up` ships) are not printed there."""
    from tests.unit.stack.conftest import evaluate_stack

    warnings: list[str] = []
    monkeypatch.setattr(
        "lib.components.functions.pulumi.log.warn", lambda message, resource=None: warnings.append(message)
    )
    evaluate_stack()
    assert warnings == []

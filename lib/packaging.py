"""The function code asset: the `tap_pipeline` and `tap_contract` packages, file by file (F14).

Built from the source tree without the network: the packages' own `.py` files, plus their bytecode
when the program runs on the runtime's Python version (Lambda's `/var/task` is read-only, so without
it every cold start compiles the package in memory; lib/layer.py says why the bytecode is
hash-checked). The asset (and its hash, which triggers an update) changes exactly when the code
does. Third-party imports are served by the layer built from requirements/functions.txt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pulumi

from lib.layer import BYTECODE_MODE, RUNTIME_CACHE_TAG, builds_runtime_bytecode

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTION_SOURCE_ROOT = REPO_ROOT / "src"
# The functions' code and the contract they share with the stack (tap_contract imports neither).
FUNCTION_PACKAGES = ("tap_pipeline", "tap_contract")
BYTECODE_BUILD_DIR = REPO_ROOT / "build" / "function-bytecode"
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the code asset: the paths tracebacks show


def function_source_files(
    source_root: Path = FUNCTION_SOURCE_ROOT, packages: tuple[str, ...] = FUNCTION_PACKAGES
) -> list[str]:
    """Archive paths of every Python source file in the packages, sorted for a stable asset."""
    files: list[str] = []
    for package in packages:
        package_dir = source_root / package
        if not (package_dir / "__init__.py").is_file():
            raise FileNotFoundError(f"function package not found: {package_dir}/__init__.py")
        files.extend(
            path.relative_to(source_root).as_posix()
            for path in package_dir.rglob("*.py")
            if "__pycache__" not in path.parts
        )
    return sorted(files)


_COMPILE_CHILD = """
import json, py_compile, sys
for source, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(source, cfile=cfile, dfile=dfile, doraise=True, optimize=0,
                       invalidation_mode=py_compile.PycInvalidationMode.{mode})
"""


def function_bytecode(
    source_root: Path = FUNCTION_SOURCE_ROOT,
    packages: tuple[str, ...] = FUNCTION_PACKAGES,
    build_dir: Path = BYTECODE_BUILD_DIR,
    runtime_tag: str = RUNTIME_CACHE_TAG,
) -> dict[str, Path]:
    """Archive path of each source file's `.pyc` -> the compiled file, or {} when this interpreter
    is not the runtime's version (Python would ignore its bytecode there)."""
    if not builds_runtime_bytecode(runtime_tag):
        return {}
    compiled: dict[str, Path] = {}
    jobs = []
    for name in function_source_files(source_root, packages):
        source = PurePosixPath(name)
        # Where the runtime's import system looks, whatever PYTHONPYCACHEPREFIX or -O say here.
        archive_name = str(source.parent / "__pycache__" / f"{source.stem}.{runtime_tag}.pyc")
        target = build_dir / archive_name
        target.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((str(source_root / name), str(target), f"{LAMBDA_TASK_ROOT}/{name}"))
        compiled[archive_name] = target
    # In a fresh, isolated interpreter: marshal records whether each string constant is interned,
    # and that depends on what the compiling process has loaded (a one-character constant is
    # interned once any loaded module interned the same character), so the same source compiled
    # in a busy process (the tests, the local runtime) and in `pulumi up` could differ, changing
    # the asset hash, and updating the functions, for nothing.
    subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-I", "-S", "-c", _COMPILE_CHILD.format(mode=BYTECODE_MODE.name)],
        input=json.dumps(jobs),
        text=True,
        check=True,
    )
    return compiled


def function_code_archive(
    source_root: Path = FUNCTION_SOURCE_ROOT,
    packages: tuple[str, ...] = FUNCTION_PACKAGES,
    build_dir: Path = BYTECODE_BUILD_DIR,
    runtime_tag: str = RUNTIME_CACHE_TAG,
) -> pulumi.Archive:
    assets = {name: str(source_root / name) for name in function_source_files(source_root, packages)}
    bytecode = function_bytecode(source_root, packages, build_dir, runtime_tag)
    assets.update({name: str(path) for name, path in bytecode.items()})
    return pulumi.AssetArchive({name: pulumi.FileAsset(path) for name, path in sorted(assets.items())})

"""The function code asset: the `tap_pipeline` package, file by file (F14).

Built from the source tree without the network: only the package's own `.py` files go in, so the
asset (and its hash, which triggers an update) changes exactly when the code does. Third-party
imports are served by the layer built from requirements/functions.txt (lib/layer.py).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pulumi

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTION_SOURCE_ROOT = REPO_ROOT / "src"
FUNCTION_PACKAGE = "tap_pipeline"


def function_source_files(
    source_root: Path = FUNCTION_SOURCE_ROOT, package: str = FUNCTION_PACKAGE
) -> list[str]:
    """Archive paths of every Python source file in the package, sorted for a stable asset."""
    package_dir = source_root / package
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"function package not found: {package_dir}/__init__.py")
    return sorted(
        path.relative_to(source_root).as_posix()
        for path in package_dir.rglob("*.py")
        if "__pycache__" not in path.parts
    )


def function_code_archive(
    source_root: Path = FUNCTION_SOURCE_ROOT, package: str = FUNCTION_PACKAGE
) -> pulumi.Archive:
    return pulumi.AssetArchive(
        {
            name: pulumi.FileAsset(str(source_root / name))
            for name in function_source_files(source_root, package)
        }
    )


# Standard-library modules of the functions' runtime (python3.12): this interpreter's list, less the
# modules Python 3.12 removed (PEP 594 / PEP 632), so code importing them is caught here.
REMOVED_IN_PYTHON_312 = frozenset({"asynchat", "asyncore", "distutils", "imp", "smtpd"})
RUNTIME_STDLIB = frozenset(sys.stdlib_module_names) - REMOVED_IN_PYTHON_312


def imported_modules(package_dir: Path) -> dict[str, set[str]]:
    """Top-level module of every absolute `import` / `from ... import` -> files that import it."""
    found: dict[str, set[str]] = {}
    # Exactly the files the code asset ships.
    for name in function_source_files(package_dir.parent, package_dir.name):
        path = package_dir.parent / name
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue  # relative imports stay inside the package
            for name in names:
                found.setdefault(name.split(".", 1)[0], set()).add(path.relative_to(package_dir).as_posix())
    return found


def unresolved_imports(package_dir: Path, provided: set[str]) -> dict[str, set[str]]:
    """Imports neither the runtime's standard library nor `provided` (code asset + layers) satisfy."""
    return {
        module: files
        for module, files in imported_modules(package_dir).items()
        if module not in RUNTIME_STDLIB and module not in provided
    }

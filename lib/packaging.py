"""The function code asset: the `tap_pipeline` package, file by file (F14).

Built from the source tree without the network: only the package's own `.py` files go in, so the
asset (and its hash, which triggers an update) changes exactly when the code does. Third-party
imports are served by the pinned Powertools layer (see lib/components/functions.py).
"""

from __future__ import annotations

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

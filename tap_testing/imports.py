"""What a Python file imports, read from its source (no import is executed)."""

from __future__ import annotations

import ast
from pathlib import Path


def imports_of(path: Path, package: str) -> set[str]:
    """Absolute module names imported by one file (relative imports resolved against ``package``),
    each ``from m import n`` also as ``m.n`` (``n`` may be a submodule)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            elif node.module:
                module = node.module
            else:
                continue
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names

"""Keep the SQS consumers' init to what their path uses: Powertools' event data classes index.

Powertools' batch utility (``aws_lambda_powertools.utilities.batch.base``, which the consumers need
for partial batch failures, F15) imports four event modules it maps batch types to:
``data_classes.sqs_event``, ``dynamo_db_stream_event``, ``kinesis_stream_event`` and
``kafka_event``. Importing any submodule makes Python run its package's ``__init__`` first, and
``data_classes/__init__.py`` is an index that imports every one of Powertools' ~40 event classes
(API Gateway, AppSync, Cognito, S3, SES, CodePipeline, ...): about 7-11 ms of the consumers' cold
start (BENCHMARKS.md section 1) for modules nothing of ours uses. Powertools offers no switch for
it, and importing "only the submodules" cannot avoid it, since the parent package runs first.

:func:`skip_data_classes_index` registers the ``data_classes`` package the way the import system
would, from its own spec, and replaces running its index by reading it: the index's source is
parsed (not executed) into "name -> submodule", and the package answers a name on first access by
importing just that submodule (PEP 562 module ``__getattr__``). The SQS path needs this: Powertools'
own ``sqs_event`` module does ``from ...data_classes import S3Event``. Submodule imports work as
usual (the package has its real ``__path__``, ``__spec__`` and ``__file__``), every name the index
exports resolves to the same object a normal import gives, and ``__all__`` is the index's. Nothing
in Powertools is patched. The one assumption, checked on every cold start, is that the index only
re-exports: docstring, relative ``from .module import names`` and ``__all__``. If the installed
Powertools' index holds anything else, nothing is changed and the package imports normally
(tests/unit/functions/test_cold_start_imports.py pins both outcomes).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

DATA_CLASSES = "aws_lambda_powertools.utilities.data_classes"


def read_index(source: str) -> tuple[dict[str, str], list[str]] | None:
    """(name -> submodule, ``__all__``) of a package index that only re-exports; None otherwise."""
    names: dict[str, str] = {}
    exported: list[str] = []
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # the docstring
        if isinstance(statement, ast.ImportFrom) and statement.level == 1 and statement.module:
            for alias in statement.names:
                if alias.name == "*":
                    return None
                names[alias.asname or alias.name] = statement.module
            continue
        if (
            isinstance(statement, ast.Assign)
            and [getattr(target, "id", None) for target in statement.targets] == ["__all__"]
            and isinstance(statement.value, ast.List | ast.Tuple)
        ):
            exported = [str(ast.literal_eval(element)) for element in statement.value.elts]
            continue
        return None  # anything else may be a side effect: import the package normally
    return names, exported


def skip_data_classes_index() -> bool:
    """Register Powertools' data classes package with a lazy index (see the module docstring).

    True when installed; False, changing nothing, if the package is imported already, cannot be
    found (an import of it then fails where it is made, as it would have) or its index does more
    than re-export."""
    if DATA_CLASSES in sys.modules:
        return False
    spec = importlib.util.find_spec(DATA_CLASSES)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return False
    index = read_index(Path(spec.origin).read_text(encoding="utf-8"))
    if index is None:
        return False
    names, exported = index
    package = importlib.util.module_from_spec(spec)

    def resolve(name: str) -> Any:
        if name == "__all__":
            return list(exported)
        if name not in names:
            raise AttributeError(f"module {DATA_CLASSES!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{DATA_CLASSES}.{names[name]}"), name)
        setattr(package, name, value)  # answered once; later lookups are plain attributes
        return value

    package.__dict__["__getattr__"] = resolve
    sys.modules[DATA_CLASSES] = package
    parent_name, _, child = DATA_CLASSES.rpartition(".")
    setattr(sys.modules[parent_name], child, package)
    return True

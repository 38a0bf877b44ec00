"""Lambda entry points. Each module is thin: event plumbing and observability around domain code.

Each handler imports everything its main path uses at init, not on first use: a deferred import
still lands in the cold start (the first request pays it), and there it runs on the memory's share
of a vCPU (about 0.3 at 512 MB) instead of init's burst CPU (AWS's Lambda Web Adapter docs; not in
the Lambda guide). tests/unit/functions/test_cold_start_imports.py pins it; BENCHMARKS.md measures it.

The cyclic garbage collector is off while a handler module initialises and its objects are frozen
at the end (:func:`finish_init`). Init creates some 85,000 objects (modules, classes, functions,
botocore models) that live as long as the execution environment; with the collector on, Python
scans them again and again while they are being created (on this machine a full collection and a
dozen partial ones, 20-30 ms of a handler's init, BENCHMARKS.md section 1) and finds almost nothing:
about 1,300 objects of import-time cyclic garbage, which stay in memory instead. ``gc.freeze``
moves init's objects to a generation the collector never scans again, as Python's documentation
advises before a ``fork`` (https://docs.python.org/3/library/gc.html#gc.freeze); a SnapStart
snapshot is the same situation (tap_pipeline.snapstart freezes again before the snapshot, so a
collection after a restore does not walk, and fault in, every page init filled). Nothing is
deferred: the collector is back on before the first request, with only that request's objects to
look at.
"""

import gc

from tap_pipeline.lean_imports import skip_data_classes_index

# Before any handler imports Powertools' batch utility: it needs four of Powertools' event data
# classes, and the package index would import all of them (tap_pipeline.lean_imports says how and why).
skip_data_classes_index()
gc.disable()  # until finish_init(), at the end of the handler module


def finish_init() -> None:
    """The last statement of every handler module: freeze what init created, collector back on."""
    gc.freeze()
    gc.enable()

"""Lambda entry points. Each module is thin: event plumbing and observability around domain code.

Each handler imports everything its main path uses at init, not on first use: a deferred import
still lands in the cold start (the first request pays it), and there it runs on the memory's share
of a vCPU (about 0.3 at 512 MB) instead of init's burst CPU (AWS's Lambda Web Adapter docs; not in
the Lambda guide). tests/unit/functions/test_cold_start_imports.py pins it; BENCHMARKS.md measures it.
"""

from tap_pipeline.lean_imports import skip_data_classes_index

# Before any handler imports Powertools' batch utility: it needs four of Powertools' event data
# classes, and the package index would import all of them (tap_pipeline.lean_imports says how and why).
skip_data_classes_index()

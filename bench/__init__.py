"""Benchmarks: cold start, cost per transaction, capacity, local soak, emulator per-call cost.

Run with ``make bench`` (full: writes BENCHMARKS.md) or ``BENCH_MODE=quick make bench`` (CI: tiny
sizes, only proves every benchmark still executes). Figures are medians of several runs and ratios
are taken within one run, because shared machines are noisy.
"""

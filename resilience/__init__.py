"""Executable resilience evidence for the local pipeline: fuzzing, faults, load, card data, redrive.

`python -m resilience --mode quick|long` (or `make resilience`) runs every part and prints its
figures; `tests/resilience/` runs the quick sizes under pytest and asserts the invariants.
"""

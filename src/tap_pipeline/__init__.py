"""Card-transaction pipeline functions: validator (API), fraud detector (SQS) and failed handler (DLQ).

The package is the Lambda code asset (root ``src/``). Handlers live in :mod:`tap_pipeline.handlers`
and stay thin; the domain code they share (models, money, card data, rules, data access) lives in
the sibling modules so no logic is copied between functions.
"""

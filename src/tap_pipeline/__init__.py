"""Card-transaction pipeline functions: validator (API), fraud detector (SQS) and failed handler (DLQ).

The package is the Lambda code asset (root ``src/``, next to the ``tap_contract`` package it shares
with the stack). Three layers, imported one way: :mod:`tap_pipeline.handlers` (thin: events in,
responses out, the only code that knows HTTP statuses) over the logic modules (``intake``,
``scoring``, ``failures``, ``alerts``, ``features``, ``rules``, ``amounts``; typed results) over
:mod:`tap_pipeline.data` (the only code that calls AWS). No logic is copied between functions.
"""

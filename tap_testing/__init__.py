"""What tests, benchmarks, the fraud evaluation and the resilience runs share to drive the pipeline.

* :mod:`.backend` — a moto account laid out as the contract (:mod:`tap_contract`) describes, the
  function environment, and Lambda events, to run the handlers in-process.
* :mod:`.cards` — test card numbers and expiry dates.
* :mod:`.stack` — the real Pulumi program evaluated under the mock engine (:mod:`lib.graph`), and
  helpers to read what it declares.
* :mod:`.calls` — one hook that observes every AWS request (counts, least-privilege records).

Nothing outside ``tests/`` imports the tests themselves; this package is where shared test tooling
lives instead. It is never part of the functions' code asset.
"""

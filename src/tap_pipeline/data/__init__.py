"""Data access: the only code in the package that calls AWS (DynamoDB, SQS, SNS, Secrets Manager).

One module per store: :mod:`.merchants` (merchant configuration, cached), :mod:`.transactions`
(records and their idempotency guards), :mod:`.fraud_state` (card events and merchant amount
profiles), :mod:`.queue` (the transaction queue), :mod:`.topics` (alert topics), :mod:`.secrets`
(the card-fingerprint key), :mod:`.idempotency_store` (Powertools' idempotency records), over the
shared clients of :mod:`.clients`. Each store module offers
one cached factory built from the function's settings. The logic modules (intake, scoring,
failures, alerts) call these; handlers never do. Nothing here imports the logic, the rules or a
handler: only settings, observability and the domain values stored (:mod:`tap_pipeline.amounts`'
profiles, :mod:`tap_pipeline.card`'s key size), as ``tests/unit/test_layering.py`` checks.
"""

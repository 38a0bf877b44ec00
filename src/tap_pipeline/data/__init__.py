"""Data access: the only code in the package that calls AWS (DynamoDB, SQS, SNS, Secrets Manager).

One module per store: :mod:`.merchants` (merchant configuration, cached), :mod:`.transactions`
(records and their idempotency guards), :mod:`.fraud_state` (card events and merchant amount
profiles), :mod:`.queue` (the transaction queue), :mod:`.topics` (alert topics), :mod:`.secrets`
(the card-fingerprint key), over the shared clients of :mod:`.clients`. Each store module offers
one cached factory built from the function's settings. The logic modules (intake, scoring,
failures) call these; handlers never do, and nothing here imports the rules or the logic.
"""

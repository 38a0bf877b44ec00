"""Table keys and index names the stack creates and the functions read and write."""

from __future__ import annotations

MERCHANT_ID = "merchant_id"
"""Hash key of the merchant config table."""

TRANSACTION_ID = "transaction_id"
TIMESTAMP = "timestamp"
MERCHANT_SHARD = "merchant_shard"
"""Transactions table: hash ``transaction_id``, range ``timestamp``; the merchant index is keyed by
``merchant_shard`` (``"{merchant_id}#{n}"``) and ``timestamp``."""

MERCHANT_INDEX_NAME = "merchant-index"
MERCHANT_INDEX_SHARDS = 16
"""Write shards of the merchant index, so one merchant at 1,000 TPS spreads over 16 partitions (F13)."""

FRAUD_STATE_PK = "pk"
FRAUD_STATE_SK = "sk"
FRAUD_STATE_TTL = "expires_at"
"""Fraud-state table: card events and merchant amount profiles, with a TTL in epoch seconds."""

IDEMPOTENCY_ID = "id"
IDEMPOTENCY_TTL = "expiration"
"""Powertools idempotency table: its default key and TTL attribute names."""

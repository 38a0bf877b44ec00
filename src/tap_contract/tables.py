"""Table keys and index names the stack creates and the functions read and write."""

from __future__ import annotations

MERCHANT_ID = "merchant_id"
"""Hash key of the merchant config table."""

TRANSACTION_ID = "transaction_id"
TIMESTAMP = "timestamp"
MERCHANT_SHARD = "merchant_shard"
"""Transactions table: hash ``transaction_id``, range ``timestamp``; the merchant index is keyed by
``merchant_shard`` (``"{merchant_id}#{n}"``) and ``timestamp``."""

PENDING_SHARD = "pending_shard"
PENDING_SINCE = "pending_since"
"""Set only while a record is RECEIVED (``"pending#{n}"`` and an ISO time: the receive time, moved to
the last re-enqueue): the sparse pending index holds exactly the transactions still waiting for a
verdict, so the reconciler finds stale ones without a scan."""

PENDING_INDEX_NAME = "pending-index"
PENDING_INDEX_SHARDS = 16
"""Pending index: hash ``pending_shard``, range ``pending_since``, keys only. Its shards hold every
merchant's traffic, so 16 write shards keep 1,000 TPS of inserts and removals at ~130 writes/s per
partition (BENCHMARKS.md, hot merchant), and ~7,500 TPS under DynamoDB's 1,000 WCU/s per partition."""

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

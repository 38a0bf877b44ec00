"""Hot merchant: writes per second on the busiest DynamoDB item when one merchant sends 1,000 TPS.

Ten seconds of traffic (10,000 messages, one merchant, cards drawn from a pool) are turned into the
exact item keys the code writes, using the package's own key functions and the detector's batch
buffer: the RECEIVED record, guard and card event (validator), the status update, and the merchant
amount profile (``ProfileBuffer``, one write per batch as delivered by the event source mapping).
``merchant-index`` and ``pending-index`` partitions are reported separately: they are GSI partition
keys, not items (each gets two writes per transaction: the record's insert and its verdict).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.common import Mode

TPS = 1_000
TARGET_WRITES_PER_SECOND = 500


@dataclass
class HotResult:
    messages: int
    batch_size: int
    card_pool: int
    busiest_item: str
    busiest_writes_per_second: float
    busiest_baseline_writes_per_second: float
    busiest_index_partition_writes_per_second: float
    busiest_pending_partition_writes_per_second: float


def run(mode: Mode, batch_size: int = 10) -> HotResult:
    from tap_contract.messages import TransactionMessage
    from tap_pipeline import features
    from tap_pipeline.data import fraud_state, items, transactions

    messages = 2_000 if mode.quick else 10_000
    seconds = messages / TPS
    rng = random.Random(6)  # noqa: S311 - reproducible synthetic traffic, not security
    pool = 2_000
    start = datetime.now(UTC)
    state = fraud_state.FraudState("fraud", 16)
    writes: Counter[str] = Counter()
    index_writes: Counter[str] = Counter()
    pending_writes: Counter[str] = Counter()
    buffer = features.ProfileBuffer()
    batch: list[TransactionMessage] = []
    for index in range(messages):
        transaction_id = f"hot-{index}"
        at = start + timedelta(seconds=index / TPS)
        shard = items.merchant_shard_key("hot-merchant", transaction_id, 16)
        message = TransactionMessage(
            transaction_id=transaction_id,
            timestamp=items.iso_millis(at),
            merchant_id="hot-merchant",
            merchant_shard=shard,
            amount=f"{rng.randint(5, 200)}.00",
            currency="USD",
            card={"fingerprint": f"fp{rng.randrange(pool):05d}", "kind": "token"},
        )
        writes[f"transactions:{transaction_id}"] += 2  # RECEIVED put + final status update
        writes[f"idempotency:{transactions.guard_id(transaction_id)}"] += 1
        index_writes[shard] += 2
        pending_writes[items.pending_shard_key(transaction_id)] += 2  # set at intake, removed at verdict
        event = fraud_state.card_event_item(message)
        writes[f"fraud:{event['pk']}|{event['sk']}"] += 1
        batch.append(message)
        if len(batch) == batch_size or index == messages - 1:
            for item in batch:
                buffer.add(item, None)
            for update in buffer.pending_updates(state):
                writes[f"fraud:{update['Key']['pk']}|{update['Key']['sk']}"] += 1
            buffer.clear()
            batch = []
    busiest, count = writes.most_common(1)[0]
    baseline = max(v for k, v in writes.items() if "amounts#" in k)
    return HotResult(
        messages=messages,
        batch_size=batch_size,
        card_pool=pool,
        busiest_item=busiest,
        busiest_writes_per_second=count / seconds,
        busiest_baseline_writes_per_second=baseline / seconds,
        busiest_index_partition_writes_per_second=max(index_writes.values()) / seconds,
        busiest_pending_partition_writes_per_second=max(pending_writes.values()) / seconds,
    )

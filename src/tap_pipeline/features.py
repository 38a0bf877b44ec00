"""The rules' inputs for one transaction, and the batch's contributions to merchant profiles.

Pure derivations over what :mod:`tap_pipeline.data.fraud_state` reads (the card's earlier events,
the merchant's amount profile), and the buffer that turns a batch's cleared amounts into one
profile update per merchant and currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tap_contract.messages import TransactionMessage
from tap_pipeline import amounts
from tap_pipeline.amounts import AmountProfile, is_small
from tap_pipeline.data.fraud_state import (
    HOUR,
    MINUTE,
    SPREAD_WINDOW_SECONDS,
    CardEvent,
    FraudState,
    profile_add,
    received_ms,
)
from tap_pipeline.data.items import stable_shard
from tap_pipeline.data.merchants import MerchantConfig
from tap_pipeline.observability import logger, tracer
from tap_pipeline.rules import Facts


def derive_facts(
    message: TransactionMessage,
    history: list[CardEvent],
    profile: AmountProfile,
    merchant: MerchantConfig | None,
) -> Facts:
    """The rules' inputs for one transaction, from the card events received before it (pure).

    Counts include the transaction itself. ``history`` holds only events earlier by receive time
    (see :meth:`FraudState.card_history`), which is what makes the result order independent.
    """
    now = received_ms(message)
    within = [event for event in history if event.received_ms > now - HOUR * 1000]
    minute = [event for event in within if event.received_ms > now - MINUTE * 1000]
    spread = {event.merchant_id for event in within if event.received_ms > now - SPREAD_WINDOW_SECONDS * 1000}
    gaps = [
        (now - event.received_ms) / 1000
        for event in within
        if event.merchant_id == message.merchant_id
        and event.currency == message.currency
        and event.amount == message.amount
    ]
    small = is_small(message)
    amount = Decimal(message.amount)
    return Facts(
        transaction_id=message.transaction_id,
        amount=amount,
        currency=message.currency,
        country=message.country,
        merchant_country=merchant.country if merchant else None,
        merchant_max_amount=merchant.max_amount if merchant else None,
        card_count_minute=1 + len(minute),
        card_count_hour=1 + len(within),
        is_small_amount=small,
        card_small_count_hour=1 + sum(event.small for event in within) if small else 0,
        seconds_since_same_card_merchant_amount=min(gaps) if gaps else None,
        card_merchants_10m=len(spread | {message.merchant_id}),
        baseline_count=profile.count,
        baseline_median=profile.median if profile.established else None,
        amount_deviation=profile.deviation(amount),
    )


@dataclass
class _Contribution:
    """One merchant and currency's cleared amounts in this batch, as histogram bin counts."""

    first_transaction_id: str
    bins: dict[int, int] = field(default_factory=dict)


class ProfileBuffer:
    """Merchant-profile contributions of one batch, written with one ``ADD`` per merchant/currency.

    Why not one write per transaction: at 1,000 TPS on one merchant, summing a batch first cuts the
    writes to one per merchant and currency per batch, landing on a shard chosen per batch: ~6
    writes/s per shard item with 16 shards (plain ``ADD`` updates never conflict).

    What goes in: only transactions whose conditional status transition to CLEARED succeeded in
    this invocation (a redelivered message never contributes twice), and of those only amounts
    below :data:`tap_pipeline.amounts.OUTLIER_DEVIATION` once the profile is established, so
    neither flagged fraud nor a merchant's own rare outliers move "typical". A crash before the
    flush loses those samples, which a statistic can afford.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Contribution] = {}

    def add(self, message: TransactionMessage, deviation: float | None) -> bool:
        """Count a cleared amount in; False when it is kept out as an outlier."""
        if deviation is not None and deviation >= amounts.OUTLIER_DEVIATION:
            return False
        key = (message.merchant_id, message.currency)
        group = self._groups.setdefault(key, _Contribution(message.transaction_id))
        index = amounts.bin_of(Decimal(message.amount))
        group.bins[index] = group.bins.get(index, 0) + 1
        return True

    def clear(self) -> None:
        self._groups.clear()

    def pending_updates(self, state: FraudState) -> list[dict[str, Any]]:
        """``UpdateItem`` arguments for everything buffered (one per merchant and currency)."""
        return [
            profile_add(state.table_name, *key, self._shard(key, state), group.bins)
            for key, group in self._groups.items()
        ]

    def _shard(self, key: tuple[str, str], state: FraudState) -> int:
        # Chosen per batch from its first transaction, so batches spread over the shards.
        return stable_shard(self._groups[key].first_transaction_id, state.shards)

    @tracer.capture_method(capture_response=False)
    def flush(self, state: FraudState) -> int:
        """Write and forget the buffered contributions; returns how many samples were lost."""
        lost = 0
        for (merchant_id, currency), group in self._groups.items():
            try:
                state.add_to_profile(
                    merchant_id, currency, self._shard((merchant_id, currency), state), group.bins
                )
            except Exception:
                lost += sum(group.bins.values())
                logger.exception("merchant profile update failed; these samples are not counted")
        self.clear()
        return lost

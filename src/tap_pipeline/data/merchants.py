"""Merchant configurations: read by id, cached in memory per execution environment.

Merchant configurations change rarely and are read on every request, so they are cached for
``MERCHANT_CACHE_TTL_SECONDS`` (unknown merchants too, so a flood of requests for a bogus merchant
id does not become a flood of reads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from tap_contract import tables
from tap_pipeline.data import clients
from tap_pipeline.observability import tracer
from tap_pipeline.settings import merchant_settings


@dataclass(frozen=True)
class MerchantConfig:
    merchant_id: str
    active: bool
    allowed_currencies: frozenset[str]
    min_amount: Decimal
    max_amount: Decimal
    country: str | None = None
    rule_overrides: dict[str, Any] = field(default_factory=dict)
    flag_threshold: Decimal | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MerchantConfig:
        threshold = item.get("flag_threshold")
        return cls(
            merchant_id=str(item["merchant_id"]),
            active=bool(item.get("active", False)),
            allowed_currencies=frozenset(str(c) for c in item.get("allowed_currencies") or ()),
            min_amount=Decimal(str(item.get("min_amount", "0"))),
            max_amount=Decimal(str(item.get("max_amount", "0"))),
            country=item.get("country"),
            rule_overrides=dict(item.get("rule_overrides") or {}),
            flag_threshold=Decimal(str(threshold)) if threshold is not None else None,
        )


class MerchantDirectory:
    """Merchant configurations with a small TTL cache (per process)."""

    MAX_ENTRIES = 4096

    def __init__(self, table_name: str, ttl_seconds: int) -> None:
        self._table_name = table_name
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, MerchantConfig | None]] = {}

    def get(self, merchant_id: str) -> MerchantConfig | None:
        now = time.monotonic()
        hit = self._cache.get(merchant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        config = self._load(merchant_id)
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()  # crude but bounded: a cold reload costs one read per merchant
        self._cache[merchant_id] = (now + self._ttl, config)
        return config

    def _load(self, merchant_id: str) -> MerchantConfig | None:
        return read_config(self._table_name, merchant_id)


@tracer.capture_method(capture_response=False)
def read_config(table_name: str, merchant_id: str, *, consistent: bool = False) -> MerchantConfig | None:
    """One merchant's configuration, uncached (the directory caches it; tools read it directly)."""
    response = clients.dynamodb().get_item(
        TableName=table_name, Key={tables.MERCHANT_ID: merchant_id}, ConsistentRead=consistent
    )
    item = response.get("Item")
    return MerchantConfig.from_item(item) if item else None


@cache
def directory() -> MerchantDirectory:
    """This process's merchant directory (validator and fraud detector alike)."""
    s = merchant_settings()
    return MerchantDirectory(s.merchant_table, s.merchant_cache_ttl_seconds)

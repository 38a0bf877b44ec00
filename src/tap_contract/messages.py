"""The transaction queue's message: what the validator sends and the fraud detector reads.

The card travels as its keyed fingerprint + BIN + last 4 (:class:`CardSnapshot`), never the PAN.
``schema_version`` names the message format, so a future change can be told apart.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class CardSnapshot(BaseModel):
    """The card as the pipeline carries it: keyed fingerprints, BIN and last 4 only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    fingerprint: str
    kind: str
    bin: str | None = None
    last4: str | None = None
    # Which ring key ``fingerprint`` is computed with ("" in messages from before key rotation).
    key_version: str = ""
    # The card's fingerprints under every other key that was primary within the card-history window
    # (only in the hour after a key switch; empty otherwise): the detector reads the card's events
    # under each, so its velocity, testing and duplicate counts run on across a rotation.
    lookback_fingerprints: tuple[str, ...] = ()


class TransactionMessage(BaseModel):
    """Body of a transaction-queue message (and the source of the stored RECEIVED record).

    ``timestamp`` is the server's receive time and the record's sort key; the client's own
    ``timestamp`` (if any) travels as ``client_timestamp``. Using server time keeps the sort key and
    the fraud windows immune to a client back-dating transactions to dodge velocity rules.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1
    transaction_id: str
    timestamp: str
    merchant_id: str
    merchant_shard: str
    amount: str
    currency: str
    card: CardSnapshot
    customer_id: str | None = None
    country: str | None = None
    client_timestamp: str | None = None

    @property
    def received_at(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

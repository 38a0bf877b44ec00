"""P6: a poison dead letter's FAILED item records why it failed, not just that it did.

"Every transaction ... ends in exactly one final state (cleared, flagged, or failed with a recorded
reason)": the poison item is the only trace of a message that is not a transaction at all, so an
operator reading it must see the reason without the ops notice at hand.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tap_pipeline import failures

POISON_BODIES = {
    "not-json": "this is not json {",
    "json-array": '["4111111111111111", "737"]',
    "object-without-a-record-key": json.dumps({"amount": "12.00", "merchant_id": "m-1"}),
    # Names a record key, but no such record exists: falls through to the poison item.
    "names-a-missing-record": json.dumps(
        {"transaction_id": "ghost-1", "timestamp": "2025-03-01T12:00:00.000Z"}
    ),
}


def _letter(message_id: str, body: str) -> dict[str, Any]:
    return {
        "MessageId": message_id,
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "5", "SentTimestamp": "1740830400000"},
    }


@pytest.mark.parametrize("body", POISON_BODIES.values(), ids=POISON_BODIES.keys())
def test_p6_poison_message_failed_item_carries_its_failure_reason(pipeline, body):
    result = pipeline.run_failed_handler([_letter("poison-reason-1", body)])

    assert result == {"batchItemFailures": []}
    record = pipeline.record(failures.poison_key(body))
    assert record["status"] == "FAILED"
    assert record["timestamp"] == failures.POISON_SORT_KEY
    # The stored item itself says why, in the same words as the ops notice.
    assert record["failure_reason"] == failures.UNREADABLE_REASON
    (notice,) = pipeline.published(pipeline.ops_capture_url)
    assert notice["outcome"] == "poison"
    assert notice["reason"] == record["failure_reason"]

"""moto's per-message retention check without rebuilding every queue attribute.

Why this exists: moto 5.2.5's ``SQSBackend.receive_message`` calls
``is_message_valid_based_on_retention_period`` for every message it hands out, and that method
reads ``MessageRetentionPeriod`` through ``get_queue_attributes``, which builds the queue's whole
attribute map up to three times; the map includes ``ApproximateNumberOfMessages*``, each a pass
over every message on the queue. Receiving 10 messages from a queue holding n messages therefore
costs about 60 n message visits: a queue that falls behind by a few thousand messages makes every
receive slower, so it falls further behind. Locally, the validator can accept faster than the
fraud detector drains in a burst, which is exactly when this bites.

The correction reads the queue's retention period from the attribute moto already keeps on the
queue (``Queue.message_retention_period``, an int set by ``Queue._set_attributes``), with the same
comparison. `tests/unit/local/test_moto_fixes.py` checks both answers agree on both sides of the
boundary.

Upstream note (for a moto issue): "is_message_valid_based_on_retention_period calls
get_queue_attributes(['MessageRetentionPeriod']), which evaluates Queue.attributes (O(queue
length)) several times per received message; reading queue.message_retention_period directly
makes receive_message O(batch) for the check."
"""

from __future__ import annotations

from moto.core.utils import unix_time
from moto.sqs.models import Message, SQSBackend

from tap_local.moto_fixes.patching import Patch


def _is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]  # set by Queue._set_attributes
    return retention_period + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]  # int once sent


_PATCH = Patch(
    SQSBackend,
    "is_message_valid_based_on_retention_period",
    _is_message_valid_based_on_retention_period,
)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    _PATCH.uninstall()

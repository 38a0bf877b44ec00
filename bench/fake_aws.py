"""AWS answered in-process: every client's ``before-send`` returns a canned HTTP response.

botocore still validates, serialises and parses each call (real client CPU), but nothing leaves the
process. Used by the handler CPU benchmark (bench/cpu.py) and by the cold-start benchmark's first
request (bench/cold_start.py), which imports this module in its child only after the timed init, so
it must stay light: no Pulumi, no moto, no tap_testing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from botocore.awsrequest import AWSResponse

from tap_contract.seed import TEST_MERCHANT_ID

ACCOUNT_ID = "123456789012"  # lib.graph.DEFAULT_ACCOUNT_ID (not imported: it would load Pulumi)
# The resources the functions' environment names (any names do: every call is answered here).
FAKE_RESOURCE_ENVIRONMENT = {
    "MERCHANT_CONFIG_TABLE_NAME": "m",
    "TRANSACTIONS_TABLE_NAME": "t",
    "FRAUD_STATE_TABLE_NAME": "f",
    "IDEMPOTENCY_TABLE_NAME": "i",
    "TRANSACTION_QUEUE_URL": f"https://sqs.us-east-2.amazonaws.com/{ACCOUNT_ID}/q",
    "CARD_FINGERPRINT_SECRET_ARN": f"arn:aws:secretsmanager:us-east-2:{ACCOUNT_ID}:secret:k",
    "FRAUD_ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-2:{ACCOUNT_ID}:a",
    "OPS_ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-2:{ACCOUNT_ID}:o",
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


MERCHANT = {
    "merchant_id": {"S": TEST_MERCHANT_ID},
    "active": {"BOOL": True},
    "allowed_currencies": {"L": [{"S": "USD"}, {"S": "EUR"}]},
    "min_amount": {"N": "0.50"},
    "max_amount": {"N": "5000.00"},
    "country": {"S": "US"},
}


def _sns_publish(request: Any) -> AWSResponse:
    """SNS speaks the query protocol: its answer is XML."""
    body = (
        '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
        f"<MessageId>{uuid.uuid4()}</MessageId></PublishResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishResponse>"
    )
    return AWSResponse(request.url, 200, {"content-type": "text/xml"}, _Raw(body.encode()))  # type: ignore[arg-type]  # botocore only reads .content


def _fake(request: Any, **_: Any) -> AWSResponse:
    if "sns." in str(request.url):
        return _sns_publish(request)
    target = request.headers.get("X-Amz-Target", b"")
    target = target.decode() if isinstance(target, bytes) else target
    operation = target.rsplit(".", 1)[-1]
    body: dict[str, Any] = {}
    if operation == "GetItem":
        body = {"Item": MERCHANT}
    elif operation == "BatchGetItem":
        request_items = json.loads(request.body)["RequestItems"]
        # Warm state: the merchant profile exists (no seeding query) and is established (cached
        # after this read); the card has no earlier events (Query below).
        body = {
            "Responses": {
                name: [
                    {**key, "h117": {"N": "4"}, "h118": {"N": "6"}, "h119": {"N": "4"}}
                    for key in spec["Keys"]
                    if key["pk"]["S"].startswith("amounts#")
                ]
                for name, spec in request_items.items()
            },
            "UnprocessedKeys": {},
        }
    elif operation == "Query":
        body = {"Items": [], "Count": 0, "ScannedCount": 0}
    elif operation == "SendMessage":
        sent = json.loads(request.body)
        FakeAws.sent.append(sent["MessageBody"])
        md5 = hashlib.md5(sent["MessageBody"].encode()).hexdigest()  # noqa: S324 - SQS's own checksum
        body = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": md5}
    elif operation == "GetSecretValue":
        body = {"SecretString": "00" * 32, "Name": "k", "ARN": "arn:aws:secretsmanager:us-east-2:1:secret:k"}
    data = json.dumps(body).encode()
    return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.0"}, _Raw(data))  # type: ignore[arg-type]  # botocore only reads .content


class FakeAws:
    sent: list[str] = []

    @staticmethod
    def install() -> None:
        from tap_pipeline.data import clients

        for factory in (
            clients.dynamodb,
            clients.sqs,
            clients.sns,
            clients.secretsmanager,
            clients.raw_dynamodb,
        ):
            factory().meta.events.register_first("before-send", _fake)

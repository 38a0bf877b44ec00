"""Queues and topics (P3, P6, P8, C8, F8, F20).

    validator --> transaction queue --(5 receives)--> transaction DLQ --(10 in all)--> parking DLQ
                        |                                   |
                  fraud detector                      failed handler
    async invocation failures of any function --> async-failure DLQ

The two terminal queues (parking and async-failure) have no further DLQ: nothing consumes them
automatically, they retain 14 days and alarm on depth > 0; a DLQ behind a DLQ would only move the
problem. Every queue and topic is encrypted with the stack's key and refuses non-TLS requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent
from tap_contract import queues

TRANSACTION_VISIBILITY_TIMEOUT_SECONDS = 300  # P3; 5x the 60 s function timeout
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # C8
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
# AWS guidance for Lambda-consumed queues is 5 or more, so throttled polls never dead-letter a good message.
MAX_RECEIVE_COUNT = 5
# A message keeps its receive count when it moves to a dead-letter queue (the emulator does this,
# and AWS documents no reset), so the DLQ's own redrive must allow more receives than the source's,
# or the failed handler would never see a message before it is parked.
DLQ_MAX_RECEIVE_COUNT = 2 * MAX_RECEIVE_COUNT
KMS_DATA_KEY_REUSE_SECONDS = 300  # caches data keys so 1,000 msg/s do not mean 1,000 KMS calls/s
SQS_ACTIONS = ["sqs:*"]  # only ever used in a Deny (TLS-only); never granted


@dataclass
class MessagingArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    alert_email: str


class Messaging(TaggedComponent):
    """The transaction queue with its DLQ chain, the async-failure DLQ, and the alert topics."""

    component_name = "messaging"

    def __init__(self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Messaging", name, args.context, opts)
        self._kms_key_arn = args.kms_key_arn

        self.parking_dlq = self._queue("parking-dlq", queues.PARKING_DLQ, DLQ_RETENTION_SECONDS, 60)
        self.transaction_dlq = self._queue(
            "transaction-dlq",
            queues.TRANSACTIONS_DLQ,
            DLQ_RETENTION_SECONDS,
            TRANSACTION_VISIBILITY_TIMEOUT_SECONDS,
            dead_letter_target=self.parking_dlq,
            max_receive_count=DLQ_MAX_RECEIVE_COUNT,
        )
        self.transaction_queue = self._queue(
            "transaction-queue",
            queues.TRANSACTIONS,
            QUEUE_RETENTION_SECONDS,
            TRANSACTION_VISIBILITY_TIMEOUT_SECONDS,
            dead_letter_target=self.transaction_dlq,
        )
        self.async_failure_dlq = self._queue(
            "async-failure-dlq", queues.ASYNC_FAILURE_DLQ, DLQ_RETENTION_SECONDS, 60
        )
        self._allow_redrive_only_from(self.transaction_dlq, "transaction-dlq", self.transaction_queue)
        self._allow_redrive_only_from(self.parking_dlq, "parking-dlq", self.transaction_dlq)

        self.fraud_alert_topic = self._topic("fraud-alert-topic", queues.FRAUD_ALERTS, args.alert_email)
        self.ops_alert_topic = self._topic("ops-alert-topic", queues.OPS_ALERTS, args.alert_email)

        self.register_outputs(
            {
                "transaction_queue_url": self.transaction_queue.url,
                "transaction_dlq_url": self.transaction_dlq.url,
                "fraud_alert_topic_arn": self.fraud_alert_topic.arn,
                "ops_alert_topic_arn": self.ops_alert_topic.arn,
            }
        )

    def _queue(
        self,
        resource_name: str,
        purpose: str,
        retention_seconds: int,
        visibility_timeout_seconds: int,
        dead_letter_target: aws.sqs.Queue | None = None,
        max_receive_count: int = MAX_RECEIVE_COUNT,
    ) -> aws.sqs.Queue:
        redrive_policy = (
            dead_letter_target.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
            )
            if dead_letter_target is not None
            else None
        )
        queue = aws.sqs.Queue(
            resource_name,
            name=self.context.name(purpose),
            message_retention_seconds=retention_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
            receive_wait_time_seconds=20,  # long polling: fewer empty receives
            kms_master_key_id=self._kms_key_arn,
            kms_data_key_reuse_period_seconds=KMS_DATA_KEY_REUSE_SECONDS,
            redrive_policy=redrive_policy,
            tags=self.tags(f"{purpose}-queue"),
            opts=self.child_opts,
        )
        aws.sqs.QueuePolicy(
            f"{resource_name}-tls-only",
            queue_url=queue.url,
            policy=iam.document(
                [iam.deny_insecure_transport("DenyInsecureTransport", SQS_ACTIONS, queue.arn)]
            ),
            opts=self.child_opts,
        )
        return queue

    def _allow_redrive_only_from(self, dlq: aws.sqs.Queue, resource_name: str, source: aws.sqs.Queue) -> None:
        aws.sqs.RedriveAllowPolicy(
            f"{resource_name}-redrive-allow",
            queue_url=dlq.url,
            redrive_allow_policy=source.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=self.child_opts,
        )

    def _topic(self, resource_name: str, purpose: str, email: str) -> aws.sns.Topic:
        ctx = self.context
        topic = aws.sns.Topic(
            resource_name,
            name=ctx.name(purpose),
            kms_master_key_id=self._kms_key_arn,
            tags=self.tags(purpose),
            opts=self.child_opts,
        )
        aws.sns.TopicPolicy(
            f"{resource_name}-policy",
            arn=topic.arn,
            policy=iam.document(
                [
                    iam.deny_insecure_transport("DenyInsecureTransport", ["sns:Publish"], topic.arn),
                    {
                        "Sid": "CloudWatchAlarmsOfThisAccountPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": ["sns:Publish"],
                        "Resource": topic.arn,
                        "Condition": {
                            "ArnLike": {"aws:SourceArn": ctx.arn("cloudwatch", "alarm:*")},
                            "StringEquals": {"aws:SourceAccount": ctx.account_id},
                        },
                    },
                ]
            ),
            opts=self.child_opts,
        )
        # F8. AWS keeps the subscription pending until the recipient confirms the email it sends.
        aws.sns.TopicSubscription(
            f"{resource_name}-email",
            topic=topic.arn,
            protocol="email",
            endpoint=email,
            opts=self.child_opts,
        )
        return topic

"""The reconciler's schedule: EventBridge Scheduler invokes it every few minutes (issue 12 item 2).

EventBridge Scheduler rather than a scheduled EventBridge rule: it is what AWS recommends for new
schedules (https://docs.aws.amazon.com/eventbridge/latest/userguide/using-eventbridge-scheduler.html),
it invokes through an execution role of our own (no resource policy on the function), and it has
its own retry policy and dead-letter queue for invocations it could not deliver.

Scheduler invokes Lambda asynchronously, so a run that fails is retried by Lambda and then lands
in the functions' async-failure DLQ (alarmed); deliveries Scheduler itself could not make go to the
same queue. No customer managed key on the schedule: Scheduler uses one only for a schedule's
payload (its target input; names, state and expressions are always under an AWS owned key:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/encryption-rest.html), and this schedule has
none, so a key would protect nothing and cost the execution role a decrypt grant. The role's only
KMS use is the encrypted DLQ, through SQS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent

# A missed run is harmless (the next one, minutes later, finds the same records), so Scheduler
# does not keep retrying an old one.
MAXIMUM_EVENT_AGE_SECONDS = 300
MAXIMUM_RETRY_ATTEMPTS = 2


@dataclass
class ScheduleArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    # What to invoke (a function ARN, or a qualified one such as an alias).
    function_arn: pulumi.Input[str]
    dead_letter_queue_arn: pulumi.Input[str]
    rate_minutes: int


class ReconcilerSchedule(TaggedComponent):
    """An EventBridge Scheduler schedule that invokes the reconciler, and its execution role."""

    component_name = "schedule"

    def __init__(self, name: str, args: ScheduleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ReconcilerSchedule", name, args.context, opts)
        ctx = args.context
        self.role = aws.iam.Role(
            "reconciler-schedule-role",
            name=ctx.global_name("reconciler-schedule"),
            description="EventBridge Scheduler's role for invoking the reconciler only",
            # Scheduler documents aws:SourceAccount on its trust policy (confused deputy):
            # https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
            assume_role_policy=iam.assume_role_policy("scheduler.amazonaws.com", ctx.account_id),
            tags=self.tags("reconciler-schedule-role"),
            opts=self.child_opts,
        )
        policy = aws.iam.RolePolicy(
            "reconciler-schedule-policy",
            role=self.role.id,
            policy=iam.document(
                [
                    iam.allow("InvokeReconciler", ["lambda:InvokeFunction"], [args.function_arn]),
                    iam.allow("UndeliverableRuns", ["sqs:SendMessage"], [args.dead_letter_queue_arn]),
                    # The dead-letter queue is encrypted with the stack's key: SQS uses it on the
                    # sender's behalf, and only SQS may.
                    iam.allow(
                        "EncryptUndeliverableRuns",
                        ["kms:Decrypt", "kms:GenerateDataKey"],
                        [args.kms_key_arn],
                        {"StringEquals": {"kms:ViaService": f"sqs.{ctx.region}.amazonaws.com"}},
                    ),
                ]
            ),
            opts=self.child_opts,
        )
        self.expression = f"rate({args.rate_minutes} minute{'s' if args.rate_minutes != 1 else ''})"
        self.schedule = aws.scheduler.Schedule(
            "reconciler-schedule",
            name=ctx.name("reconciler"),
            description="Runs the reconciler: no transaction left RECEIVED forever",
            schedule_expression=self.expression,
            schedule_expression_timezone="UTC",
            flexible_time_window={"mode": "OFF"},
            state="ENABLED",
            target={
                "arn": args.function_arn,
                "role_arn": self.role.arn,
                "retry_policy": {
                    "maximum_event_age_in_seconds": MAXIMUM_EVENT_AGE_SECONDS,
                    "maximum_retry_attempts": MAXIMUM_RETRY_ATTEMPTS,
                },
                "dead_letter_config": {"arn": args.dead_letter_queue_arn},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs({"schedule_name": self.schedule.name, "expression": self.expression})

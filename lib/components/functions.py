"""The Lambda functions, their roles, log groups and SQS triggers (P2, P4, P6, P7, C5, C7, F14, F20).

Validator, fraud detector, failed handler, reconciler (its schedule: lib/components/schedule.py),
and the card-fingerprint key's rotation function (with its Secrets Manager rotation schedule and
invoke permission).

Each function gets its own role whose policy names exactly the tables, queues, topics and key it
uses (C2). Log groups are created here, not by Lambda, so they have 30-day retention and the stack's
key (P7, C3). Each function's environment is exactly what the contract (tap_contract.environment)
says it reads; docs/function-contract.md describes them.

What the functions import (F14): their own package from the code asset (lib/packaging.py), and
every third-party package, boto3 included, from one layer holding exactly requirements/functions.txt
(built by `python -m lib.layer`, see lib/layer.py). No public layer and no runtime-provided library
is relied on, so the versions that run are the pinned ones the tests ran.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent
from lib.components.data import Data
from lib.components.messaging import MAX_RECEIVE_COUNT, TRANSACTION_VISIBILITY_TIMEOUT_SECONDS, Messaging
from lib.config import StackSettings
from lib.layer import TARGET_PYTHON, builds_runtime_bytecode, bytecode_problem, requirements_digest
from lib.packaging import function_code_archive
from lib.quotas import RECONCILER_RESERVED_CONCURRENCY
from tap_contract import metrics
from tap_contract.card_keys import SWITCH_DELAY_SECONDS, SWITCH_DELAY_VARIABLE
from tap_contract.environment import (
    FAILED_HANDLER,
    FRAUD_DETECTOR,
    HANDLERS,
    KEY_ROTATION,
    RECONCILER,
    VALIDATOR,
    required_environment,
)
from tap_contract.tables import MERCHANT_INDEX_NAME, MERCHANT_INDEX_SHARDS, PENDING_INDEX_NAME

RUNTIME = f"python{TARGET_PYTHON}"  # the layer is built for exactly this runtime
ARCHITECTURE = "arm64"
MEMORY_MB = 512  # C7
TIMEOUT_SECONDS = 60  # C7
LOG_RETENTION_DAYS = 30  # P7
FRAUD_STATE_SHARDS = 16
# How long a detector container reuses a merchant's amount profile: one read per merchant and
# currency per minute, instead of one per transaction (BENCHMARKS.md section 2).
FRAUD_PROFILE_CACHE_SECONDS = 60
SQS_BATCH_SIZE = 10
# What Lambda's SQS event source mapping does with the function's role (AWSLambdaSQSQueueExecutionRole).
SQS_CONSUMER_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
]
SQS_BATCHING_WINDOW_SECONDS = 1
# Every function publishes a version on each change and is invoked only through this alias, never
# through $LATEST: SnapStart runs only on published versions and aliases that point at one
# (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html, "Supported features and
# limitations"), and an alias is what a rollback moves (README, Operations).
ALIAS_NAME = "live"
# /tmp size, stated because SnapStart refuses ephemeral storage above 512 MB (same page); 512 is
# also Lambda's default and what the functions need (they write nothing to /tmp).
EPHEMERAL_STORAGE_MB = 512


def stale_received_fail_after_seconds(settings: StackSettings) -> int:
    """When the reconciler may FAIL a record still RECEIVED: after its last re-enqueue (one stale
    period apart each) *and* that message's whole delivery budget on the transaction queue
    (visibility timeout x maxReceiveCount, after which the failed handler owns it). Before that, a
    message for the record may still be delivered, and failing it would pre-empt a verdict.
    Defaults: 4 x 300 s + 5 x 300 s = 2,700 s (45 minutes)."""
    last_requeue = settings.stale_received_after_seconds * (settings.reconciler_max_requeues + 1)
    return last_requeue + TRANSACTION_VISIBILITY_TIMEOUT_SECONDS * MAX_RECEIVE_COUNT


def deploying() -> bool:
    """True when a Pulumi engine runs this program (preview or up), not mocks."""
    return not isinstance(pulumi.runtime.settings.get_monitor(), pulumi.runtime.mocks.MockMonitor)


@dataclass
class FunctionsArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    card_fingerprint_secret_arn: pulumi.Input[str]
    data: Data
    messaging: Messaging
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]


@dataclass
class FunctionSpec:
    """What distinguishes one function: its handler, variables, grants and concurrency."""

    key: str
    handler: str
    description: str
    statements: list[iam.Statement]
    kms_services: list[str]
    reserved_concurrency: int
    # Whether Lambda snapshots each published version (config `snapStart`, lib/config.py); taken from
    # the settings by `_function`, so a new spec needs nothing for it.
    snap_start: bool = False


class Functions(TaggedComponent):
    """validator (API), fraud detector (transaction queue), failed handler (transaction DLQ),
    reconciler (scheduled, lib/components/schedule.py)."""

    component_name = "functions"

    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Functions", name, args.context, opts)
        self._args = args
        ctx = args.context
        self.code = function_code_archive()
        self.dependency_layer = aws.lambda_.LayerVersion(
            "dependency-layer",
            layer_name=ctx.name("function-dependencies"),
            description=(
                "Pinned third-party packages of the pipeline functions "
                f"(requirements/functions.txt sha256 {requirements_digest()[:16]})"
            ),
            code=pulumi.FileArchive(ctx.settings.function_layer_dir),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            opts=self.child_opts,
        )
        self.layers = [self.dependency_layer.arn]
        self._warn_if_cold_starts_compile(ctx.settings.function_layer_dir)

        self.function_names: dict[str, str] = {key: ctx.name(key) for key in HANDLERS}
        self.card_key_rotation: aws.secretsmanager.SecretRotation | None = None
        self.log_groups: dict[str, aws.cloudwatch.LogGroup] = {}
        self.functions: dict[str, aws.lambda_.Function] = {}
        # The alias ALIAS_NAME of each function: what the API, its invoke permission and the event
        # source mappings name (never the unqualified function, which would run $LATEST).
        self.aliases: dict[str, aws.lambda_.Alias] = {}
        # Functions fed by an SQS event source mapping: their failures are per record (F15).
        self.queue_consumers: set[str] = set()
        self.roles: dict[str, aws.iam.Role] = {}
        for spec in self._specs():
            self._function(spec)

        self.validator = self.functions[VALIDATOR]
        if self.rotates_card_key:
            self._rotate_card_key()
        self.validator_alias = self.aliases[VALIDATOR]
        self._sqs_trigger(
            FRAUD_DETECTOR,
            args.messaging.transaction_queue,
            ctx.settings.fraud_detector_max_concurrency,
        )
        self._sqs_trigger(
            FAILED_HANDLER,
            args.messaging.transaction_dlq,
            ctx.settings.failed_handler_max_concurrency,
        )
        self.register_outputs(
            {
                **{key: fn.name for key, fn in self.functions.items()},
                **{f"{key}-alias": alias.arn for key, alias in self.aliases.items()},
            }
        )

    def _warn_if_cold_starts_compile(self, layer_dir: str) -> None:
        """Bytecode is only written by the runtime's Python version; deploying without it works,
        but every cold start then compiles the modules it imports (see lib/layer.py). Said only to
        `pulumi preview`/`up`: a program evaluated under mocks (tests, the local pipeline, which runs
        the functions from source) ships nothing, so the warning would only be noise there."""
        if not deploying():
            return
        problem = bytecode_problem(Path(layer_dir))
        if problem:
            pulumi.log.warn(problem, resource=self.dependency_layer)
        if not builds_runtime_bytecode():
            pulumi.log.warn(
                f"the function code asset ships no Python {TARGET_PYTHON} bytecode because this "
                f"program runs on Python {sys.version_info.major}.{sys.version_info.minor}; run "
                f"pulumi with a Python {TARGET_PYTHON} virtualenv to ship it",
                resource=self,
            )

    def _variable_values(self) -> dict[str, pulumi.Input[str]]:
        """The value of every variable the functions read (POWERTOOLS_SERVICE_NAME aside, which is
        each function's own name). Which function gets which is the contract's choice, not this."""
        args = self._args
        data, messaging, settings = args.data, args.messaging, args.context.settings
        return {
            "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "ENVIRONMENT_SUFFIX": args.context.settings.environment_suffix,
            "TRANSACTIONS_TABLE_NAME": data.transactions_table.name,
            "IDEMPOTENCY_TABLE_NAME": data.idempotency_table.name,
            "MERCHANT_CONFIG_TABLE_NAME": data.merchant_config_table.name,
            "MERCHANT_CACHE_TTL_SECONDS": "60",
            "MERCHANT_INDEX_NAME": MERCHANT_INDEX_NAME,
            "MERCHANT_INDEX_SHARDS": str(MERCHANT_INDEX_SHARDS),
            "TRANSACTION_QUEUE_URL": messaging.transaction_queue.url,
            "CARD_FINGERPRINT_SECRET_ARN": args.card_fingerprint_secret_arn,
            "FRAUD_STATE_TABLE_NAME": data.fraud_state_table.name,
            "FRAUD_STATE_SHARDS": str(FRAUD_STATE_SHARDS),
            "FRAUD_PROFILE_CACHE_SECONDS": str(FRAUD_PROFILE_CACHE_SECONDS),
            "FRAUD_ALERT_TOPIC_ARN": messaging.fraud_alert_topic.arn,
            "OPS_ALERT_TOPIC_ARN": messaging.ops_alert_topic.arn,
            "STALE_RECEIVED_AFTER_SECONDS": str(settings.stale_received_after_seconds),
            "STALE_RECEIVED_FAIL_AFTER_SECONDS": str(stale_received_fail_after_seconds(settings)),
            "RECONCILER_MAX_REQUEUES": str(settings.reconciler_max_requeues),
            "RECONCILER_BATCH_LIMIT": str(settings.reconciler_batch_limit),
            SWITCH_DELAY_VARIABLE: str(SWITCH_DELAY_SECONDS),
        }

    def _environment(self, key: str) -> dict[str, pulumi.Input[str]]:
        """Exactly the variables the contract (tap_contract.environment) says ``key`` reads; a
        variable the contract adds and this stack does not set fails here, not in Lambda."""
        values = {**self._variable_values(), "POWERTOOLS_SERVICE_NAME": key}
        return {name: values[name] for name in sorted(required_environment(key))}

    def _specs(self) -> list[FunctionSpec]:
        specs = [
            self._validator_spec(),
            self._fraud_detector_spec(),
            self._failed_handler_spec(),
            self._reconciler_spec(),
        ]
        if self.rotates_card_key:
            specs.append(self._key_rotation_spec())
        return specs

    @property
    def rotates_card_key(self) -> bool:
        """The stack rotates the card-fingerprint key it creates; a secret named in config
        (``cardFingerprintSecretArn``, e.g. shared by several stacks) is rotated by its owner, since
        a secret has one rotation configuration and several stacks would fight over it."""
        return not self._args.context.settings.card_fingerprint_secret_arn

    def _key_rotation_spec(self) -> FunctionSpec:
        secret_arn = self._args.card_fingerprint_secret_arn
        return FunctionSpec(
            key=KEY_ROTATION,
            handler=HANDLERS[KEY_ROTATION],
            description="Rotates the card-fingerprint HMAC key (Secrets Manager rotation function)",
            # Exactly the calls of the four rotation steps, on the one secret: describe it, read
            # AWSCURRENT and AWSPENDING, write AWSPENDING, move AWSCURRENT. The secret's data key
            # is used only through Secrets Manager (kms_services).
            statements=[
                iam.allow(
                    "RotateCardFingerprintKey",
                    [
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                    ],
                    [secret_arn],
                ),
            ],
            kms_services=["secretsmanager"],
            reserved_concurrency=self._args.context.settings.key_rotation_reserved_concurrency,
        )

    def _rotate_card_key(self) -> None:
        """Secrets Manager may invoke the rotation function for this secret only, from this account,
        and rotates the secret every ``cardKeyRotationDays`` (and once when the rotation is created)."""
        args, ctx = self._args, self._args.context
        function, alias = self.functions[KEY_ROTATION], self.aliases[KEY_ROTATION]
        # Like every invoker, Secrets Manager calls the alias, never $LATEST.
        permission = aws.lambda_.Permission(
            "key-rotation-invoke-permission",
            action="lambda:InvokeFunction",
            function=function.name,
            qualifier=alias.name,
            principal="secretsmanager.amazonaws.com",
            source_arn=args.card_fingerprint_secret_arn,
            source_account=ctx.account_id,
            opts=self.child_opts,
        )
        self.card_key_rotation = aws.secretsmanager.SecretRotation(
            "card-fingerprint-secret-rotation",
            secret_id=args.card_fingerprint_secret_arn,
            rotation_lambda_arn=alias.arn,
            rotation_rules={"automatically_after_days": ctx.settings.card_key_rotation_days},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, alias]),
        )

    def _validator_spec(self) -> FunctionSpec:
        args = self._args
        data, messaging = args.data, args.messaging
        return FunctionSpec(
            key=VALIDATOR,
            handler=HANDLERS[VALIDATOR],
            description="Validates API transactions against merchant config and enqueues them",
            # Exactly the calls it makes: records written in one TransactWriteItems with their
            # guard items and card events (Put on three tables), read back by key or by id
            # (GET), no updates. In the fraud-state table only card events (card#...): a Put inside
            # TransactWriteItems is authorised as PutItem, conditions included
            # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
            statements=[
                self._read_merchants(),
                iam.allow(
                    "RecordAndReadTransactions",
                    ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"],
                    [data.transactions_table.arn],
                ),
                iam.allow(
                    "RequestGuards",
                    ["dynamodb:GetItem", "dynamodb:PutItem"],
                    [data.idempotency_table.arn],
                ),
                iam.allow(
                    "RecordCardEvents",
                    ["dynamodb:PutItem"],
                    [data.fraud_state_table.arn],
                    condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["card#*"]}},
                ),
                iam.allow("EnqueueTransactions", ["sqs:SendMessage"], [messaging.transaction_queue.arn]),
                iam.allow(
                    "ReadCardFingerprintKey",
                    ["secretsmanager:GetSecretValue"],
                    [args.card_fingerprint_secret_arn],
                ),
            ],
            kms_services=["dynamodb", "sqs", "secretsmanager"],
            reserved_concurrency=args.context.settings.validator_reserved_concurrency,
        )

    def _read_merchants(self) -> iam.Statement:
        return iam.allow(
            "ReadMerchantConfig", ["dynamodb:GetItem"], [self._args.data.merchant_config_table.arn]
        )

    def _idempotency_records(self) -> iam.Statement:
        return iam.allow(
            "IdempotencyRecords",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            [self._args.data.idempotency_table.arn],
        )

    def _fraud_detector_spec(self) -> FunctionSpec:
        data, messaging = self._args.data, self._args.messaging
        index_arn = pulumi.Output.concat(data.transactions_table.arn, "/index/", MERCHANT_INDEX_NAME)
        return FunctionSpec(
            key=FRAUD_DETECTOR,
            handler=HANDLERS[FRAUD_DETECTOR],
            description="Scores queued transactions with fraud rules and alerts on fraud",
            statements=[
                self._read_merchants(),
                iam.allow("QueryMerchantHistory", ["dynamodb:Query"], [index_arn]),
                iam.allow("ConsumeTransactionQueue", SQS_CONSUMER_ACTIONS, [messaging.transaction_queue.arn]),
                iam.allow(
                    "RecordVerdicts",
                    ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                    [data.transactions_table.arn],
                ),
                iam.allow(
                    "FraudState",
                    [
                        "dynamodb:Query",
                        "dynamodb:BatchGetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                    ],
                    [data.fraud_state_table.arn],
                ),
                self._idempotency_records(),
                iam.allow("PublishFraudAlerts", ["sns:Publish"], [messaging.fraud_alert_topic.arn]),
            ],
            kms_services=["dynamodb", "sqs", "sns"],
            reserved_concurrency=self._args.context.settings.fraud_detector_reserved_concurrency,
        )

    def _failed_handler_spec(self) -> FunctionSpec:
        data, messaging = self._args.data, self._args.messaging
        return FunctionSpec(
            key=FAILED_HANDLER,
            handler=HANDLERS[FAILED_HANDLER],
            description="Records transactions that exhausted their retries as FAILED and notifies ops",
            statements=[
                iam.allow(
                    "ConsumeTransactionDeadLetters", SQS_CONSUMER_ACTIONS, [messaging.transaction_dlq.arn]
                ),
                iam.allow(
                    "RecordFailures",
                    ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                    [data.transactions_table.arn],
                ),
                self._idempotency_records(),
                iam.allow("NotifyOps", ["sns:Publish"], [messaging.ops_alert_topic.arn]),
                # A FLAGGED transaction whose message dead-lettered may still owe its alert.
                iam.allow("PublishOwedFraudAlerts", ["sns:Publish"], [messaging.fraud_alert_topic.arn]),
            ],
            kms_services=["dynamodb", "sqs", "sns"],
            reserved_concurrency=self._args.context.settings.failed_handler_reserved_concurrency,
        )

    def _reconciler_spec(self) -> FunctionSpec:
        data, messaging = self._args.data, self._args.messaging
        pending_index_arn = pulumi.Output.concat(data.transactions_table.arn, "/index/", PENDING_INDEX_NAME)
        return FunctionSpec(
            key=RECONCILER,
            handler=HANDLERS[RECONCILER],
            description="Re-enqueues transactions left RECEIVED, then fails them after a bound",
            # Exactly the calls it makes: Query of the pending index only (never a Scan), the
            # record read back and updated under conditions, the message re-sent, and the ops
            # notice made idempotent through the idempotency table.
            statements=[
                iam.allow("QueryPendingIndex", ["dynamodb:Query"], [pending_index_arn]),
                iam.allow(
                    "ReconcileRecords",
                    ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                    [data.transactions_table.arn],
                ),
                iam.allow("RequeueTransactions", ["sqs:SendMessage"], [messaging.transaction_queue.arn]),
                self._idempotency_records(),
                iam.allow("NotifyOps", ["sns:Publish"], [messaging.ops_alert_topic.arn]),
            ],
            kms_services=["dynamodb", "sqs", "sns"],
            reserved_concurrency=RECONCILER_RESERVED_CONCURRENCY,
        )

    def _function(self, spec: FunctionSpec) -> None:
        args, ctx, child = self._args, self._args.context, self.child_opts
        function_name = self.function_names[spec.key]
        log_group = aws.cloudwatch.LogGroup(
            f"{spec.key}-log-group",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            tags=self.tags(f"{spec.key}-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{spec.key}-role",
            name=ctx.global_name(spec.key),
            description=f"Execution role of {function_name} only",
            assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com", ctx.account_id),
            tags=self.tags(f"{spec.key}-execution-role"),
            opts=child,
        )
        kms_via = [f"{service}.{ctx.region}.amazonaws.com" for service in [*spec.kms_services, "lambda"]]
        statements = [
            iam.allow(
                "WriteOwnLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [pulumi.Output.concat(log_group.arn, ":*")],
            ),
            # No resource-level permissions exist for X-Ray segment upload.
            iam.allow("XRayTracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]),
            *self._vpc_network_interface_statements(function_name),
            iam.allow("AsyncFailureDeadLetter", ["sqs:SendMessage"], [args.messaging.async_failure_dlq.arn]),
            iam.allow(
                "UseDataKeyThroughServices",
                ["kms:Decrypt", "kms:GenerateDataKey"],
                [args.kms_key_arn],
                {"StringEquals": {"kms:ViaService": kms_via}},
            ),
            *spec.statements,
        ]
        policy = aws.iam.RolePolicy(
            f"{spec.key}-policy",
            role=role.id,
            policy=iam.document(statements),
            opts=child,
        )
        environment = self._environment(spec.key)
        snap_start = spec.snap_start or spec.key in ctx.settings.snap_start_functions
        function = aws.lambda_.Function(
            f"{spec.key}-function",
            name=function_name,
            description=spec.description,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            handler=spec.handler,
            code=self.code,
            role=role.arn,
            memory_size=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            ephemeral_storage={"size": EPHEMERAL_STORAGE_MB},
            reserved_concurrent_executions=spec.reserved_concurrency,
            layers=self.layers,
            environment={"variables": environment},
            # Also encrypts the SnapStart snapshots: Lambda uses the function's customer managed
            # key for them instead of an AWS managed key
            # (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-security.html).
            kms_key_arn=args.kms_key_arn,
            # A new version on every change of code or configuration, which the alias then names.
            publish=True,
            # No provisioned concurrency anywhere in the stack: SnapStart does not support it.
            snap_start={"apply_on": "PublishedVersions"} if snap_start else None,
            tracing_config={"mode": "Active"},
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": list(args.security_group_ids),
            },
            dead_letter_config={"target_arn": args.messaging.async_failure_dlq.arn},
            logging_config={"log_format": "Text", "log_group": log_group.name},
            tags=self.tags(f"{spec.key}-function"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]),
        )
        self.log_groups[spec.key] = log_group
        self.roles[spec.key] = role
        self.functions[spec.key] = function
        self.aliases[spec.key] = aws.lambda_.Alias(
            f"{spec.key}-alias",
            name=ALIAS_NAME,
            description=f"The version of {function_name} that serves traffic",
            function_name=function.name,
            # The version this update published (publish=True); with SnapStart, the one Lambda
            # snapshotted. Pulumi moves the alias only once that version exists.
            function_version=function.version,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _vpc_network_interface_statements(self, function_name: str) -> list[iam.Statement]:
        """What Lambda's ENI management does with the function's role, and no more (lib/iam.py).

        Only the two Describe actions are on "*" (AWS documents no other form for them). Interfaces
        are created only in this stack's subnets with this stack's security groups, and managed only
        in this account and region ("all resource IDs" of DeleteNetworkInterface, as the Lambda
        guide asks: https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html). Lambda's
        own ENI calls carry no lambda:SourceFunctionArn, requests from the function's code do
        (https://docs.aws.amazon.com/lambda/latest/dg/permissions-source-function-arn.html), so a
        Deny on that key keeps the code from using any of these permissions itself.
        """
        args, ctx = self._args, self._args.context
        ec2 = ctx.arn("ec2", "")
        network_interfaces = pulumi.Output.concat(ec2, "network-interface/*")
        subnets = [pulumi.Output.concat(ec2, "subnet/", subnet_id) for subnet_id in args.subnet_ids]
        security_groups = [
            pulumi.Output.concat(ec2, "security-group/", group_id) for group_id in args.security_group_ids
        ]
        return [
            iam.allow("DescribeVpcNetwork", list(iam.LAMBDA_VPC_DESCRIBE_ACTIONS), ["*"]),
            iam.allow(
                "CreateNetworkInterfacesInStackSubnets",
                [iam.LAMBDA_VPC_CREATE_ENI_ACTION],
                [network_interfaces, *subnets, *security_groups],
            ),
            iam.allow(
                "ManageNetworkInterfaces", list(iam.LAMBDA_VPC_MANAGE_ENI_ACTIONS), [network_interfaces]
            ),
            iam.deny(
                "NoNetworkInterfaceCallsFromFunctionCode",
                list(iam.LAMBDA_VPC_ENI_ACTIONS),
                ["*"],
                {"ArnEquals": {"lambda:SourceFunctionArn": ctx.arn("lambda", f"function:{function_name}")}},
            ),
        ]

    def _sqs_trigger(self, key: str, queue: aws.sqs.Queue, max_concurrency: int) -> None:
        """Poll like Lambda should: batches, per-message failures (F15), capped concurrency."""
        self.queue_consumers.add(key)
        aws.lambda_.EventSourceMapping(
            f"{key}-queue-trigger",
            event_source_arn=queue.arn,
            # The alias, so the pollers invoke the published version (with its snapshot when
            # SnapStart is on), never $LATEST.
            function_name=self.aliases[key].arn,
            batch_size=SQS_BATCH_SIZE,
            maximum_batching_window_in_seconds=SQS_BATCHING_WINDOW_SECONDS,
            function_response_types=["ReportBatchItemFailures"],
            # The cap that keeps throttled polls from burning receive counts and dead-lettering good
            # messages. It reserves nothing from the account pool, so the function also reserves at
            # least this much (lib/config.RESERVED_COVERS_MAXIMUM): other functions' bursts cannot
            # take the concurrency these pollers count on (checkov CKV_AWS_115).
            scaling_config={"maximum_concurrency": max_concurrency},
            tags=self.tags(f"{key}-trigger"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.functions[key], self.aliases[key]]),
        )

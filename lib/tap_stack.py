"""`TapStack`: the whole transaction pipeline, composed from one component per concern.

    encryption -> network, data, messaging -> functions -> api -> firewall, monitoring

Outputs are registered here once and exported once by the entry point (F11).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from lib.components.api import Api, ApiArgs
from lib.components.base import COMPONENT_TYPE_PREFIX, AwsContext
from lib.components.data import Data, DataArgs
from lib.components.encryption import Encryption, EncryptionArgs
from lib.components.firewall import Firewall, FirewallArgs
from lib.components.functions import Functions, FunctionsArgs
from lib.components.messaging import Messaging, MessagingArgs
from lib.components.monitoring import Monitoring, MonitoringArgs
from lib.components.network import Network, NetworkArgs
from lib.components.schedule import ReconcilerSchedule, ScheduleArgs
from lib.config import StackSettings
from lib.openapi import transaction_request_schema
from lib.quotas import check_concurrency_quota
from tap_contract import metrics, queues
from tap_contract.environment import RECONCILER
from tap_contract.seed import TEST_MERCHANT_ID
from tap_contract.tables import MERCHANT_INDEX_NAME, PENDING_INDEX_NAME

# F21: a body the seeded test merchant accepts. A provider token, never a card number, so the
# output can be shown anywhere.
SAMPLE_TRANSACTION = {
    "merchant_id": TEST_MERCHANT_ID,
    "amount": "42.50",
    "currency": "USD",
    "card": {"token": "tok_sample_visa_4242"},
    "country": "US",
    "customer_id": "sample-customer-001",
}


@dataclass
class TapStackArgs:
    settings: StackSettings
    tags: dict[str, str] = field(default_factory=dict)


def stack_tags(settings: StackSettings, extra: dict[str, str]) -> dict[str, str]:
    return {
        "Project": "tap-transaction-pipeline",
        "Environment": settings.environment_suffix,
        "ManagedBy": "pulumi",
        "DataClassification": "pci",
        **extra,
    }


class TapStack(pulumi.ComponentResource):
    """The serverless transaction pipeline: API -> validator -> queue -> fraud detector -> alerts."""

    def __init__(self, name: str, args: TapStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{COMPONENT_TYPE_PREFIX}:TapStack", name, None, opts)
        settings = args.settings
        # Before any resource: a region whose Lambda quota cannot hold the reservations stops here.
        check_concurrency_quota(settings, pulumi.InvokeOptions(parent=self))
        invoke_opts = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke_opts)
        partition = aws.get_partition_output(opts=invoke_opts)
        context = AwsContext(
            settings=settings,
            account_id=identity.account_id,
            partition=partition.partition,
            dns_suffix=partition.dns_suffix,
            base_tags=stack_tags(settings, args.tags),
        )
        child = pulumi.ResourceOptions(parent=self)

        encryption = Encryption("encryption", EncryptionArgs(context), child)
        key_arn = encryption.key.arn
        network = Network("network", NetworkArgs(context, key_arn), child)
        data = Data("data", DataArgs(context, key_arn, settings.seed_test_merchant), child)
        messaging = Messaging("messaging", MessagingArgs(context, key_arn, settings.alert_email), child)
        functions = Functions(
            "functions",
            FunctionsArgs(
                context=context,
                kms_key_arn=key_arn,
                card_fingerprint_secret_arn=encryption.card_fingerprint_secret_arn,
                data=data,
                messaging=messaging,
                subnet_ids=[subnet.id for subnet in network.private_subnets],
                security_group_ids=[network.lambda_security_group.id],
            ),
            # Functions must not start before the endpoints they depend on exist.
            pulumi.ResourceOptions(parent=self, depends_on=[network]),
        )
        api = Api(
            "api",
            ApiArgs(
                context=context,
                kms_key_arn=key_arn,
                validator_function_name=functions.validator.name,
                # The alias, never $LATEST: the API invokes the published version (SnapStart's).
                validator_alias_name=functions.validator_alias.name,
                validator_invoke_arn=functions.validator_alias.invoke_arn,
                request_schema=transaction_request_schema(),
            ),
            child,
        )
        Firewall("firewall", FirewallArgs(context, key_arn, api.stage), child)
        ReconcilerSchedule(
            "reconciler-schedule",
            ScheduleArgs(
                context=context,
                kms_key_arn=key_arn,
                # The alias, never $LATEST: Scheduler runs the published version.
                function_arn=functions.aliases[RECONCILER].arn,
                dead_letter_queue_arn=messaging.async_failure_dlq.arn,
                rate_minutes=settings.reconciler_schedule_minutes,
            ),
            child,
        )
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                context=context,
                alarm_topic_arn=messaging.ops_alert_topic.arn,
                function_names={key: fn.name for key, fn in functions.functions.items()},
                queue_consumers=frozenset(functions.queue_consumers),
                metrics_namespace=metrics.NAMESPACE,
                dead_letter_queue_names={
                    queues.PARKING_DLQ: messaging.parking_dlq.name,
                    queues.ASYNC_FAILURE_DLQ: messaging.async_failure_dlq.name,
                },
                drained_dead_letter_queue_names={"transaction-dlq": messaging.transaction_dlq.name},
                work_queue_name=messaging.transaction_queue.name,
                table_names={
                    "merchant-config-table": data.merchant_config_table.name,
                    "transactions-table": data.transactions_table.name,
                    "fraud-state-table": data.fraud_state_table.name,
                    "idempotency-table": data.idempotency_table.name,
                },
                table_indexes={
                    "merchant-index": (data.transactions_table.name, MERCHANT_INDEX_NAME),
                    "pending-index": (data.transactions_table.name, PENDING_INDEX_NAME),
                },
                reconciler_period_seconds=settings.reconciler_schedule_minutes * 60,
                api_name=api.rest_api.name,
                api_stage_name=api.stage.stage_name,
            ),
            child,
        )

        self.outputs: dict[str, Any] = {
            "api_url": api.transaction_url,
            "dashboard_url": monitoring.dashboard_url,
            "merchant_config_table_name": data.merchant_config_table.name,
            "transactions_table_name": data.transactions_table.name,
            "fraud_state_table_name": data.fraud_state_table.name,
            "idempotency_table_name": data.idempotency_table.name,
            "transaction_queue_url": messaging.transaction_queue.url,
            "transaction_dlq_url": messaging.transaction_dlq.url,
            "alert_topic_arn": messaging.fraud_alert_topic.arn,
            "ops_topic_arn": messaging.ops_alert_topic.arn,
            "api_key_id": api.api_key.id,
            "api_key_value": pulumi.Output.secret(api.api_key.value),
            "sample_transaction": json.dumps(SAMPLE_TRANSACTION),
            "region": settings.region,
            "environment_suffix": settings.environment_suffix,
        }
        self.register_outputs(self.outputs)


def build(settings: StackSettings) -> TapStack:
    """The whole program: a region-pinned provider that tags every resource, and the stack."""
    provider = aws.Provider("aws", region=settings.region, default_tags={"tags": stack_tags(settings, {})})
    return TapStack(
        "tap",
        TapStackArgs(settings=settings),
        opts=pulumi.ResourceOptions(providers=[provider]),
    )

"""DynamoDB tables (P2, P5, C4, F13, F21) and the seeded test merchant.

All tables are on-demand with point-in-time recovery and encrypted with the stack's key. Key
names and the merchant index come from tap_contract.tables, which the function code reads too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from lib.components.base import AwsContext, TaggedComponent
from tap_contract import tables
from tap_contract.seed import STRICT_TEST_MERCHANT_ID, TEST_MERCHANT_ID
from tap_contract.tables import MERCHANT_INDEX_NAME

STRICT_RULES = (
    "velocity_1m",
    "velocity_1h",
    "amount_spike",
    "foreign_large_amount",
    "card_testing",
    "duplicate",
    "merchant_spread",
    "geo_mismatch",
    "high_risk_country",
    "amount_over_limit",
)

# The merchant the integration tests (F21) and the sample transaction use, in DynamoDB JSON.
TEST_MERCHANT_ITEM = {
    "merchant_id": {"S": TEST_MERCHANT_ID},
    "name": {"S": "Integration test merchant"},
    "active": {"BOOL": True},
    "allowed_currencies": {"L": [{"S": "USD"}, {"S": "EUR"}]},
    "min_amount": {"N": "0.50"},
    "max_amount": {"N": "5000"},
    "country": {"S": "US"},
}
# A second merchant on which any single rule flags (every weight 100, review limit 1,000), so each
# fraud pattern can be proven on its own by the integration tests and the demo.
STRICT_TEST_MERCHANT_ITEM = {
    **TEST_MERCHANT_ITEM,
    "merchant_id": {"S": STRICT_TEST_MERCHANT_ID},
    "name": {"S": "Integration test merchant, strict rules"},
    "rule_overrides": {
        "M": {
            rule: {
                "M": {
                    "weight": {"N": "100"},
                    **({"threshold": {"N": "1000"}} if rule == "amount_over_limit" else {}),
                }
            }
            for rule in STRICT_RULES
        }
    },
}
TEST_MERCHANT_ITEMS = {"test-merchant": TEST_MERCHANT_ITEM, "strict-test-merchant": STRICT_TEST_MERCHANT_ITEM}


@dataclass
class DataArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    seed_test_merchant: bool = True


class Data(TaggedComponent):
    """The merchant config, transactions, fraud-state and idempotency tables."""

    component_name = "data"

    def __init__(self, name: str, args: DataArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Data", name, args.context, opts)
        self._kms_key_arn = args.kms_key_arn

        self.merchant_config_table = self._table(
            "merchant-config-table",
            "merchant-config",
            hash_key=tables.MERCHANT_ID,
            attributes={tables.MERCHANT_ID: "S"},
        )
        self.transactions_table = self._table(
            "transactions-table",
            "transactions",
            hash_key=tables.TRANSACTION_ID,
            range_key=tables.TIMESTAMP,
            attributes={
                tables.TRANSACTION_ID: "S",
                tables.TIMESTAMP: "S",
                tables.MERCHANT_SHARD: "S",
                tables.PENDING_SHARD: "S",
                tables.PENDING_SINCE: "S",
            },
            # F13: history per merchant. The hash key is write-sharded ("{merchant}#{n}") so one
            # merchant at 1,000 TPS spreads over several index partitions instead of one.
            global_secondary_indexes=[
                {
                    "name": MERCHANT_INDEX_NAME,
                    "hash_key": tables.MERCHANT_SHARD,
                    "range_key": tables.TIMESTAMP,
                    "projection_type": "ALL",
                },
                # Sparse: only RECEIVED records carry its keys, so it holds what the reconciler
                # looks for and nothing else; keys only, since the reconciler reads each record back.
                {
                    "name": tables.PENDING_INDEX_NAME,
                    "hash_key": tables.PENDING_SHARD,
                    "range_key": tables.PENDING_SINCE,
                    "projection_type": "KEYS_ONLY",
                },
            ],
        )
        self.fraud_state_table = self._table(
            "fraud-state-table",
            "fraud-state",
            hash_key=tables.FRAUD_STATE_PK,
            range_key=tables.FRAUD_STATE_SK,
            attributes={tables.FRAUD_STATE_PK: "S", tables.FRAUD_STATE_SK: "S"},
            ttl_attribute=tables.FRAUD_STATE_TTL,
        )
        self.idempotency_table = self._table(
            "idempotency-table",
            "idempotency",
            hash_key=tables.IDEMPOTENCY_ID,
            attributes={tables.IDEMPOTENCY_ID: "S"},
            ttl_attribute=tables.IDEMPOTENCY_TTL,
        )

        if args.seed_test_merchant:
            for resource_name, item in TEST_MERCHANT_ITEMS.items():
                aws.dynamodb.TableItem(
                    resource_name,
                    table_name=self.merchant_config_table.name,
                    hash_key=tables.MERCHANT_ID,
                    item=json.dumps(item),
                    opts=self.child_opts,
                )

        self.register_outputs(
            {
                "merchant_config_table_name": self.merchant_config_table.name,
                "transactions_table_name": self.transactions_table.name,
                "fraud_state_table_name": self.fraud_state_table.name,
                "idempotency_table_name": self.idempotency_table.name,
            }
        )

    def _table(
        self,
        resource_name: str,
        purpose: str,
        *,
        hash_key: str,
        attributes: dict[str, str],
        range_key: str | None = None,
        ttl_attribute: str | None = None,
        global_secondary_indexes: list[aws.dynamodb.TableGlobalSecondaryIndexArgsDict] | None = None,
    ) -> aws.dynamodb.Table:
        return aws.dynamodb.Table(
            resource_name,
            name=self.context.name(purpose),
            billing_mode="PAY_PER_REQUEST",
            hash_key=hash_key,
            range_key=range_key,
            attributes=[{"name": name, "type": kind} for name, kind in attributes.items()],
            global_secondary_indexes=global_secondary_indexes,
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": self._kms_key_arn},
            ttl={"attribute_name": ttl_attribute, "enabled": True} if ttl_attribute else None,
            deletion_protection_enabled=False,
            tags=self.tags(f"{purpose}-store"),
            opts=self.child_opts,
        )

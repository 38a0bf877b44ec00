"""Powertools' idempotency records in the idempotency table (the store behind tap_pipeline.idempotency)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from tap_pipeline.data import clients
from tap_pipeline.settings import common_settings


@cache
def persistence_layer() -> DynamoDBPersistenceLayer:
    """Built on first use: it needs the table name from the environment and a boto3 client."""
    table = common_settings().idempotency_table
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=clients.raw_dynamodb())

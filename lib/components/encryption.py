"""Customer-managed KMS key for everything the pipeline stores at rest (C3).

One key with an explicit policy: the account root administers it and delegates use to IAM (so each
function role's own policy decides what it may encrypt or decrypt); CloudWatch Logs may use it only
for this account's log groups; CloudWatch alarms may use it only to publish to our encrypted topics.
No statement names a wildcard principal.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from lib import iam
from lib.components.base import AwsContext, TaggedComponent

KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
KEY_USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


@dataclass
class EncryptionArgs:
    context: AwsContext


class Encryption(TaggedComponent):
    """The data key (`key`), its alias, and the card-fingerprint HMAC key's secret."""

    component_name = "encryption"

    def __init__(self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Encryption", name, args.context, opts)
        ctx = args.context
        root = ctx.arn("iam", "root", region=False)
        logs_principal = f"logs.{ctx.region}.amazonaws.com"
        statements = [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": KEY_ADMIN_ACTIONS + KEY_USE_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncryptsOurLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": logs_principal},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": ctx.arn("logs", "log-group:*")}
                },
            },
            {
                "Sid": "CloudWatchAlarmsPublishToEncryptedTopics",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            },
        ]
        self.key = aws.kms.Key(
            "data-key",
            description=f"Transaction pipeline data at rest ({ctx.settings.environment_suffix})",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=7,
            policy=iam.document(statements),
            tags=self.tags("data-at-rest-encryption"),
            opts=self.child_opts,
        )
        self.alias = aws.kms.Alias(
            "data-key-alias",
            name=f"alias/{ctx.name('data')}",
            target_key_id=self.key.key_id,
            opts=self.child_opts,
        )
        self.card_fingerprint_secret_arn = self._card_fingerprint_secret(ctx)
        self.register_outputs(
            {
                "key_arn": self.key.arn,
                "alias_name": self.alias.name,
                "card_fingerprint_secret_arn": self.card_fingerprint_secret_arn,
            }
        )

    def _card_fingerprint_secret(self, ctx: AwsContext) -> pulumi.Output[str]:
        """The HMAC key that turns a PAN into a fingerprint (PCI DSS 3.5.1.2).

        An existing secret can be named in config (`cardFingerprintSecretArn`), e.g. one shared by
        several stacks so fingerprints match across them; otherwise the stack generates a 64-byte
        random key, kept only in Secrets Manager (encrypted with the data key) and in Pulumi's
        encrypted state, never in code or a plain environment variable.
        """
        if ctx.settings.card_fingerprint_secret_arn:
            return pulumi.Output.from_input(ctx.settings.card_fingerprint_secret_arn)
        key_material = random.RandomPassword(
            "card-fingerprint-key-material", length=64, special=False, opts=self.child_opts
        )
        secret = aws.secretsmanager.Secret(
            "card-fingerprint-secret",
            name=ctx.name("card-fingerprint-key"),
            description="HMAC-SHA256 key for card fingerprints; the PAN itself is never stored",
            kms_key_id=self.key.arn,
            recovery_window_in_days=0,  # destroyable: no lingering secret blocks a re-deploy
            tags=self.tags("card-fingerprint-key"),
            opts=self.child_opts,
        )
        # The first key only: from then on the rotation function (lib/components/functions.py) owns
        # the value, a ring of versioned keys (tap_contract.card_keys). Writing a new first value
        # would replace the whole ring with one key and change every fingerprint at once, so a
        # change of the generated material is ignored rather than deployed.
        version = aws.secretsmanager.SecretVersion(
            "card-fingerprint-secret-value",
            secret_id=secret.id,
            secret_string=key_material.result,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secretString"]),
        )
        # Users of the ARN (the functions, the rotation) wait until the secret has its value.
        return pulumi.Output.all(secret.arn, version.id).apply(lambda resolved: str(resolved[0]))

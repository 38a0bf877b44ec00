"""What every component shares: the AWS account context and how resources are tagged."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from lib.config import StackSettings

COMPONENT_TYPE_PREFIX = "tap:pipeline"


@dataclass(frozen=True)
class AwsContext:
    """Account-level facts resolved once by the stack (from data sources, never hard-coded)."""

    settings: StackSettings
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    dns_suffix: pulumi.Input[str]
    base_tags: dict[str, str]

    @property
    def region(self) -> str:
        return self.settings.region

    def name(self, purpose: str) -> str:
        return self.settings.name(purpose)

    def global_name(self, purpose: str) -> str:
        return self.settings.global_name(purpose)

    def arn(self, service: str, resource: str, *, region: bool = True) -> pulumi.Output[str]:
        """An ARN in this account and partition (for policies on resources not created by us)."""
        region_part = self.settings.region if region else ""
        return pulumi.Output.concat(
            "arn:", self.partition, ":", service, ":", region_part, ":", self.account_id, ":", resource
        )


class TaggedComponent(pulumi.ComponentResource):
    """A ComponentResource whose children carry Component/Purpose tags on top of the stack's tags."""

    component_name: str = ""

    def __init__(self, type_name: str, name: str, context: AwsContext, opts: pulumi.ResourceOptions | None):
        super().__init__(f"{COMPONENT_TYPE_PREFIX}:{type_name}", name, None, opts)
        self.context = context
        self.child_opts = pulumi.ResourceOptions(parent=self)

    def tags(self, purpose: str) -> dict[str, str]:
        return {**self.context.base_tags, "Component": self.component_name, "Purpose": purpose}

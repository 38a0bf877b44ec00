"""The only way to skip a control for a resource: a written, one-line, reviewed waiver.

A waiver names one control and one resource (type and logical name) exactly; there are no patterns,
so a new resource is never waived by accident. Waived violations stay in the report, marked as
waived with their justification, and a waiver that no longer matches anything is reported as
unused so the list cannot silently outlive the problem it excused.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.policy.controls import Violation
from lib.policy.controls.dynamodb import TABLE
from lib.policy.controls.ec2 import VPC


@dataclass(frozen=True)
class Waiver:
    control_id: str
    resource_type: str
    resource_name: str
    justification: str

    def __post_init__(self) -> None:
        text = self.justification.strip()
        if not text:
            raise ValueError(
                f"waiver for {self.control_id} on {self.resource_name!r} needs a written justification"
            )
        if "\n" in text:
            raise ValueError(f"waiver for {self.control_id} on {self.resource_name!r}: justify in one line")
        if not (self.control_id and self.resource_type and self.resource_name):
            raise ValueError("a waiver names a control, a resource type and a resource name")

    def covers(self, violation: Violation) -> bool:
        return (
            violation.control_id == self.control_id
            and violation.resource_type == self.resource_type
            and violation.resource_name == self.resource_name
        )


_DESTROYABLE = (
    "REQUIREMENTS.md 'Naming, region and lifecycle': everything is destroyable, no deletion protection; "
    "PITR (DynamoDB.2) covers recovery"
)

WAIVERS: tuple[Waiver, ...] = (
    *(
        Waiver("DynamoDB.6", TABLE, table, _DESTROYABLE)
        for table in ("merchant-config-table", "transactions-table", "fraud-state-table", "idempotency-table")
    ),
    Waiver(
        "EC2.10",
        VPC,
        "vpc",
        "nothing in the VPC calls the EC2 API (Lambda manages its ENIs from outside): cost, no benefit",
    ),
)

"""The API edge: REST API from the OpenAPI document, stage, API key and usage plan (P1, F9, F10, F18, F19).

The stage is an explicit resource (F18) with X-Ray (F9, C5), JSON access logs into our own
encrypted log group (F19), execution logging at ERROR with metrics and with data trace OFF (a
full-request trace would write card data to logs). API Gateway writes to CloudWatch only through
the account-level role (`aws.apigateway.Account`), which this stack sets by default so access
logging works on a fresh account too; see `_account_logging_role` for why it outlives the stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from lib import iam
from lib.components.base import AwsContext, TaggedComponent
from lib.openapi import build_openapi_document, document_digest

LOG_RETENTION_DAYS = 30
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "latency": "$context.responseLatency",
        "apiKeyId": "$context.identity.apiKeyId",
        "sourceIp": "$context.identity.sourceIp",
        "xrayTraceId": "$context.xrayTraceId",
        "wafResponseCode": "$context.wafResponseCode",
        "errorMessage": "$context.error.message",
    },
    sort_keys=True,
)


@dataclass
class ApiArgs:
    context: AwsContext
    kms_key_arn: pulumi.Input[str]
    validator_function_name: pulumi.Input[str]
    # The validator's alias (lib/components/functions.py): its name qualifies the invoke permission,
    # its invoke ARN is the integration URI, so API Gateway calls the published version, not $LATEST.
    validator_alias_name: pulumi.Input[str]
    validator_invoke_arn: pulumi.Input[str]
    request_schema: dict[str, Any]


class Api(TaggedComponent):
    """REST API, deployment, stage, method settings, API key + usage plan, invoke permissions."""

    component_name = "api"

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Api", name, args.context, opts)
        ctx = args.context
        settings = ctx.settings
        child = self.child_opts
        stage_name = settings.stage_name

        self.openapi_document = pulumi.Output.from_input(args.validator_invoke_arn).apply(
            lambda invoke_arn: json.dumps(
                build_openapi_document(
                    title=ctx.name("transactions-api"),
                    validator_invoke_arn=invoke_arn,
                    request_schema=args.request_schema,
                ),
                sort_keys=True,
            )
        )
        self.rest_api = aws.apigateway.RestApi(
            "rest-api",
            name=ctx.name("transactions-api"),
            description="Card transaction intake",
            body=self.openapi_document,
            endpoint_configuration={"types": "REGIONAL"},
            # Import warnings (e.g. a schema keyword API Gateway ignores) show in the deployment
            # diagnostics; failing on them would make a harmless keyword block a release.
            fail_on_warnings=False,
            tags=self.tags("transaction-intake-api"),
            opts=child,
        )
        deployment = aws.apigateway.Deployment(
            "deployment",
            rest_api=self.rest_api.id,
            description="Deployment of the current OpenAPI document",
            triggers={"openapi_sha256": self.openapi_document.apply(document_digest)},
            opts=child,
        )
        self.access_log_group = aws.cloudwatch.LogGroup(
            "access-log-group",
            name=f"/aws/apigateway/{ctx.name('transactions-api')}/access",
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            tags=self.tags("api-access-logs"),
            opts=child,
        )
        # API Gateway would create this group itself, unencrypted and kept forever; owning it fixes both.
        execution_log_group = aws.cloudwatch.LogGroup(
            "execution-log-group",
            name=pulumi.Output.concat("API-Gateway-Execution-Logs_", self.rest_api.id, "/", stage_name),
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            tags=self.tags("api-execution-logs"),
            opts=child,
        )
        # Access logging fails on a stage created before the account-level role is set.
        stage_prerequisites: list[pulumi.Resource] = [execution_log_group]
        if settings.manage_api_gateway_account:
            stage_prerequisites.append(self._account_logging_role(ctx))
        self.stage = aws.apigateway.Stage(
            "stage",
            rest_api=self.rest_api.id,
            deployment=deployment.id,
            stage_name=stage_name,
            xray_tracing_enabled=True,
            access_log_settings={"destination_arn": self.access_log_group.arn, "format": ACCESS_LOG_FORMAT},
            tags=self.tags("transaction-intake-stage"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=stage_prerequisites),
        )
        aws.apigateway.MethodSettings(
            "all-methods",
            rest_api=self.rest_api.id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings={
                "metrics_enabled": True,
                "logging_level": "ERROR",
                "data_trace_enabled": False,
                "throttling_rate_limit": settings.api_rate_limit,
                "throttling_burst_limit": settings.api_burst_limit,
            },
            opts=child,
        )

        self.api_key = aws.apigateway.ApiKey(
            "api-key",
            name=ctx.name("provider-key"),
            description="Key for payment providers calling POST /transaction",
            enabled=True,
            tags=self.tags("api-client-key"),
            opts=child,
        )
        usage_plan = aws.apigateway.UsagePlan(
            "usage-plan",
            name=ctx.name("providers"),
            description="Throttle for payment providers, sized for 1,000+ transactions per second",
            api_stages=[{"api_id": self.rest_api.id, "stage": self.stage.stage_name}],
            throttle_settings={
                "rate_limit": settings.api_rate_limit,
                "burst_limit": settings.api_burst_limit,
            },
            tags=self.tags("api-throttling"),
            opts=child,
        )
        aws.apigateway.UsagePlanKey(
            "usage-plan-key",
            key_id=self.api_key.id,
            key_type="API_KEY",
            usage_plan_id=usage_plan.id,
            opts=child,
        )
        for method, path, resource_name in (
            ("POST", "/transaction", "invoke-post-transaction"),
            ("GET", "/transaction/*", "invoke-get-transaction"),
        ):
            aws.lambda_.Permission(
                resource_name,
                action="lambda:InvokeFunction",
                function=args.validator_function_name,
                # Scoped to the alias the integration invokes: a permission with an alias name lets
                # the principal invoke that alias's ARN and nothing else of the function
                # (https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html).
                qualifier=args.validator_alias_name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(
                    self.rest_api.execution_arn, "/", stage_name, "/", method, path
                ),
                source_account=ctx.account_id,
                opts=child,
            )

        self.transaction_url = pulumi.Output.concat(self.stage.invoke_url, "/transaction")
        self.register_outputs(
            {"api_url": self.transaction_url, "stage_arn": self.stage.arn, "api_key_id": self.api_key.id}
        )

    def _account_logging_role(self, ctx: AwsContext) -> aws.apigateway.Account:
        """The account-level CloudWatch role API Gateway needs before any stage can log (F19).

        One setting per account and region, shared by every REST API there, so it is not this
        stack's to take away: in pulumi-aws 7 (terraform-provider-aws 6) deleting
        `aws.apigateway.Account` resets the account's CloudWatch role
        (https://github.com/hashicorp/terraform-provider-aws/pull/42226, issue #40043), which would
        stop the logging of every other stack in the region. The setting, the role it names and
        the role's policy are therefore retained when this stack is destroyed (`retain_on_delete`:
        Pulumi forgets them and AWS keeps them), the one exception to "nothing is retained"; with
        `manageApiGatewayAccount` false the stack leaves the setting to the stack that owns it.
        The role is named from a prefix: a retained role must not block this stack's next
        `pulumi up` with the same name (IAM allows 38 characters of prefix, no room for the region).
        """
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        role = aws.iam.Role(
            "cloudwatch-role",
            name_prefix=f"{ctx.settings.project_prefix}-apigw-logs-{ctx.settings.environment_suffix}-",
            description="API Gateway's account-level CloudWatch Logs role (kept when the stack is destroyed)",
            # No aws:SourceAccount condition: API Gateway does not document (or send) it when it assumes
            # this account-level role, and a condition it never satisfies breaks all API logging.
            assume_role_policy=iam.assume_role_policy("apigateway.amazonaws.com"),
            tags=self.tags("api-logging-role"),
            opts=retained,
        )
        policy = aws.iam.RolePolicy(
            "cloudwatch-role-policy",
            role=role.id,
            policy=iam.document(
                [
                    iam.allow(
                        "WriteApiGatewayLogs",
                        [
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:DescribeLogGroups",
                            "logs:DescribeLogStreams",
                            "logs:PutLogEvents",
                        ],
                        # Execution logs land in groups named after the API id, not known in advance.
                        [ctx.arn("logs", "log-group:*")],
                    )
                ]
            ),
            opts=retained,
        )
        return aws.apigateway.Account(
            "account-logging",
            cloudwatch_role_arn=role.arn,
            opts=pulumi.ResourceOptions.merge(retained, pulumi.ResourceOptions(depends_on=[policy])),
        )

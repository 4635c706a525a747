"""Validate the migration plan (the execution input, or the plan it names by reference) before
anything is changed: the schema, then every preflight check against the account and the stack
(`mq_cutover.preflight`). A packed plan larger than the state should carry is stored in the
stack's plan bucket and passed on as a reference (`mq_cutover.plan_store`)."""

import os
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.contracts import ValidatePlanEvent, ValidatePlanResult
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import PACKED_PREFIX, pack, summary
from mq_cutover.plan_store import PlanSources, is_reference, pass_on, s3_client
from mq_cutover.preflight import Clients, StackSettings
from mq_cutover.settings import Settings
from mq_cutover.validation import validate_plan

settings = Settings.from_environment()
clients = Clients.from_factory(aws.client)


def plan_sources() -> PlanSources | None:
    """Where a plan named by reference may be read: the stack's bucket and plan prefix."""
    if not settings.plan_bucket:
        return None
    return PlanSources(
        bucket=settings.plan_bucket,
        parameter_prefix=settings.plan_parameter_prefix,
        client_parameter_prefix=settings.parameter_path_prefix,
        s3=s3_client(),
        ssm=clients.ssm,
    )


def stack_settings(state_machine_arn: str) -> StackSettings:
    return StackSettings(
        parameter_prefix=settings.parameter_path_prefix,
        approval_topic_arn=settings.approval_topic_arn,
        approver_registry_path=settings.approver_registry_path,
        required_gates=settings.required_gates,
        minimum_quorum=settings.minimum_quorum,
        state_machine_arn=state_machine_arn,
        secrets_prefix=os.environ.get("BROKER_USER_SECRETS_PREFIX", "mq-cutover/"),
        on_prem_tag_key=os.environ.get("ON_PREM_TAG_KEY", "mq-cutover:on-prem"),
        client_host_tag_key=os.environ.get("CLIENT_HOST_TAG_KEY", "mq-cutover:client-host"),
    )


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
# A preflight check AWS did not answer (throttled, unreachable) is no reason to refuse the plan:
# the checks raise AwsThrottled (unless one made before it failed), and the step is retried.
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=ValidatePlanEvent)
def lambda_handler(event: ValidatePlanEvent, context: LambdaContext) -> dict[str, Any]:
    plan = validate_plan(
        event.plan,
        execution_name=event.execution_name,
        stack=stack_settings(event.state_machine_arn or ""),
        clients=clients,
        now=clock.utcnow(),
        sources=plan_sources(),
    )
    # The state machine reads the summary; every Lambda gets the packed plan, or a reference
    # to it once it is too large to travel in the state.
    packed = pass_on(
        pack(plan), bucket=settings.plan_bucket, migration_id=plan.migration_id, s3=s3_client()
    )
    logger.info(
        "plan valid",
        extra={
            "mode": plan.mode.value,
            "parameters": len(plan.all_parameters),
            "planRef": event.plan.get("planRef") if is_reference(event.plan) else None,
            "packedBytes": len(packed),
            "stored": not packed.startswith(PACKED_PREFIX),
        },
    )
    return ValidatePlanResult(summary=summary(plan), packed=packed).dump()

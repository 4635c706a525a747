"""Validate the migration plan (the execution input) before anything is changed."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.approvers import able_to_vote, load_registry, subscription_report
from mq_cutover.errors import ApproversInvalid
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import pack, summary
from mq_cutover.settings import Settings
from mq_cutover.validation import validate_plan

settings = Settings.from_environment()
ssm = aws.client("ssm")
mq = aws.client("mq")
sns = aws.client("sns")


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        registry = load_registry(settings.approver_registry_path)
        unsafe, reached = subscription_report(sns, settings.approval_topic_arn, registry)
        approvers = able_to_vote(registry, reached)
    except ApproversInvalid as exc:
        approvers, unsafe = {}, [str(exc)]
    plan = validate_plan(
        event.get("plan"),
        execution_name=event.get("executionName"),
        parameter_prefix=settings.parameter_path_prefix,
        ssm=ssm,
        mq=mq,
        required_gates=settings.required_gates,
        minimum_quorum=settings.minimum_quorum,
        approvers=approvers,
        unsafe_approvals=unsafe,
    )
    logger.info(
        "plan valid", extra={"mode": plan.mode.value, "parameters": len(plan.all_parameters)}
    )
    # The state machine reads the summary; every Lambda gets the packed plan.
    return {"summary": summary(plan), "packed": pack(plan)}

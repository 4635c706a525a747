"""Open an approval gate: store its record (with the task token) and email the approvers what
is about to happen, with signed links to the confirmation page. No gate opens once a person
asked for the rollback (`mq-cutover abort`: AbortRequested); the manual stop's gate is the point
of no return (mq_cutover.lease.gate_may_open).

A throttled or unreachable AWS API fails the attempt as AwsThrottled, which the gate's task
retries: the retry is a new attempt with a new task token, so the failed attempt's record is
withdrawn before the retry sends new links (a link from the first emails then says so and
decides nothing)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.approval_key import approval_key
from mq_cutover.approval_requests import request_approval
from mq_cutover.approvers import load_registry
from mq_cutover.contracts import ApprovalResult, RequestApprovalEvent
from mq_cutover.gate_facts import EXTENDABLE_GATES, gate_facts
from mq_cutover.lease import check_abort, gate_may_open
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.approvals_table)
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
sns = aws.client("sns")
ssm = aws.client("ssm")


# The event holds the task token: it is never logged (no log_event; only named fields below).
@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, the gate retries
@event_parser(model=RequestApprovalEvent)
def lambda_handler(event: RequestApprovalEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    gate = event.gate
    drain = event.drain or {}
    can_extend = gate in EXTENDABLE_GATES and int(drain.get("extensionsLeft", 0)) > 0
    gate_may_open(leases, migration_id=plan.migration_id, gate=gate, now=clock.utcnow())
    result = request_approval(
        table,
        sns,
        key=approval_key(settings.approval_key_secret_arn),
        topic_arn=settings.approval_topic_arn,
        api_url=settings.approval_api_url,
        task_token=event.task_token,
        migration_id=plan.migration_id,
        gate=gate,
        facts=gate_facts(gate, plan, event.broker or {}, event.drain, ssm, event.topology),
        quorum=plan.approvals.quorum_of(gate, settings.minimum_quorum),
        timeout_seconds=plan.approvals.timeout_minutes * 60,
        now=clock.utcnow(),
        approvers=load_registry(settings.approver_registry_path),
        extend_minutes=plan.drain.extend_minutes if can_extend else None,
        # An abort recorded while the gate opened may have missed it: the run rolls back now
        # (and the links just sent decide nothing).
        last_check=lambda: check_abort(leases, migration_id=plan.migration_id),
    )
    logger.info("approval requested", extra={"approval": result})
    return ApprovalResult.model_validate(result).dump()

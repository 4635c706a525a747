"""Start stopping the on-prem broker: the point of no return, marked on the migration's lease
item first, in one conditional write that fails if a person asked for the rollback (then
AbortRequested: nothing is stopped, the run rolls back)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.contracts import StopOnPremEvent, StopOnPremResult
from mq_cutover.lease import pass_point_of_no_return
from mq_cutover.observability import logger, tracer
from mq_cutover.onprem import stop_on_prem
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
ssm = aws.client("ssm")
ec2 = aws.client("ec2")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
# A SendCommand that timed out may have been sent: the retry finds it by its comment, and the
# point-of-no-return mark is written only if absent, so the broker is stopped once.
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=StopOnPremEvent)
def lambda_handler(event: StopOnPremEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    pass_point_of_no_return(
        leases,
        migration_id=plan.migration_id,
        execution_arn=event.execution_arn,
        step="Stop On-Prem",
        now=clock.utcnow(),
    )
    result = stop_on_prem(plan, ssm, ec2)
    logger.info("on-prem stop started", extra={"stop": result})
    return StopOnPremResult.model_validate(result).dump()

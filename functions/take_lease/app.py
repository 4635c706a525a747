"""Take the migration's lease: refuse at once if another execution is running it."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.contracts import TakeLeaseEvent, TakeLeaseResult
from mq_cutover.lease import take_lease
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
sfn = aws.client("stepfunctions")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
# A conditional PutItem that timed out may have taken the lease: the retry finds itself the holder.
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=TakeLeaseEvent)
def lambda_handler(event: TakeLeaseEvent, context: LambdaContext) -> dict[str, Any]:
    lease = take_lease(
        table,
        sfn,
        migration_id=event.migration_id,
        execution_arn=event.execution_arn,
        now=clock.utcnow(),
    )
    logger.info("lease taken", extra={"lease": lease})
    return TakeLeaseResult.model_validate(lease).dump()

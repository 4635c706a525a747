"""Report the broker's state for the Wait/Choice loop (raises when it failed for good, and
AbortRequested when a person asked for the rollback)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.broker import broker_state
from mq_cutover.contracts import BrokerEvent, BrokerStateResult
from mq_cutover.lease import check_abort
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Where a person's abort is recorded (mq_cutover.lease): read only.
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
mq = aws.client("mq")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=BrokerEvent)
def lambda_handler(event: BrokerEvent, context: LambdaContext) -> dict[str, Any]:
    check_abort(leases, migration_id=event.migration_id)
    result = broker_state(mq, event.broker_id)
    logger.info("broker state", extra={"broker": result})
    return BrokerStateResult.model_validate(result).dump()

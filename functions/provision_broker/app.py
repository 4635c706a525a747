"""Create the Amazon MQ broker (or adopt an existing one). Its state is polled by the ASL."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.broker import provision_broker
from mq_cutover.contracts import ProvisionBrokerEvent, ProvisionBrokerResult
from mq_cutover.lease import verify_lease
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
mq = aws.client("mq")
secrets = aws.client("secretsmanager")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
# A CreateBroker that timed out may have created the broker: the retry finds it by name and
# its migration tag (and CreatorRequestId is the migration's), so one broker is created, and
# reports it created, as the first try would have (its mq-cutover:created-by tag names this
# execution; an earlier attempt's broker is reported adopted).
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=ProvisionBrokerEvent)
def lambda_handler(event: ProvisionBrokerEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    verify_lease(leases, migration_id=plan.migration_id, execution_arn=event.execution_arn)
    result = provision_broker(plan, mq, secrets, execution_arn=event.execution_arn)
    logger.info("broker provisioned", extra={"broker": result})
    return ProvisionBrokerResult.model_validate(result).dump()

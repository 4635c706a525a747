"""The RabbitMQ no-interruption procedure's shovels on the on-prem broker: start them, verify
that everything left on-prem moved to Amazon MQ, remove them (mq_cutover.shovel_steps)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.contracts import ShovelsEvent, ShovelsResult
from mq_cutover.lease import verify_lease
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings
from mq_cutover.shovel_steps import ShovelAction, shovel_step

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
mq = aws.client("mq")
secrets = aws.client("secretsmanager")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=ShovelsEvent)
def lambda_handler(event: ShovelsEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    verify_lease(leases, migration_id=plan.migration_id, execution_arn=event.execution_arn)
    result = shovel_step(
        plan,
        mq,
        secrets,
        action=ShovelAction(event.action),
        broker_id=event.broker_id,
        endpoint=event.endpoint,
        baseline=event.baseline,
        now=lambda: clock.utcnow().timestamp(),
        sleep=clock.sleep,
    )
    logger.info("shovels", extra={"shovels": result})  # never the destination URI
    return ShovelsResult.model_validate(result).dump()

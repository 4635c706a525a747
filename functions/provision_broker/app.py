"""Create the Amazon MQ broker (or adopt an existing one). Its state is polled by the ASL."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.broker import provision_broker
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan

mq = aws.client("mq")
secrets = aws.client("secretsmanager")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = provision_broker(parse_plan(event["plan"]), mq, secrets)
    logger.info("broker provisioned", extra={"broker": result})
    return result

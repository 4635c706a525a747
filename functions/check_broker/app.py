"""Report the broker's state for the Wait/Choice loop (raises when it failed for good)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.broker import broker_state
from mq_cutover.observability import logger, tracer

mq = aws.client("mq")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = broker_state(mq, event["brokerId"])
    logger.info("broker state", extra={"broker": result})
    return result

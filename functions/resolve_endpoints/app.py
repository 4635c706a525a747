"""Resolve the URL clients get for the new broker (failover:(-1,-2) for active/standby)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.broker import resolve_endpoints
from mq_cutover.contracts import BrokerEvent, EndpointsResult
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan

mq = aws.client("mq")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=BrokerEvent)
def lambda_handler(event: BrokerEvent, context: LambdaContext) -> dict[str, Any]:
    result = resolve_endpoints(parse_plan(event.plan), mq, event.broker_id)
    logger.info("endpoints resolved", extra={"clientUrl": result["clientUrl"]})
    return EndpointsResult.model_validate(result).dump()

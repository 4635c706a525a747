"""One reading of the on-prem queues' depth, folded into the previous drain summary."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.drain import check_drain
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.plan import parse_plan

cloudwatch = aws.client("cloudwatch")


@logger.inject_lambda_context(correlation_id_path="plan.migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event["plan"])
    result = check_drain(plan, cloudwatch, event.get("previous"), clock.utcnow())
    metrics.add_metric("MessagesLeftOnPrem", MetricUnit.Count, result["messagesLeft"])
    logger.info("drain reading", extra={"drain": result})
    return result

"""Put every client parameter back to its pre-migration value; report what could not be."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.parameters import rollback_parameters
from mq_cutover.plan import parse_plan

ssm = aws.client("ssm")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = rollback_parameters(
        parse_plan(event["plan"]),
        ssm,
        event.get("broker"),
        time_left_ms=context.get_remaining_time_in_millis,
        start=int(event.get("from") or 0),
    )
    metrics.add_metric("ParametersRestored", MetricUnit.Count, len(result["restored"]))
    metrics.add_metric("RollbackConflicts", MetricUnit.Count, len(result["conflicts"]))
    logger.warning("rolled back", extra={"rollback": result})
    return result

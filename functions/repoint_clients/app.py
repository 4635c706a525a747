"""Point producers or consumers (or one of them) at a new broker URL in Parameter Store."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.parameters import ClientStep, repoint_clients
from mq_cutover.plan import parse_plan

ssm = aws.client("ssm")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = repoint_clients(
        parse_plan(event["plan"]),
        ssm,
        ClientStep(event["step"]),
        event["broker"],
        only=event.get("parameter"),
        index=None if event.get("parameterIndex") is None else int(event["parameterIndex"]),
        time_left_ms=context.get_remaining_time_in_millis,
        start=int(event.get("from") or 0),
    )
    metrics.add_metric("ParametersChanged", MetricUnit.Count, len(result["changed"]))
    logger.info("clients repointed", extra={"clients": result})
    return result

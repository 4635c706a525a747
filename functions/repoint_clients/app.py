"""Point producers or consumers (or one of them, or a batch of producers) at a new broker URL in
Parameter Store."""

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.contracts import RepointClientsEvent, RepointClientsResult
from mq_cutover.lease import verify_lease
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.parameters import ClientStep, repoint_clients, summarized
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
ssm = aws.client("ssm")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@aws.transient_errors_retried  # a retry recognises its own writes and restart (parameters)
@event_parser(model=RepointClientsEvent)
def lambda_handler(event: RepointClientsEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    verify_lease(leases, migration_id=plan.migration_id, execution_arn=event.execution_arn)
    result = repoint_clients(
        plan,
        ssm,
        ClientStep(event.step),
        event.broker,
        only=event.parameter,
        index=event.parameter_index,
        time_left_ms=context.get_remaining_time_in_millis,
        start=event.start or 0,
        count=event.parameter_count,
        written_before=event.written_before,
    )
    metrics.add_metric("ParametersChanged", MetricUnit.Count, len(result["changed"]))
    short = summarized(result, ("changed", "unchanged", "conflicts"))
    logger.info("clients repointed", extra={"clients": short})
    return RepointClientsResult.model_validate(short).dump()

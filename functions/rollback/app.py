"""One action of the rollback (see `mq_cutover.rollback`): move a client group, or ask the
state machine to drain a broker first; when finished, count what is left on each broker."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.drain import amazon_mq_side, broker_counts, on_prem_side
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.rollback import roll_back_step

ssm = aws.client("ssm")
cloudwatch = aws.client("cloudwatch")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event["plan"])
    broker = event.get("broker")
    result = roll_back_step(
        plan,
        ssm,
        broker,
        event.get("memo"),
        cursor=event.get("cursor"),
        time_left_ms=context.get_remaining_time_in_millis,
    )
    if result["finished"]:
        now = clock.utcnow()
        counts = [broker_counts(plan, cloudwatch, now, on_prem_side(plan))]
        if broker and broker.get("metricBrokers"):
            side = amazon_mq_side(plan, list(broker["metricBrokers"]))
            counts.append(broker_counts(plan, cloudwatch, now, side))
        result["brokers"] = {count["side"]: count for count in counts}
    metrics.add_metric("ParametersRestored", MetricUnit.Count, len(result["restored"]))
    metrics.add_metric("RollbackConflicts", MetricUnit.Count, len(result["conflicts"]))
    logger.warning("rollback step", extra={"rollback": result})
    return result

"""One action of the rollback (see `mq_cutover.rollback`): move a client group, or ask the
state machine to drain a broker first; when finished, count what is left on each broker."""

from datetime import datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock, shovel_steps
from mq_cutover.api_readings import amazon_mq_readings
from mq_cutover.contracts import RollbackEvent, RollbackResult
from mq_cutover.drain import amazon_mq_side, broker_counts, on_prem_side
from mq_cutover.lease import mark_rolling_back
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.plan import MetricsSource, parse_plan
from mq_cutover.reconcile import reconcile
from mq_cutover.rollback import roll_back_step
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
ssm = aws.client("ssm")
cloudwatch = aws.client("cloudwatch")
# The brokers' API users: the on-prem one (shovels removed), Amazon MQ's (managementApi).
secrets = aws.client("secretsmanager")
mq = aws.client("mq")  # the Amazon MQ broker's console URL (managementApi)


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
# A retry (or a redrive) runs with the memo the failed try was given: what it lost is read again
# from Parameter Store (producers moved: their labels; their restart: the restore runs again and
# finds the command it sent), so throttled or unreachable AWS is AwsThrottled, retried.
@aws.transient_errors_retried
@event_parser(model=RollbackEvent)
def lambda_handler(event: RollbackEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    # The lease check, which also marks that the rollback began: an abort recorded before no
    # longer stops it, one asked from now on is answered "already rolling back".
    mark_rolling_back(
        leases,
        migration_id=plan.migration_id,
        execution_arn=event.execution_arn,
        failure=event.failure,
        now=clock.utcnow(),
    )
    broker = event.broker
    started_at = datetime.fromisoformat(event.started_at) if event.started_at else None
    result = roll_back_step(
        plan,
        ssm,
        broker,
        event.memo,
        cursor=event.cursor,
        time_left_ms=context.get_remaining_time_in_millis,
        remove_shovels=lambda: shovel_steps.remove(plan, secrets),
        started_at=started_at,
    )
    if result["finished"]:
        now = clock.utcnow()
        counts = [broker_counts(plan, cloudwatch, now, on_prem_side(plan))]
        if broker and broker.get("metricBrokers"):
            # What is left on Amazon MQ: its management API when the plan reads it there.
            live = None
            if plan.target.metrics.source == MetricsSource.MANAGEMENT_API:
                live = amazon_mq_readings(plan, secrets, mq, broker.get("brokerId"))
            side = amazon_mq_side(plan, list(broker["metricBrokers"]), live)
            counts.append(broker_counts(plan, cloudwatch, now, side))
        result["brokers"] = {count["side"]: count for count in counts}
        if started_at:
            sides = [on_prem_side(plan)]
            if broker and broker.get("metricBrokers"):
                sides.append(amazon_mq_side(plan, list(broker["metricBrokers"])))
            result["counts"] = reconcile(plan, cloudwatch, sides, started_at, now)
    metrics.add_metric(
        "ParametersRestored", MetricUnit.Count, result.get("restoredCount", len(result["restored"]))
    )
    metrics.add_metric(
        "RollbackConflicts",
        MetricUnit.Count,
        result.get("conflictsCount", len(result["conflicts"])),
    )
    logger.warning("rollback step", extra={"rollback": result})
    return RollbackResult.model_validate(result).dump()

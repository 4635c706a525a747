"""Readings of the on-prem queues' depth for up to `drain.maxSecondsPerCheck`, folded into the
previous drain summary. Returns as soon as the queues are drained or the deadline passes."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.drain import CALL_RESERVE_SECONDS, watch_drain
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.plan import parse_plan

cloudwatch = aws.client("cloudwatch")


def _progress(summary: dict[str, Any]) -> None:
    logger.info(
        "drain reading",
        extra={
            "messagesLeft": summary["messagesLeft"],
            "emptyReadings": f"{summary['consecutiveEmpty']}/{summary['requiredEmpty']}",
            "missing": summary["missingCount"],
            "stale": summary["staleCount"],
            "stillReceiving": summary["stillReceivingCount"],
        },
    )


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event["plan"])
    budget = min(
        plan.drain.max_seconds_per_check,
        context.get_remaining_time_in_millis() / 1000 - CALL_RESERVE_SECONDS,
    )
    result = watch_drain(
        plan,
        cloudwatch,
        event.get("previous"),
        budget_seconds=budget,
        now=clock.utcnow,
        sleep=clock.sleep,
        progress=_progress,
    )
    metrics.add_metric("MessagesLeftOnPrem", MetricUnit.Count, result["messagesLeft"])
    logger.info("drain summary", extra={"drain": result})
    return result

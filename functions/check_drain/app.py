"""Readings of a broker's queues for up to `drain.maxSecondsPerCheck`, folded into the previous
summary. Returns as soon as the purpose's condition held K times or the deadline passes.

Event: `purpose` drain (default) | fence | placement; `side` onPrem (default) | amazonMq;
`metricBrokers` the Amazon MQ broker's instance names for its own metrics (`<name>-1`, ...);
`startedAt` (the execution's start): when the fence holds, the count reconciliation since then
is added (`counts`); `brokerId` the Amazon MQ broker: with `target.metrics.source`
managementApi its side is read from its RabbitMQ management API (`mq_cutover.api_readings`:
DescribeBroker for its console URL and GetSecretValue for its administrative user, once per
call, only when that side is read) instead of CloudWatch.

A person's abort (mq_cutover.lease) is looked for before the first reading and before each
next one: AbortRequested ends the check, so the run rolls back within one poll interval (a
rollback's own drains go on)."""

from dataclasses import replace
from datetime import datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.api_readings import amazon_mq_readings
from mq_cutover.contracts import CheckDrainEvent, DrainReading
from mq_cutover.drain import (
    CALL_RESERVE_SECONDS,
    Purpose,
    SideName,
    amazon_mq_side,
    side_of,
    watch_drain,
)
from mq_cutover.lease import check_abort
from mq_cutover.observability import logger, metrics, tracer
from mq_cutover.plan import MetricsSource, parse_plan
from mq_cutover.reconcile import reconcile
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Where a person's abort is recorded (mq_cutover.lease): read only.
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
cloudwatch = aws.client("cloudwatch")
# The Amazon MQ broker's management API (target.metrics.source managementApi): its URL and user.
secretsmanager = aws.client("secretsmanager")
mq = aws.client("mq")


def _progress(summary: dict[str, Any]) -> None:
    logger.info(
        "drain reading",
        extra={
            "messagesLeft": summary["messagesLeft"],
            "emptyReadings": f"{summary['consecutiveEmpty']}/{summary['requiredEmpty']}",
            "missing": summary["missingCount"],
            "stale": summary["staleCount"],
            "stillReceiving": summary["stillReceivingCount"],
            "neverDrain": summary["neverDrainCount"],
            "readError": summary.get("readError"),  # figures that could not be read
            "readMode": summary.get("readMode"),  # aggregate (the bridge's QueueSet) | perQueue
            "metricsRead": summary.get("metricsRead"),  # GetMetricData metrics, cumulative
        },
    )


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=CheckDrainEvent)
def lambda_handler(event: CheckDrainEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    check_abort(leases, migration_id=plan.migration_id)

    def progress(summary: dict[str, Any]) -> None:
        _progress(summary)
        check_abort(leases, migration_id=plan.migration_id)

    budget = min(
        plan.drain.max_seconds_per_check,
        context.get_remaining_time_in_millis() / 1000 - CALL_RESERVE_SECONDS,
    )
    purpose = Purpose(event.purpose or Purpose.DRAIN)
    brokers = event.metric_brokers
    live = None
    if plan.target.metrics.source == MetricsSource.MANAGEMENT_API:
        live = amazon_mq_readings(plan, secretsmanager, mq, event.broker_id)
    side = side_of(plan, event.side or SideName.ON_PREM, brokers, live)
    if event.producers_quiet is False:  # a rollback's on-prem drain (mq_cutover.rollback)
        side = replace(side, require_quiet=False)
    result = watch_drain(
        plan,
        cloudwatch,
        event.previous,
        budget_seconds=budget,
        now=clock.utcnow,
        sleep=clock.sleep,
        progress=progress,
        purpose=purpose,
        side=side,
        other=amazon_mq_side(plan, brokers, live) if purpose == Purpose.PLACEMENT else None,
    )
    ended = result["done"] or result["timedOut"]
    if purpose == Purpose.FENCE and ended and event.started_at:
        # Nobody is left on-prem (or a person will decide at the fence's gate): the final
        # figures, taken before the broker stops. Amazon MQ's are CloudWatch's even with
        # managementApi: a reconciliation needs the counters' history, the API has only now.
        sides = [side, amazon_mq_side(plan, brokers)] if brokers else [side]
        began = datetime.fromisoformat(event.started_at)
        result["counts"] = reconcile(plan, cloudwatch, sides, began, clock.utcnow())
    if side.name == SideName.ON_PREM:
        metrics.add_metric("MessagesLeftOnPrem", MetricUnit.Count, result["messagesLeft"])
    else:
        metrics.add_metric("MessagesLeftOnAmazonMq", MetricUnit.Count, result["messagesLeft"])
    logger.info("drain summary", extra={"drain": result})
    return DrainReading.model_validate(result).dump()

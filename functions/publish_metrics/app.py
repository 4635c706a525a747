"""The scheduled on-prem metrics bridge: each invocation (once a minute) samples the on-prem
broker's HTTP API every BRIDGE_INTERVAL_SECONDS for about a minute and publishes, each sample,
the aggregates of the watched queues (BRIDGE_QUEUES, BRIDGE_IGNORE_QUEUES: comma-separated names
or glob patterns; default every queue, and the plan's default DLQ patterns; "-": none ignored),
and with its first sample and then every BRIDGE_DETAIL_SECONDS each watched queue's own series
(BRIDGE_DETAIL_FIGURES: `messages`, the default, or `all`)."""

import os
from typing import Any

from aws_lambda_powertools.utilities.parameters import get_secret
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.metrics_bridge import (
    DEFAULT_DETAIL_SECONDS,
    Publishing,
    Source,
    SourceType,
    default_ignore_queues,
    parse_dimensions,
    parse_queue_list,
    run,
)
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import QueueMetrics
from mq_cutover.queue_set import DetailFigures, QueueSet

cloudwatch = aws.client("cloudwatch")
RESERVE_SECONDS = 10


def _source() -> Source:
    secret_arn = os.environ.get("BRIDGE_PASSWORD_SECRET_ARN", "")
    return Source(
        type=SourceType(os.environ["BRIDGE_SOURCE_TYPE"]),
        url=os.environ["BRIDGE_SOURCE_URL"],
        broker_name=os.environ.get("BRIDGE_BROKER_NAME", "localhost"),
        vhost=os.environ.get("BRIDGE_VHOST", "/"),
        username=os.environ.get("BRIDGE_USERNAME") or None,
        password=str(get_secret(secret_arn, max_age=300)) if secret_arn else None,
    )


def _metrics() -> QueueMetrics:
    return QueueMetrics(
        namespace=os.environ.get("BRIDGE_NAMESPACE", "MqCutover/OnPrem"),
        queue_dimension=os.environ.get("BRIDGE_QUEUE_DIMENSION", "Queue"),
        dimensions=parse_dimensions(os.environ.get("BRIDGE_DIMENSIONS", "")),
    )


def _publishing() -> Publishing:
    """The watched set, as the plan's `onPrem.queues` / `onPrem.ignoreQueues` would give it
    (the drain finds the aggregates under the same digest only when they agree)."""
    ignore = os.environ.get("BRIDGE_IGNORE_QUEUES", "")
    return Publishing(
        queue_set=QueueSet.of(
            parse_queue_list(os.environ.get("BRIDGE_QUEUES", "")),
            parse_queue_list(ignore) if ignore.strip() else default_ignore_queues(),
        ),
        detail_seconds=float(os.environ.get("BRIDGE_DETAIL_SECONDS") or DEFAULT_DETAIL_SECONDS),
        detail_figures=DetailFigures(os.environ.get("BRIDGE_DETAIL_FIGURES") or "messages"),
    )


def _report(result: dict[str, Any]) -> None:
    if "error" in result:
        logger.warning("metrics sample failed", extra={"sample": result})
    else:
        logger.info("metrics published", extra={"sample": result})


# Not @aws.transient_errors_retried: a schedule, not a state-machine task; nothing retries
# AwsThrottled here. A failed sample is reported and the next minute's run samples again.
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    interval = float(os.environ.get("BRIDGE_INTERVAL_SECONDS", "10"))
    window = float(os.environ.get("BRIDGE_WINDOW_SECONDS", "50"))
    budget = min(window, context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)
    summary = run(
        _source(),
        _metrics(),
        cloudwatch,
        interval_seconds=interval,
        duration_seconds=max(0.0, budget),
        publishing=_publishing(),
        now=clock.utcnow,
        sleep=clock.sleep,
        on_sample=_report,
    )
    logger.info("bridge run", extra={"bridge": summary})
    return summary

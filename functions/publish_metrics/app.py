"""The scheduled on-prem metrics bridge: each invocation (once a minute) samples the on-prem
broker's HTTP API every BRIDGE_INTERVAL_SECONDS for about a minute and publishes every queue's
depth, in-flight, enqueue, dequeue and consumer counts to CloudWatch."""

import os
from typing import Any

from aws_lambda_powertools.utilities.parameters import get_secret
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.metrics_bridge import Source, SourceType, parse_dimensions, run
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import QueueMetrics

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


def _report(result: dict[str, Any]) -> None:
    if "error" in result:
        logger.warning("metrics sample failed", extra={"sample": result})
    else:
        logger.info("metrics published", extra={"sample": result})


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
        now=clock.utcnow,
        sleep=clock.sleep,
        on_sample=_report,
    )
    logger.info("bridge run", extra={"bridge": summary})
    return summary

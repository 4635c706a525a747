"""Open an approval gate: store its record (with the task token) and email the approvers."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.approvals import request_approval
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.approvals_table)
sns = aws.client("sns")


# The event holds the task token: it is never logged (no log_event, and only named fields below).
@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = request_approval(
        table,
        sns,
        topic_arn=settings.approval_topic_arn,
        api_url=settings.approval_api_url,
        task_token=event["taskToken"],
        migration_id=event["migrationId"],
        gate=event["gate"],
        details=event.get("details") or {},
        timeout_seconds=int(event["timeoutSeconds"]),
        now=clock.utcnow(),
    )
    logger.info("approval requested", extra=result)
    return result

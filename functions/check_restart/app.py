"""One look at the clients' restart hooks (SSM Run Command) for the state machine's Wait/Choice
loop: done when every host succeeded; raises RestartHookFailed naming the hosts that failed, a
command that reached no host, or the hosts still running once the hook's timeout has passed;
AbortRequested when a person asked for the rollback (a rollback's own checks go on)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.contracts import CheckRestartEvent, RestartCheckResult
from mq_cutover.lease import check_abort
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.restart_hooks import check_restart
from mq_cutover.settings import Settings

settings = Settings.from_environment()
# Where a person's abort is recorded (mq_cutover.lease): read only.
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
ssm = aws.client("ssm")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=CheckRestartEvent)
def lambda_handler(event: CheckRestartEvent, context: LambdaContext) -> dict[str, Any]:
    check_abort(leases, migration_id=event.migration_id)  # a rollback's own checks pass
    result = check_restart(
        parse_plan(event.plan),
        ssm,
        list(event.commands),
        event.previous,
        now=clock.utcnow(),
        step=event.step,
    )
    logger.info("restart hooks", extra={"restart": result})
    return RestartCheckResult.model_validate(result).dump()

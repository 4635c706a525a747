"""Follow the on-prem stop (SSM command or EC2 stop) until it has finished."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.contracts import CheckOnPremStopEvent, OnPremStopResult
from mq_cutover.observability import logger, tracer
from mq_cutover.onprem import check_on_prem_stop

ssm = aws.client("ssm")
ec2 = aws.client("ec2")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=CheckOnPremStopEvent)
def lambda_handler(event: CheckOnPremStopEvent, context: LambdaContext) -> dict[str, Any]:
    result = check_on_prem_stop(ssm, ec2, event.stop)
    logger.info("on-prem stop status", extra={"stop": result})
    return OnPremStopResult.model_validate(result).dump()

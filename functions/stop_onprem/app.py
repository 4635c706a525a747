"""Start stopping the on-prem broker (the point of no return)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.observability import logger, tracer
from mq_cutover.onprem import stop_on_prem
from mq_cutover.plan import parse_plan

ssm = aws.client("ssm")
ec2 = aws.client("ec2")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = stop_on_prem(parse_plan(event["plan"]), ssm, ec2)
    logger.info("on-prem stop started", extra={"stop": result})
    return result

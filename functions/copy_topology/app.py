"""Copy the on-prem broker's topology to the Amazon MQ broker, then compare both
(mq_cutover.topology). The result is shown on the cutover gate."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws
from mq_cutover.contracts import CopyTopologyEvent, TopologyResult
from mq_cutover.lease import verify_lease
from mq_cutover.observability import logger, tracer
from mq_cutover.plan import parse_plan
from mq_cutover.settings import Settings
from mq_cutover.topology import copy_topology

settings = Settings.from_environment()
# Every change is made only by the execution holding the migration's lease (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
mq = aws.client("mq")
secrets = aws.client("secretsmanager")


@logger.inject_lambda_context(correlation_id_path="migrationId")
@tracer.capture_lambda_handler
@aws.transient_errors_retried  # throttled or unreachable AWS: AwsThrottled, retried
@event_parser(model=CopyTopologyEvent)
def lambda_handler(event: CopyTopologyEvent, context: LambdaContext) -> dict[str, Any]:
    plan = parse_plan(event.plan)
    verify_lease(leases, migration_id=plan.migration_id, execution_arn=event.execution_arn)
    result = copy_topology(
        plan, mq, secrets, broker_id=event.broker_id, engine=event.engine, gated=event.gated
    )
    logger.info(
        "topology copied",
        extra={"summary": result["summary"], "differenceCount": result["differenceCount"]},
    )
    return TopologyResult.model_validate(result).dump()

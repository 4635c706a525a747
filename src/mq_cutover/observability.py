"""One Logger, Tracer and Metrics for every handler (Powertools reads the service name and
namespace from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE).

Importing this module switches on log redaction for the whole process (`redaction.install`):
every handler imports it first, so no logger - ours, botocore's, Powertools' event logging -
writes a task token, a link signature, a password or a key, at any level."""

from aws_lambda_powertools import Logger, Metrics, Tracer

from mq_cutover import redaction

redaction.install()

logger = Logger(json_serializer=redaction.json_serializer)
tracer = Tracer()
metrics = Metrics()

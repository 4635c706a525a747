"""Create or adopt the Amazon MQ broker, report its state, and resolve the clients' URL."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.client_urls import broker_url, pick_endpoints
from mq_cutover.errors import BrokerCreationFailed, BrokerMismatch, BrokerNotFound
from mq_cutover.plan import ENGINE_PROTOCOLS, BrokerSpec, Engine, MigrationPlan, Mode, Protocol

MIGRATION_TAG = "mq-cutover:migration-id"
# Written with the migration tag by this module's CreateBroker only, its value the creating
# execution's ARN: a broker found by name later carrying this execution's ARN was created by
# this run (the retry of a CreateBroker that timed out: `created: true`); one an earlier attempt
# created, or one tagged for the migration by hand, is adopted (`created: false`). Decided from
# the broker's tags (durable), not from the run's memory.
CREATED_BY_TAG = "mq-cutover:created-by"
# States a broker does not leave by itself: waiting longer will not help.
TERMINAL_BAD_STATES = {"CREATION_FAILED", "DELETION_IN_PROGRESS", "CRITICAL_ACTION_REQUIRED"}


def _password(secrets: Any, secret_arn: str) -> str:
    """A user's password from Secrets Manager: the secret string, or its "password" key."""
    value = secrets.get_secret_value(SecretId=secret_arn)["SecretString"]
    try:
        document = json.loads(value)
    except json.JSONDecodeError:
        return str(value)
    if isinstance(document, dict) and "password" in document:
        return str(document["password"])
    return str(value)


def _find_by_name(mq: Any, name: str) -> dict[str, Any] | None:
    token = None
    while True:
        page = mq.list_brokers(**({"NextToken": token} if token else {}), MaxResults=100)
        for summary in page.get("BrokerSummaries", []):
            if summary.get("BrokerName") == name:
                return dict(summary)
        token = page.get("NextToken")
        if not token:
            return None


def _create_request(
    spec: BrokerSpec, migration_id: str, execution_arn: str, secrets: Any
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "BrokerName": spec.broker_name,
        "CreatorRequestId": migration_id,
        "EngineType": spec.engine.value,
        "EngineVersion": spec.engine_version,
        "DeploymentMode": spec.deployment_mode.value,
        "HostInstanceType": spec.host_instance_type,
        "SubnetIds": list(spec.subnet_ids),
        "SecurityGroups": list(spec.security_groups),
        "PubliclyAccessible": spec.publicly_accessible,
        "AutoMinorVersionUpgrade": spec.auto_minor_version_upgrade,
        "AuthenticationStrategy": "SIMPLE",
        "Logs": {"General": spec.general_logs},
        "Tags": {**spec.tags, MIGRATION_TAG: migration_id, CREATED_BY_TAG: execution_arn},
        "Users": [
            {
                "Username": user.username,
                "Password": _password(secrets, user.password_secret_arn),
                "ConsoleAccess": user.console_access,
                **({"Groups": list(user.groups)} if user.groups else {}),
            }
            for user in spec.users
        ],
    }
    if spec.engine == Engine.ACTIVEMQ:
        request["Logs"]["Audit"] = False
    if spec.kms_key_id:
        request["EncryptionOptions"] = {"UseAwsOwnedKey": False, "KmsKeyId": spec.kms_key_id}
    else:
        request["EncryptionOptions"] = {"UseAwsOwnedKey": True}
    return request


def provision_broker(
    plan: MigrationPlan, mq: Any, secrets: Any, *, execution_arn: str
) -> dict[str, Any]:
    """Create the plan's broker, or adopt it. Re-running is a no-op: a broker of the same name
    tagged for this migration is taken (`created` true if its tags say this execution created
    it: the retry of a CreateBroker that timed out; false for an earlier attempt's broker); one
    of someone else is refused."""
    target = plan.target
    if target.adopt_broker_id:
        broker = describe(mq, target.adopt_broker_id)
        return {
            "brokerId": broker["BrokerId"],
            "brokerArn": broker["BrokerArn"],
            "engine": broker["EngineType"].upper(),
            "created": False,
        }
    spec = target.create
    assert spec is not None  # the plan guarantees one of adopt/create
    existing = _find_by_name(mq, spec.broker_name)
    if existing:
        broker = describe(mq, existing["BrokerId"])
        tags = broker.get("Tags") or {}
        if tags.get(MIGRATION_TAG) != plan.migration_id:
            raise BrokerMismatch(
                f"a broker named {spec.broker_name} already exists ({broker['BrokerId']}) and "
                f"was not created by migration {plan.migration_id}: adopt it with "
                "target.adoptBrokerId or choose another target.create.brokerName"
            )
        return {
            "brokerId": broker["BrokerId"],
            "brokerArn": broker["BrokerArn"],
            "engine": spec.engine.value,
            "created": tags.get(CREATED_BY_TAG) == execution_arn,
        }
    try:
        response = mq.create_broker(
            **_create_request(spec, plan.migration_id, execution_arn, secrets)
        )
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    return {
        "brokerId": response["BrokerId"],
        "brokerArn": response["BrokerArn"],
        "engine": spec.engine.value,
        "created": True,
    }


def describe(mq: Any, broker_id: str) -> dict[str, Any]:
    try:
        return dict(mq.describe_broker(BrokerId=broker_id))
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] in ("NotFoundException", "NotFound"):
            raise BrokerNotFound(f"broker {broker_id} does not exist") from None
        raise


def broker_state(mq: Any, broker_id: str) -> dict[str, Any]:
    """The broker's state for the Wait/Choice loop; a state it cannot leave is an error."""
    broker = describe(mq, broker_id)
    state = broker["BrokerState"]
    if state in TERMINAL_BAD_STATES:
        raise BrokerCreationFailed(f"broker {broker_id} is {state}")
    return {"brokerId": broker_id, "state": state}


def resolve_endpoints(plan: MigrationPlan, mq: Any, broker_id: str) -> dict[str, Any]:
    """The URL clients get: one endpoint, failover:(-1,-2) for active/standby, amqps:// for
    RabbitMQ."""
    broker = describe(mq, broker_id)
    engine = Engine(broker["EngineType"].upper())
    protocol = plan.target.protocol or (
        Protocol.OPENWIRE if engine == Engine.ACTIVEMQ else Protocol.AMQP
    )
    if protocol not in ENGINE_PROTOCOLS[engine]:
        raise BrokerMismatch(f"target.protocol {protocol.value} is not offered by {engine.value}")
    if plan.mode == Mode.UNORDERED and engine == Engine.RABBITMQ and not plan.shovels:
        # A created RabbitMQ broker's shovel procedure is checked with the plan; an adopted
        # broker's engine is known only now.
        raise BrokerMismatch(
            f"mode unordered: broker {broker_id} is RabbitMQ, whose clients have no failover: "
            "URL; the RabbitMQ no-interruption procedure (shovels) needs a broker the plan "
            "creates (target.create): use mode ordered with an adopted broker"
        )
    endpoints = pick_endpoints(broker.get("BrokerInstances", []), protocol)
    if not endpoints:
        raise BrokerMismatch(f"broker {broker_id} has no {protocol.value} endpoint")
    instances = broker.get("BrokerInstances", [])
    name = str(broker.get("BrokerName", broker_id))
    return {
        "brokerId": broker_id,
        "brokerName": name,
        # Amazon MQ's own metrics name each instance `<broker name>-<n>` (dimension Broker).
        "metricBrokers": [f"{name}-{n}" for n in range(1, max(1, len(instances)) + 1)],
        "engine": engine.value,
        "protocol": protocol.value,
        "endpoints": endpoints,
        "clientUrl": broker_url(endpoints, protocol, plan.target.failover_options),
    }

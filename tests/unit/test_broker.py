"""Create or adopt the broker: idempotent, private by default, no password anywhere returned."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from moto.mq.models import mq_backends

from mq_cutover.broker import (
    CREATED_BY_TAG,
    MIGRATION_TAG,
    broker_state,
    provision_broker,
    resolve_endpoints,
)
from mq_cutover.errors import BrokerCreationFailed, BrokerMismatch, BrokerNotFound
from mq_cutover.plan import parse_plan

PASSWORD = "s3cret-offline-pw"
EXECUTIONS = "arn:aws:states:us-east-1:123456789012:execution:mq-cutover-migration"
RUN = f"{EXECUTIONS}:orders-2026-12-01"  # the execution provisioning (this run)
LATER = f"{EXECUTIONS}:orders-2026-12-01--2"  # a later attempt of the same migration


def existing_broker(mq: Any, name: str, engine: str, version: str) -> Any:
    """A broker someone created before the migration (to adopt)."""
    return mq.create_broker(
        BrokerName=name,
        EngineType=engine,
        EngineVersion=version,
        DeploymentMode="SINGLE_INSTANCE",
        HostInstanceType="mq.m5.large",
        PubliclyAccessible=False,
        AutoMinorVersionUpgrade=True,
        Users=[{"Username": "admin", "Password": "x" * 12}],
    )


@pytest.fixture
def clients(aws: Any) -> tuple[Any, Any]:
    secrets = aws("secretsmanager")
    secrets.create_secret(
        Name="mq-cutover/orders-app", SecretString=json.dumps({"password": PASSWORD})
    )
    return aws("mq"), secrets


def test_create_uses_migration_id_and_stays_private(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    mq, secrets = clients
    plan = parse_plan(ordered_plan)
    calls: list[dict[str, Any]] = []
    original = mq.create_broker

    def recording(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    mq.create_broker = recording
    result = provision_broker(plan, mq, secrets, execution_arn=RUN)
    (request,) = calls
    assert request["CreatorRequestId"] == "orders-2026-12-01"
    assert request["PubliclyAccessible"] is False
    assert request["Users"][0]["Password"] == PASSWORD  # read from Secrets Manager
    assert request["Tags"]["mq-cutover:migration-id"] == "orders-2026-12-01"
    assert request["Tags"]["mq-cutover:created-by"] == RUN  # what a re-run reads
    assert PASSWORD not in json.dumps(result)
    described = mq.describe_broker(BrokerId=result["brokerId"])
    assert described["DeploymentMode"] == "ACTIVE_STANDBY_MULTI_AZ"
    assert described["PubliclyAccessible"] is False
    assert result["created"] is True


def test_a_rerun_takes_the_broker_it_created_and_says_it_created_it(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    mq, secrets = clients
    plan = parse_plan(ordered_plan)
    first = provision_broker(plan, mq, secrets, execution_arn=RUN)
    second = provision_broker(plan, mq, secrets, execution_arn=RUN)
    assert second == first and second["created"] is True
    # A later attempt (after a rollback) takes the broker the first one created: adopted.
    later = provision_broker(plan, mq, secrets, execution_arn=LATER)
    assert later == {**first, "created": False}
    assert len(mq.list_brokers()["BrokerSummaries"]) == 1


def test_the_retry_of_a_create_that_timed_out_reports_the_broker_created(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    """CreateBroker applied, its answer lost: the retry (a new Lambda: nothing remembered)
    finds the broker by name, and its tags say this migration created it."""
    mq, secrets = clients
    plan = parse_plan(ordered_plan)
    create = mq.create_broker

    def applied_then_timed_out(**kwargs: Any) -> Any:
        create(**kwargs)
        raise ReadTimeoutError(endpoint_url="https://mq.us-east-1.amazonaws.com")

    mq.create_broker = applied_then_timed_out
    with pytest.raises(ReadTimeoutError):
        provision_broker(plan, mq, secrets, execution_arn=RUN)
    (summary,) = mq.list_brokers()["BrokerSummaries"]
    retried = provision_broker(plan, mq, secrets, execution_arn=RUN)
    assert retried == {
        "brokerId": summary["BrokerId"],
        "brokerArn": summary["BrokerArn"],
        "engine": "ACTIVEMQ",
        "created": True,
    }
    assert len(mq.list_brokers()["BrokerSummaries"]) == 1


def test_a_broker_tagged_for_the_migration_by_hand_is_adopted_not_created(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    """The migration tag alone (no mq-cutover:created-by, e.g. a broker someone tagged so the
    plan's name would find it): taken, and reported as adopted."""
    mq, secrets = clients
    name = ordered_plan["target"]["create"]["brokerName"]
    theirs = existing_broker(mq, name, "ACTIVEMQ", "5.18")
    mq.create_tags(
        ResourceArn=theirs["BrokerArn"], Tags={MIGRATION_TAG: ordered_plan["migrationId"]}
    )
    result = provision_broker(parse_plan(ordered_plan), mq, secrets, execution_arn=RUN)
    assert result["brokerId"] == theirs["BrokerId"] and result["created"] is False
    # What decides it: the created-by tag naming this execution.
    mq.create_tags(ResourceArn=theirs["BrokerArn"], Tags={CREATED_BY_TAG: RUN})
    assert (
        provision_broker(parse_plan(ordered_plan), mq, secrets, execution_arn=RUN)["created"]
        is True
    )


def test_same_name_from_someone_else_is_refused(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    mq, secrets = clients
    plan = parse_plan(ordered_plan)
    provision_broker(plan, mq, secrets, execution_arn=RUN)
    ordered_plan["migrationId"] = "another-migration"
    with pytest.raises(BrokerMismatch, match="was not created by migration another-migration"):
        provision_broker(parse_plan(ordered_plan), mq, secrets, execution_arn=RUN)


def test_adopt_existing_broker(clients: tuple[Any, Any], ordered_plan: dict[str, Any]) -> None:
    mq, secrets = clients
    existing = existing_broker(mq, "existing", "ACTIVEMQ", "5.18")
    del ordered_plan["target"]["create"]
    ordered_plan["target"]["adoptBrokerId"] = existing["BrokerId"]
    result = provision_broker(parse_plan(ordered_plan), mq, secrets, execution_arn=RUN)
    assert result == {
        "brokerId": existing["BrokerId"],
        "brokerArn": existing["BrokerArn"],
        "engine": "ACTIVEMQ",
        "created": False,
    }


def test_broker_state_fails_for_good_on_creation_failed(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    mq, secrets = clients
    result = provision_broker(parse_plan(ordered_plan), mq, secrets, execution_arn=RUN)
    assert broker_state(mq, result["brokerId"])["state"] == "RUNNING"
    mq_backends["123456789012"]["us-east-1"].brokers[result["brokerId"]].state = "CREATION_FAILED"
    with pytest.raises(BrokerCreationFailed, match="CREATION_FAILED"):
        broker_state(mq, result["brokerId"])
    with pytest.raises(BrokerNotFound):
        broker_state(mq, "nope")


def test_resolve_active_standby_and_rabbitmq(
    clients: tuple[Any, Any], ordered_plan: dict[str, Any]
) -> None:
    mq, secrets = clients
    plan = parse_plan(ordered_plan)
    broker_id = provision_broker(plan, mq, secrets, execution_arn=RUN)["brokerId"]
    # moto gives both instances the same "mockmq" endpoint; real ones are -1 and -2.
    broker = mq_backends["123456789012"]["us-east-1"].brokers[broker_id]
    for index, instance in enumerate(broker.instances, start=1):
        instance["endpoints"] = [e.replace("mockmq", f"b-{index}") for e in instance["endpoints"]]
    resolved = resolve_endpoints(plan, mq, broker_id)
    assert resolved["clientUrl"] == "failover:(ssl://b-1:61617,ssl://b-2:61617)"
    rabbit = existing_broker(mq, "rabbit", "RABBITMQ", "3.13")
    ordered_plan["target"]["protocol"] = None
    plan = parse_plan(ordered_plan)
    assert resolve_endpoints(plan, mq, rabbit["BrokerId"])["clientUrl"] == "amqps://mockmq:5671"


def test_unordered_onto_an_adopted_rabbitmq_broker_is_refused(
    clients: tuple[Any, Any], unordered_plan: dict[str, Any]
) -> None:
    mq, _ = clients
    rabbit = existing_broker(mq, "rabbit", "RABBITMQ", "3.13")
    del unordered_plan["target"]["create"]
    unordered_plan["target"]["adoptBrokerId"] = rabbit["BrokerId"]
    with pytest.raises(BrokerMismatch, match="use mode ordered"):
        resolve_endpoints(parse_plan(unordered_plan), mq, rabbit["BrokerId"])

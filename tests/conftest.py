"""Shared fixtures: fake AWS credentials, moto for unit tests, sample events, a Lambda context."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="us-east-1")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def ordered_plan() -> dict[str, Any]:
    return copy.deepcopy(load_event("plan-ordered.json"))


@pytest.fixture
def unordered_plan() -> dict[str, Any]:
    return copy.deepcopy(load_event("plan-unordered.json"))


ON_PREM_RABBIT_API = "http://rabbit.internal:15672"


def as_rabbitmq(document: dict[str, Any], *, on_prem_api: bool = True) -> dict[str, Any]:
    """An example plan (ActiveMQ) turned into one that creates a RabbitMQ broker: one subnet,
    one user, AMQP; `on_prem_api`: topology copied from the on-prem management API (its user's
    secret is the broker user's, for brevity). Changes `document` and returns it."""
    create = document["target"]["create"]
    create.update(engine="RABBITMQ", engineVersion="3.13", deploymentMode="SINGLE_INSTANCE")
    create["subnetIds"], create["users"] = create["subnetIds"][:1], create["users"][:1]
    document["target"]["protocol"] = "amqp"
    document["target"].pop("failoverOptions", None)
    if on_prem_api:
        secret = create["users"][0]["passwordSecretArn"]
        document["topology"] = {"onPremApi": {"url": ON_PREM_RABBIT_API, "secretArn": secret}}
    return document


@dataclass
class FakeLambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def approvals_table() -> Any:
    """The approvals table as template.yaml declares it (inside a moto mock): its ByMigration
    index projects only gate and status, never the task token."""
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName="approvals",
        KeySchema=[{"AttributeName": "approvalId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "approvalId", "AttributeType": "S"},
            {"AttributeName": "migrationId", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByMigration",
                "KeySchema": [
                    {"AttributeName": "migrationId", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["gate", "status"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return boto3.resource("dynamodb", region_name="us-east-1").Table("approvals")

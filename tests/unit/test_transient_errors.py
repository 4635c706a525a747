"""Which Lambda handlers turn a throttled or unreachable AWS API into AwsThrottled (retried by
the state machine with back-off), proven per handler with an unreachable endpoint; and the
re-run a decorated handler relies on when its call may have been applied (provision_broker
after a CreateBroker that timed out creates one broker)."""

from __future__ import annotations

import ast
import importlib.util
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto import mock_aws

from mq_cutover.errors import AwsThrottled
from tests.conftest import ROOT, FakeLambdaContext, load_event

DECORATOR = "transient_errors_retried"
# Handler -> the sample event (events/functions/) each is invoked with.
DECORATED = {
    "check_broker": "check_broker.json",
    "check_drain": "check_drain.json",
    "check_onprem_stop": "check_onprem_stop.json",
    "check_restart": "check_restart.json",
    "copy_topology": "copy_topology.json",
    "provision_broker": "provision_broker.json",
    "repoint_clients": "repoint_clients.json",
    "request_approval": "request_approval.json",
    "resolve_endpoints": "resolve_endpoints.json",
    "rollback": "rollback.json",
    "shovels": "shovels.json",
    "stop_onprem": "stop_onprem.json",
    "take_lease": "take_lease.json",
    "validate_plan": "validate_plan.json",
}
# Handler -> why a retry of the whole handler is not what an unreachable AWS API gets.
NOT_DECORATED = {
    "approval_api": "an HTTP API: answers 503, nothing decided",
    "publish_metrics": "a schedule, not a task: the next minute samples again",
}


def _decorated(name: str) -> bool:
    tree = ast.parse((ROOT / "functions" / name / "app.py").read_text())
    (handler,) = [
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "lambda_handler"
    ]
    return any(ast.unparse(d).endswith(DECORATOR) for d in handler.decorator_list)


def test_every_handler_chooses_whether_unreachable_aws_is_retried() -> None:
    """A new handler must be listed in one of the two: decorated, or why not."""
    handlers = {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    assert handlers == set(DECORATED) | set(NOT_DECORATED)
    assert {n for n in handlers if _decorated(n)} == set(DECORATED)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"transient_{name}", ROOT / "functions" / name / "app.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "MIGRATIONS_TABLE": "migrations",
        "APPROVALS_TABLE": "approvals",
        "APPROVAL_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:approvals",
        "APPROVAL_API_URL": "https://approvals.example.com",
        "APPROVAL_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k",
        "APPROVER_REGISTRY_PATH": "/mq-cutover/approvers",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("name", sorted(DECORATED))
def test_an_unreachable_endpoint_fails_the_handler_as_aws_throttled(
    name: str, stack_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _load(name)
    calls: list[str] = []

    def unreachable(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        raise EndpointConnectionError(endpoint_url=client.meta.endpoint_url)

    monkeypatch.setattr(BaseClient, "_make_api_call", unreachable)
    with pytest.raises(AwsThrottled) as raised:
        app.lambda_handler(load_event(f"functions/{DECORATED[name]}"), FakeLambdaContext())
    assert calls  # the handler did reach AWS, and its first call failed it
    assert isinstance(raised.value.__cause__, EndpointConnectionError)


def test_provision_broker_retried_after_a_create_timeout_creates_one_broker(
    stack_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CreateBroker applied, its answer lost (ReadTimeout): the handler fails as AwsThrottled;
    the state machine's retry finds the broker by name and tag and creates no second one."""
    event = load_event("functions/provision_broker.json")
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="migrations",
            KeySchema=[{"AttributeName": "migrationId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "migrationId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.resource("dynamodb", region_name="us-east-1").Table("migrations").put_item(
            Item={"migrationId": event["migrationId"], "executionArn": event["executionArn"]}
        )
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        for user in event["plan"]["target"]["create"]["users"]:
            arn = secrets.create_secret(Name=user["username"], SecretString="s3cret-Passw0rd")
            user["passwordSecretArn"] = arn["ARN"]
        app = _load("provision_broker")
        real = BaseClient._make_api_call
        timed_out: list[str] = []

        def create_then_time_out(client: BaseClient, operation: str, params: Any) -> Any:
            response = real(client, operation, params)
            if operation == "CreateBroker" and not timed_out:
                timed_out.append(operation)  # applied, then the answer is lost
                raise ReadTimeoutError(endpoint_url=client.meta.endpoint_url)
            return response

        monkeypatch.setattr(BaseClient, "_make_api_call", create_then_time_out)
        with pytest.raises(AwsThrottled):
            app.lambda_handler(event, FakeLambdaContext())
        result = app.lambda_handler(event, FakeLambdaContext())  # the state machine's retry
        brokers = boto3.client("mq", region_name="us-east-1").list_brokers()["BrokerSummaries"]
    assert timed_out == ["CreateBroker"]
    assert [b["BrokerId"] for b in brokers] == [result["brokerId"]]
    assert result["created"] is True  # its created-by tag names this execution

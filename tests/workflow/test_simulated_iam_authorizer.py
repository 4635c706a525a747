"""The simulated API Gateway AWS_IAM authoriser (cli/mq_cutover_cli/approval_http.py) in front of
the decision routes: the real CLI signing code (mq_cutover_cli.api) against it.

The canary tests fail loudly when moto stops keeping access keys where the simulation reads them
(moto 5.2.5 internals). The authoriser tests use a stub handler that records what reaches it:
a refused request must never reach the function."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from moto import mock_aws

from mq_cutover_cli.api import DecisionApi, NotAuthorised, sign, urllib_transport
from mq_cutover_cli.approval_http import ApprovalApiClient, known_key, serve

pytestmark = pytest.mark.workflow

ACCOUNT = "123456789012"
API = "https://abc123.execute-api.us-east-1.amazonaws.com/dev/decisions"


class StubHandler:
    """Stands in for functions/approval_api/app.py: records each event, answers 200 JSON."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def lambda_handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        body = {"migrationId": event["pathParameters"]["migrationId"], "pending": []}
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body),
        }


@pytest.fixture
def moto_iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="us-east-1")


@pytest.fixture
def handler() -> StubHandler:
    return StubHandler()


@pytest.fixture
def client(handler: StubHandler) -> ApprovalApiClient:
    emulator = SimpleNamespace(
        handlers={"ApprovalApiFunction": handler},
        function_arns={
            "ApprovalApiFunction": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:approval"
        },
    )
    return ApprovalApiClient(emulator)  # type: ignore[arg-type]


def user_credentials(aws: Any, name: str = "ana") -> Credentials:
    aws("iam").create_user(UserName=name, Path="/approvers/")
    key = aws("iam").create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def role_credentials(aws: Any, session_name: str = "ana-laptop") -> Credentials:
    role = aws("iam").create_role(RoleName="approver", AssumeRolePolicyDocument="{}")["Role"]
    creds = aws("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=session_name)["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def signed_request(
    credentials: Credentials, method: str = "POST", url: str = f"{API}/orders-2026-12-01"
) -> tuple[str, str, dict[str, str], bytes]:
    body = json.dumps({"decision": "approve", "gate": "cutover", "comment": "go"}).encode()
    payload = body if method == "POST" else b""
    headers = sign(
        method,
        url,
        payload,
        credentials=credentials,
        region="us-east-1",
        headers={"Content-Type": "application/json"} if payload else {},
    )
    return method, url, headers, payload


# --- canary: the moto internals the simulation reads ------------------------------------------
def test_canary_moto_keeps_iam_user_keys_where_the_authoriser_reads_them(moto_iam: Any) -> None:
    credentials = user_credentials(moto_iam)
    found = known_key(credentials.access_key)
    assert found is not None, "moto.iam.models.iam_backends[..].access_keys no longer has the key"
    assert found.secret == credentials.secret_key
    assert found.session_token is None and found.active
    assert found.user_arn == f"arn:aws:iam::{ACCOUNT}:user/approvers/ana"
    assert found.caller == moto_iam("iam").get_user(UserName="ana")["User"]["UserId"]
    assert found.account_id == ACCOUNT


def test_canary_moto_keeps_assumed_role_credentials_where_the_authoriser_reads_them(
    moto_iam: Any,
) -> None:
    credentials = role_credentials(moto_iam)
    found = known_key(credentials.access_key)
    assert found is not None, "moto.sts.models: assumed_roles no longer hold the credentials"
    assert found.secret == credentials.secret_key
    assert found.session_token == credentials.token
    assert found.user_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/approver/ana-laptop"
    assert found.caller.endswith(":ana-laptop") and found.caller.startswith("AROA")
    assert found.expires is not None and found.expires > datetime.now(UTC)


def test_canary_an_unknown_or_deleted_key_is_not_known(moto_iam: Any) -> None:
    credentials = user_credentials(moto_iam)
    assert known_key("AKIAIOSFODNN7EXAMPLE") is None
    moto_iam("iam").delete_access_key(UserName="ana", AccessKeyId=credentials.access_key)
    assert known_key(credentials.access_key) is None


# --- the authoriser ------------------------------------------------------------------------
def test_a_correctly_signed_request_reaches_the_handler_as_the_iam_user(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler
) -> None:
    credentials = user_credentials(moto_iam)
    status, _, body = client.signed(*signed_request(credentials))
    assert status == 200, body
    (event,) = handler.events
    identity = event["requestContext"]["identity"]
    assert identity["userArn"] == f"arn:aws:iam::{ACCOUNT}:user/approvers/ana"
    assert identity["accessKey"] == credentials.access_key
    assert identity["accountId"] == ACCOUNT
    assert identity["caller"] == moto_iam("iam").get_user(UserName="ana")["User"]["UserId"]
    assert event["resource"] == "/decisions/{migrationId}"
    assert event["path"] == "/decisions/orders-2026-12-01"
    assert event["pathParameters"] == {"migrationId": "orders-2026-12-01"}
    assert event["requestContext"]["stage"] == "dev"
    assert json.loads(event["body"])["decision"] == "approve"


def test_an_assumed_role_reaches_the_handler_as_its_session_arn_with_its_token_checked(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler
) -> None:
    credentials = role_credentials(moto_iam, "whatever-i-like")
    method, url, headers, body = signed_request(credentials, "GET")
    assert headers["X-Amz-Security-Token"] == credentials.token
    status, _, _ = client.signed(method, url, headers, body)
    assert status == 200
    identity = handler.events[-1]["requestContext"]["identity"]
    assert identity["userArn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/approver/whatever-i-like"

    # The same key and signature without the session token, or with another: refused.
    missing = {k: v for k, v in headers.items() if k != "X-Amz-Security-Token"}
    forged = {**headers, "X-Amz-Security-Token": "FwoGZXIvYXdzEForged"}
    for wrong in (missing, forged):
        status, _, answer = client.signed(method, url, wrong, body)
        assert status == 403 and "security token" in json.loads(answer)["message"]
    assert len(handler.events) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        "body",
        "path",
        "signature",
        "unknown-key",
        "wrong-secret",
        "method",
        "no-authorization",
        "other-service",
    ],
)
def test_a_tampered_or_unknown_request_is_refused_before_the_handler(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler, tamper: str
) -> None:
    credentials = user_credentials(moto_iam)
    method, url, headers, body = signed_request(credentials)
    if tamper == "body":
        body = body.replace(b"approve", b"reject_")
    elif tamper == "path":
        url = f"{API}/payments-2026-12-01"
    elif tamper == "signature":
        signature = headers["Authorization"][-64:]
        flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
        headers["Authorization"] = headers["Authorization"][:-64] + flipped
    elif tamper == "unknown-key":
        _, url, headers, body = signed_request(Credentials("AKIAIOSFODNN7EXAMPLE", "x" * 40))
    elif tamper == "wrong-secret":
        wrong = Credentials(credentials.access_key, "y" * 40)
        _, url, headers, body = signed_request(wrong)
    elif tamper == "method":
        method = "GET"
    elif tamper == "no-authorization":
        headers.pop("Authorization")
    elif tamper == "other-service":
        headers = {
            **sign(method, url, body, credentials=credentials, region="us-east-1"),
        }
        headers["Authorization"] = headers["Authorization"].replace("/execute-api/", "/s3/")
    status, answer_headers, answer = client.signed(method, url, headers, body)
    assert status == 403
    assert isinstance(json.loads(answer)["message"], str)
    assert answer_headers["x-amzn-ErrorType"].endswith("Exception")
    assert handler.events == []


def test_a_stale_signature_is_refused(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler
) -> None:
    request = signed_request(user_credentials(moto_iam))
    late = ApprovalApiClient(client.emulator, now=lambda: datetime.now(UTC) + timedelta(minutes=16))
    status, _, answer = late.signed(*request)
    assert status == 403 and "Signature expired" in json.loads(answer)["message"]
    early = ApprovalApiClient(
        client.emulator, now=lambda: datetime.now(UTC) + timedelta(minutes=14)
    )
    assert early.signed(*request)[0] == 200  # within API Gateway's 15 minutes
    assert len(handler.events) == 1


def test_a_path_that_is_not_a_decision_route_is_missing_authentication_token(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler
) -> None:
    credentials = user_credentials(moto_iam)
    for url in (f"{API}/", f"{API}/a/b", API.replace("/decisions", "/other/x")):
        status, _, answer = client.signed(*signed_request(credentials, "POST", url))
        assert status == 403
        assert json.loads(answer)["message"] == "Missing Authentication Token"
    assert handler.events == []


def test_the_cli_client_over_http_reaches_the_handler_through_the_authoriser(
    moto_iam: Any, client: ApprovalApiClient, handler: StubHandler
) -> None:
    """The whole client path: the CLI's signing and its urllib transport, a real HTTP request to
    the local server, the simulated authoriser, the handler."""
    credentials = role_credentials(moto_iam)
    with serve(client.emulator) as base:  # type: ignore[arg-type]
        decisions = base.replace("/approvals", "/decisions")
        api = DecisionApi(decisions, credentials, "us-east-1", urllib_transport)
        answer = api.get("orders-2026-12-01")
        assert answer.status == 200 and answer.body["migrationId"] == "orders-2026-12-01"
        identity = handler.events[-1]["requestContext"]["identity"]
        assert identity["userArn"].endswith(":assumed-role/approver/ana-laptop")

        outsider = DecisionApi(
            decisions, Credentials("AKIAIOSFODNN7EXAMPLE", "x" * 40), "us-east-1", urllib_transport
        )
        with pytest.raises(NotAuthorised) as refused:
            outsider.get("orders-2026-12-01")
        assert "AKIAIOSFODNN7EXAMPLE" in str(refused.value)
        assert "security token" in str(refused.value)
    assert len(handler.events) == 1


# --- end to end: the CLI's decide() over the simulated authoriser, the real handler -----------
def test_registered_iam_principals_approve_the_cutover_through_the_cli(
    ordered_plan: dict[str, Any],
) -> None:
    """ana (an IAM user) and bea (anyone in the bea-approver role) are registered approvers of
    the simulated stack; a quorum of 2 at the cutover needs both. An unregistered IAM user is
    refused and changes nothing."""
    from mq_cutover_cli.decide import decide, decision_line, pending, pending_lines
    from mq_cutover_cli.live import live_run

    ordered_plan["approvals"] = {"quorum": {"cutover": 2}}
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        run.wait_for_gate("cutover")
        emulator = run.emulator
        aws = emulator.client
        url = emulator.approval_api_url.replace("/approvals", "/decisions")

        def api(credentials: Credentials) -> DecisionApi:
            return DecisionApi(url, credentials, "us-east-1", run.api.signed)

        ana = user_credentials(aws, "ana")
        aws("iam").create_user(UserName="mallory")
        key = aws("iam").create_access_key(UserName="mallory")["AccessKey"]
        mallory = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        role = aws("iam").create_role(RoleName="bea-approver", AssumeRolePolicyDocument="{}")
        assumed = aws("sts").assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="bea-laptop")[
            "Credentials"
        ]
        bea = Credentials(
            assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"]
        )

        listed = pending(api(ana), migration)
        assert listed.status == 200 and listed.body["you"] == {"id": "ana", "name": "Ana Ops"}
        (gate,) = listed.body["pending"]
        assert gate["gate"] == "cutover" and gate["quorum"] == 2 and gate["approvals"] == 0
        shown = "\n".join(pending_lines(listed, migration))
        assert "cutover: " in shown and "0 of 2 approvals" in shown and "| " in shown
        assert "taskToken" not in json.dumps(listed.body)

        with pytest.raises(NotAuthorised) as refused:
            decide(
                api(mallory), migration_id=migration, decision="approve", gate="cutover", comment=""
            )
        assert f"arn:aws:iam::{ACCOUNT}:user/mallory" in str(refused.value)

        first = decide(
            api(ana), migration_id=migration, decision="approve", gate="cutover", comment="go"
        )
        assert decision_line(first) == (True, "approval recorded (1 of 2): the gate stays closed")
        assert "Repoint Producers" not in run.entered()

        second = decide(
            api(bea), migration_id=migration, decision="approve", gate="cutover", comment=""
        )
        decided, line = decision_line(second)
        assert decided and line.startswith(f"cutover of {migration} approved by Ana Ops, Bea Lead")
        run.wait_until("producers moved", lambda: "Repoint Producers" in run.entered())

        (record,) = [
            item
            for item in aws("dynamodb").scan(TableName=emulator.resources["ApprovalsTable"])[
                "Items"
            ]
            if item["gate"]["S"] == "cutover"
        ]
        assert record["status"]["S"] == "APPROVED"
        votes = [v["M"] for v in record["votes"]["L"]]
        assert [(v["approver"]["S"], v["source"]["S"]) for v in votes] == [
            ("ana", "cli"),
            ("bea", "cli"),
        ]
        # The principal the server verified: the user, and the role (not the session name).
        assert [v["principal"]["S"] for v in votes] == [
            f"arn:aws:iam::{ACCOUNT}:user/approvers/ana",
            f"arn:aws:iam::{ACCOUNT}:role/bea-approver",
        ]


def test_one_role_with_two_session_names_counts_once(ordered_plan: dict[str, Any]) -> None:
    """A session name is chosen by whoever assumes the role: the role is the person. Two sessions
    of bea's role give one vote; the quorum of 2 still needs ana."""
    from mq_cutover_cli.decide import decide, decision_line
    from mq_cutover_cli.live import live_run

    ordered_plan["approvals"] = {"quorum": {"cutover": 2}}
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        run.wait_for_gate("cutover")
        aws = run.emulator.client
        url = run.emulator.approval_api_url.replace("/approvals", "/decisions")
        role = aws("iam").create_role(RoleName="bea-approver", AssumeRolePolicyDocument="{}")

        def vote_as(session_name: str) -> tuple[bool, str]:
            creds = aws("sts").assume_role(
                RoleArn=role["Role"]["Arn"], RoleSessionName=session_name
            )["Credentials"]
            credentials = Credentials(
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
            )
            api = DecisionApi(url, credentials, "us-east-1", run.api.signed)
            answer = decide(
                api, migration_id=migration, decision="approve", gate="cutover", comment=""
            )
            return decision_line(answer)

        assert vote_as("bea-laptop") == (True, "approval recorded (1 of 2): the gate stays closed")
        decided, line = vote_as("ana")  # a session named like another approver is still bea
        assert not decided and "already-voted" in line
        assert "Repoint Producers" not in run.entered()
        (record,) = [
            item
            for item in aws("dynamodb").scan(TableName=run.emulator.resources["ApprovalsTable"])[
                "Items"
            ]
            if item["gate"]["S"] == "cutover"
        ]
        assert record["status"]["S"] == "PENDING"
        assert [v["M"]["approver"]["S"] for v in record["votes"]["L"]] == ["bea"]


def test_a_vote_by_link_and_by_terminal_is_one_vote(ordered_plan: dict[str, Any]) -> None:
    """Ana approves through her emailed link, then again from her terminal: still one vote of
    two. The gate opens only when a second person (Bea, from her link) approves."""
    from mq_cutover_cli.decide import DecisionApi, decide
    from mq_cutover_cli.live import live_run

    ordered_plan["approvals"] = {"quorum": {"cutover": 2}}
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        link = run.wait_for_gate("cutover").approve_link
        assert "recorded (1 of 2)" in run.api.post(link, {"decision": "approve"})["body"]
        url = run.emulator.approval_api_url.replace("/approvals", "/decisions")
        ana = DecisionApi(url, user_credentials(run.emulator.client), "us-east-1", run.api.signed)
        again = decide(ana, migration_id=migration, decision="approve", gate="cutover", comment="")
        assert again.status == 409 and again.body["outcome"] == "already-voted"
        assert "Repoint Producers" not in run.entered()
        bea = run.wait_for_gate("cutover", approver="bea").approve_link
        assert run.api.post(bea, {"decision": "approve"})["statusCode"] == 200
        run.wait_until("producers moved", lambda: "Repoint Producers" in run.entered())

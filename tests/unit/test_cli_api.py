"""The CLI's client of the decision API (mq_cutover_cli.api, decide, cli): SigV4 signing with the
session's credentials, what each answer becomes, the lines a person reads, and the `approvers`
admin commands against moto (CloudFormation outputs, SSM registry, SNS subscriptions)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from moto import mock_aws

from mq_cutover_cli.api import (
    Answer,
    ApiUnreachable,
    DecisionApi,
    NotAuthorised,
    ServerUnavailable,
    UnexpectedAnswer,
    region_of,
    sign,
    urllib_transport,
)
from mq_cutover_cli.cli import main
from mq_cutover_cli.decide import decision_line, pending_lines, shown

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/decisions"
USER = "arn:aws:iam::123456789012:user/ana"


class FakeTransport:
    """Records each request and gives the next canned answer."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((method, url, headers, body))
        status, document = self.answers.pop(0)
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        return status, {"Content-Type": "application/json"}, raw


def api_with(*answers: tuple[int, Any], whoami: Any = None) -> tuple[DecisionApi, FakeTransport]:
    transport = FakeTransport(*answers)
    credentials = Credentials("AKIAEXAMPLEKEY000001", "s" * 40)
    return DecisionApi(API, credentials, "eu-west-1", transport, whoami), transport


# --- signing -------------------------------------------------------------------------------
def test_signing_includes_the_session_token_and_scopes_to_execute_api_in_the_region() -> None:
    credentials = Credentials("ASIAEXAMPLEKEY000001", "s" * 40, "FwoGZXIvYXdzEToken")
    headers = sign("POST", f"{API}/orders", b"{}", credentials=credentials, region="eu-west-1")
    assert headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEToken"
    authorization = headers["Authorization"]
    date = headers["X-Amz-Date"][:8]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEY000001/{date}/eu-west-1/execute-api/"
        "aws4_request, "
    )
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert "s" * 40 not in json.dumps(headers)  # the secret signs; it is never sent


def test_the_signature_covers_the_body_and_long_term_keys_send_no_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import botocore.auth

    fixed = datetime(2026, 12, 1, 8, 0, 0)  # naive UTC, as botocore's own
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: fixed)
    credentials = Credentials("AKIAEXAMPLEKEY000001", "s" * 40)

    def signed(body: bytes) -> dict[str, str]:
        return sign("POST", f"{API}/orders", body, credentials=credentials, region="eu-west-1")

    one, same, other = signed(b'{"a": 1}'), signed(b'{"a": 1}'), signed(b'{"a": 2}')
    assert one["X-Amz-Date"] == "20261201T080000Z"
    assert "X-Amz-Security-Token" not in one
    assert one["Authorization"] == same["Authorization"]
    assert one["Authorization"] != other["Authorization"]


def test_refreshable_credentials_are_read_once_per_request() -> None:
    class Rotating:
        """Like botocore's RefreshableCredentials: only the frozen view is consistent."""

        def __init__(self) -> None:
            self.frozen = 0

        def get_frozen_credentials(self) -> Credentials:
            self.frozen += 1
            return Credentials("ASIAROTATED000000001", "r" * 40, "token-now")

    credentials = Rotating()
    headers = sign("GET", f"{API}/orders", None, credentials=credentials, region="eu-west-1")
    assert credentials.frozen == 1
    assert headers["X-Amz-Security-Token"] == "token-now"
    assert "Credential=ASIAROTATED000000001/" in headers["Authorization"]


def test_the_region_is_the_apis_own() -> None:
    assert region_of(API) == "eu-west-1"
    assert region_of("http://127.0.0.1:8080/dev/decisions") is None


def test_a_decision_is_posted_as_json_to_the_migrations_path() -> None:
    api, transport = api_with((200, {"outcome": "approved"}))
    answer = api.post("orders-2026-12-01", {"decision": "approve", "gate": None, "comment": "go"})
    assert answer == Answer(200, {"outcome": "approved"})
    ((method, url, headers, body),) = transport.requests
    assert (method, url) == ("POST", f"{API}/orders-2026-12-01")
    assert headers["Content-Type"] == "application/json" and "Authorization" in headers
    assert json.loads(body or b"") == {"decision": "approve", "gate": None, "comment": "go"}
    api.transport = FakeTransport((200, {"pending": []}))
    api.get("a/b c")  # never a path of its own
    assert api.transport.requests[0][1] == f"{API}/a%2Fb%20c"  # type: ignore[attr-defined]


# --- errors --------------------------------------------------------------------------------
def test_403_says_which_identity_was_used() -> None:
    api, _ = api_with(
        (403, {"outcome": "not-an-approver", "detail": f"{USER} is not a registered approver"}),
        whoami=lambda: USER,
    )
    with pytest.raises(NotAuthorised) as refused:
        api.post("orders", {"decision": "approve"})
    assert refused.value.identity == f"{USER} (access key AKIAEXAMPLEKEY000001)"
    assert str(refused.value) == (
        f"not authorised as {USER} (access key AKIAEXAMPLEKEY000001): "
        f"{USER} is not a registered approver"
    )


def test_403_from_api_gateway_names_the_key_when_the_caller_cannot_be_named() -> None:
    def whoami() -> str:
        raise RuntimeError("sts unreachable")

    api, _ = api_with(
        (403, {"message": "The security token included in the request is invalid."}),
        whoami=whoami,
    )
    with pytest.raises(NotAuthorised, match=r"as access key AKIAEXAMPLEKEY000001: The security"):
        api.get("orders")


def test_403_missing_authentication_token_hints_at_the_url() -> None:
    api, _ = api_with((403, {"message": "Missing Authentication Token"}))
    with pytest.raises(NotAuthorised, match="is the URL the stack's DecisionApiUrl"):
        api.get("orders")


@pytest.mark.parametrize(
    ("method", "status", "says"),
    [
        ("POST", 503, "nothing was decided; try again"),
        ("POST", 500, "may or may not have been recorded"),
        ("POST", 502, "may or may not have been recorded"),
        ("POST", 504, "may or may not have been recorded"),
        ("GET", 502, "nothing was decided; try again"),
        ("POST", 429, "throttled by API Gateway"),
    ],
)
def test_server_failures_say_whether_anything_may_have_been_decided(
    method: str, status: int, says: str
) -> None:
    api, _ = api_with((status, {"message": "Internal server error"}))
    with pytest.raises(ServerUnavailable, match=says) as failed:
        api.request(
            method, api.url("orders"), {"decision": "approve"} if method == "POST" else None
        )
    assert failed.value.status == status


@pytest.mark.parametrize(
    "raw", [b"<html>Sign in to the corporate proxy</html>", b"\xff\xfe", b'["a list"]']
)
def test_an_answer_that_is_not_the_apis_json_is_an_error(raw: bytes) -> None:
    api, _ = api_with((200, raw))
    with pytest.raises(UnexpectedAnswer, match="answered 200 with something that is not its JSON"):
        api.get("orders")


def test_the_servers_refusals_with_a_reason_are_answers() -> None:
    for status in (400, 404, 409, 410):
        api, _ = api_with((status, {"outcome": "x", "detail": "why"}))
        assert api.post("orders", {}).status == status
    api, _ = api_with((301, {"message": "moved"}))
    with pytest.raises(UnexpectedAnswer, match="301"):
        api.get("orders")


@pytest.fixture
def local_http() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A local HTTP server answering 409 JSON to any request (what reached it is kept)."""
    seen: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.headers.get("Authorization") or "", body))
            payload = json.dumps({"outcome": "already-voted", "detail": "once"}).encode()
            self.send_response(409)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/dev/decisions", seen
    finally:
        server.shutdown()
        server.server_close()


def test_urllib_transport_returns_an_error_status_as_an_answer(
    local_http: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, seen = local_http
    api = DecisionApi(url, Credentials("AKIAEXAMPLEKEY000001", "s" * 40), "us-east-1")
    answer = api.post("orders", {"decision": "approve", "gate": None, "comment": ""})
    assert answer == Answer(409, {"outcome": "already-voted", "detail": "once"})
    ((authorization, body),) = seen
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY000001/")
    assert json.loads(body)["decision"] == "approve"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nobody listens on (bound, not listening: connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_urllib_transport_network_failures_are_api_unreachable(closed_port: int) -> None:
    with pytest.raises(ApiUnreachable, match=f"cannot reach 127.0.0.1:{closed_port}"):
        urllib_transport("GET", f"http://127.0.0.1:{closed_port}/dev/decisions/x", {}, None)
    with pytest.raises(ApiUnreachable, match="refusing to send a signed request over http"):
        urllib_transport("POST", "http://example.com/dev/decisions/x", {}, b"{}")


# --- what a person reads -------------------------------------------------------------------
def test_decision_lines() -> None:
    approved = Answer(
        200,
        {
            "outcome": "approved",
            "gate": "cutover",
            "migrationId": "orders-2026-12-01",
            "decidedBy": "Ana Ops",
            "principal": "arn:aws:iam::123456789012:role/ana",
        },
    )
    assert decision_line(approved) == (
        True,
        "cutover of orders-2026-12-01 approved by Ana Ops (arn:aws:iam::123456789012:role/ana)",
    )
    recorded = Answer(200, {"outcome": "vote-recorded", "votes": 1, "quorum": 2})
    assert decision_line(recorded) == (True, "approval recorded (1 of 2): the gate stays closed")
    voted = Answer(409, {"outcome": "already-voted", "votes": 1})
    assert decision_line(voted) == (
        False,
        "nothing decided (already-voted): you have already voted at this gate; a vote counts once",
    )
    late = {"status": "REJECTED", "decidedBy": "Bea Lead", "decidedAt": "2026-12-01T08:00:00Z"}
    assert decision_line(Answer(409, {"outcome": "already-decided", **late})) == (
        False,
        "nothing decided (already-decided): the gate was already rejected by Bea Lead at "
        "2026-12-01T08:00:00Z",
    )
    nothing = Answer(404, {"outcome": "nothing-pending", "detail": "orders is not waiting"})
    assert decision_line(nothing) == (
        False,
        "nothing decided (nothing-pending): orders is not waiting",
    )


def test_pending_lines_show_gates_votes_and_facts_with_control_characters_written_out() -> None:
    answer = Answer(
        200,
        {
            "migrationId": "orders",
            "you": {"id": "ana", "name": "Ana Ops"},
            "pending": [
                {
                    "gate": "cutover",
                    "title": "Start the cutover",
                    "expiresAt": "2026-12-01T10:00:00Z",
                    "secondsLeft": 4500,
                    "quorum": 2,
                    "approvals": 1,
                    "votes": [
                        {
                            "approver": "bea",
                            "name": "Bea Lead",
                            "decision": "approve",
                            "at": "2026-12-01T08:01:00Z",
                            "source": "email-link",
                        }
                    ],
                    "canExtend": False,
                    "youMayVote": True,
                    "facts": ["Mode: ordered", "queue \x1b[2Jorders.in: 12 messages"],
                },
            ],
        },
    )
    assert pending_lines(answer, "orders") == [
        "orders: 1 gate open (you are Ana Ops)",
        "",
        "cutover: Start the cutover",
        "  expires 2026-12-01T10:00:00Z (1 h 15 min left); 1 of 2 approvals; cannot be extended",
        "  vote: Bea Lead approve at 2026-12-01T08:01:00Z via email-link",
        "  | Mode: ordered",
        "  | queue \\x1b[2Jorders.in: 12 messages",
    ]
    assert pending_lines(Answer(200, {"pending": []}), "orders") == ["orders: no gate is open"]
    assert shown("a\nb\u202e") == "a\\nb\\u202e"


# --- the commands ---------------------------------------------------------------------------
REGISTRY = "/mq-cutover/test/approvers"
TEMPLATE = {
    "Resources": {"ApprovalTopic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "DecisionApiUrl": {"Value": API},
        "ApproverRegistryPath": {"Value": REGISTRY},
        "ApprovalTopicArn": {"Value": {"Ref": "ApprovalTopic"}},
    },
}


@pytest.fixture
def stack() -> Iterator[Any]:
    """A deployed stack's outputs in moto (CloudFormation, SSM, SNS); yields a boto3 Session."""
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("cloudformation").create_stack(
            StackName="mq-cutover-test", TemplateBody=json.dumps(TEMPLATE)
        )
        yield session


def topic(session: Any) -> str:
    (found,) = session.client("sns").list_topics()["Topics"]
    return str(found["TopicArn"])


def test_approve_with_the_stacks_api_prints_who_decided(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FakeTransport(
        (
            200,
            {
                "outcome": "approved",
                "gate": "cutover",
                "migrationId": "orders-2026-12-01",
                "decidedBy": "Ana Ops",
                "principal": "arn:aws:iam::123456789012:role/ana",
            },
        )
    )
    argv = [
        "approve",
        "orders-2026-12-01",
        "--stack",
        "mq-cutover-test",
        "--gate",
        "cutover",
        "--comment",
        "window confirmed",
    ]
    assert main(argv, session=stack, transport=transport) == 0
    assert capsys.readouterr().out == (
        "cutover of orders-2026-12-01 approved by Ana Ops (arn:aws:iam::123456789012:role/ana)\n"
    )
    ((method, url, headers, body),) = transport.requests
    assert (method, url) == ("POST", f"{API}/orders-2026-12-01")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]  # the API's region
    assert json.loads(body or b"") == {
        "decision": "approve",
        "gate": "cutover",
        "comment": "window confirmed",
    }


def test_reject_that_decides_nothing_exits_1_and_says_why(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FakeTransport((409, {"outcome": "ambiguous", "detail": "several gates are open"}))
    assert (
        main(
            ["reject", "orders", "--gate", "cutover", "--api-url", API],
            session=stack,
            transport=transport,
        )
        == 1
    )
    assert capsys.readouterr().err == "nothing decided (ambiguous): several gates are open\n"


def test_a_refused_caller_exits_3_naming_the_identity(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FakeTransport((403, {"message": "User is not authorized to access this resource"}))
    assert (
        main(
            ["extend", "orders", "--gate", "drainTimeout", "--api-url", API],
            session=stack,
            transport=transport,
        )
        == 3
    )
    err = capsys.readouterr().err
    caller = stack.client("sts").get_caller_identity()["Arn"]
    assert err.startswith(f"mq-cutover: not authorised as {caller} (access key ")
    assert err.rstrip().endswith("User is not authorized to access this resource")


def test_pending_lists_the_open_gates(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    transport = FakeTransport((200, {"migrationId": "orders", "pending": []}))
    assert (
        main(
            ["pending", "orders", "--stack", "mq-cutover-test"], session=stack, transport=transport
        )
        == 0
    )
    assert capsys.readouterr().out == "orders: no gate is open\n"
    assert transport.requests[0][:2] == ("GET", f"{API}/orders")


def test_a_stack_without_the_decision_api_exits_2(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.client("cloudformation").create_stack(
        StackName="old", TemplateBody=json.dumps({"Resources": TEMPLATE["Resources"]})
    )
    assert (
        main(
            ["approve", "orders", "--gate", "cutover", "--stack", "old"],
            session=stack,
            transport=FakeTransport(),
        )
        == 2
    )
    assert "stack old has no DecisionApiUrl output" in capsys.readouterr().err


def test_approvers_add_list_remove(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mq_cutover.approvers")
    base = ["--stack", "mq-cutover-test"]
    role = "arn:aws:iam::123456789012:role/ana-approver"
    add = ["approvers", "add", "--id", "ana", "--name", "Ana Ops", "--email", "ana@example.com"]
    assert main([*add, "--iam-principal", role, *base], session=stack) == 0
    assert capsys.readouterr().out.startswith("approver ana (Ana Ops) added; ana@example.com ")
    bea = ["approvers", "add", "--id", "bea", "--name", "Bea Lead", "--email", "bea@example.com"]
    assert main([*bea, *base], session=stack) == 0
    capsys.readouterr()

    entry = json.loads(
        stack.client("ssm").get_parameter(Name=f"{REGISTRY}/ana")["Parameter"]["Value"]
    )
    assert len(entry.pop("enrolment")) == 16  # each registration is its own enrolment
    assert entry == {
        "name": "Ana Ops",
        "protocol": "email",
        "endpoint": "ana@example.com",
        "iamPrincipal": role,
    }
    sns = stack.client("sns")
    policies = {
        sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"][
            "FilterPolicy"
        ]: s["Endpoint"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic(stack))["Subscriptions"]
    }
    assert policies == {
        json.dumps({"approver": ["ana"]}): "ana@example.com",
        json.dumps({"approver": ["bea"]}): "bea@example.com",
    }

    assert main(["approvers", "list", *base], session=stack) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"approvers of mq-cutover-test ({REGISTRY}): 2",
        f"  ana: Ana Ops <email:ana@example.com>, IAM principal {role}, subscription confirmed",
        "  bea: Bea Lead <email:bea@example.com>, IAM principal -, subscription confirmed",
        "  no problem: each approver's links reach only that approver",
    ]

    # Adding the same id again is refused unless --replace.
    assert main([*add, *base], session=stack) == 2
    assert "approver ana exists (Ana Ops); use --replace" in capsys.readouterr().err

    # A subscription without a filter would receive everyone's links: list says so, exit 1.
    sns.subscribe(TopicArn=topic(stack), Protocol="email", Endpoint="all@example.com")
    assert main(["approvers", "list", *base], session=stack) == 1
    assert "  problem: email subscription" in capsys.readouterr().out

    assert main(["approvers", "remove", "--id", "bea", *base], session=stack) == 0
    assert capsys.readouterr().out == (
        "approver bea removed (1 subscription deleted); their links already sent no longer count\n"
    )
    endpoints = [
        s["Endpoint"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic(stack))["Subscriptions"]
    ]
    assert "bea@example.com" not in endpoints
    params = stack.client("ssm").get_parameters_by_path(Path=REGISTRY)["Parameters"]
    assert [p["Name"] for p in params] == [f"{REGISTRY}/ana"]
    assert main(["approvers", "remove", "--id", "bea", *base], session=stack) == 1
    assert "no approver bea; nothing removed" in capsys.readouterr().err


def test_approvers_add_refuses_an_invalid_entry(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mq_cutover.approvers")
    argv = [
        "approvers",
        "add",
        "--id",
        "Ana!",
        "--name",
        "Ana",
        "--email",
        "ana@example.com",
        "--stack",
        "mq-cutover-test",
    ]
    assert main(argv, session=stack) == 2
    assert "approver id 'Ana!'" in capsys.readouterr().err
    assert stack.client("ssm").get_parameters_by_path(Path=REGISTRY)["Parameters"] == []
    assert (
        stack.client("sns").list_subscriptions_by_topic(TopicArn=topic(stack))["Subscriptions"]
        == []
    )


def test_subscription_status_tells_pending_confirmation_from_confirmed() -> None:
    """SNS lists an email subscription nobody confirmed yet as "PendingConfirmation" (moto
    confirms at once, so this is a stub)."""
    from mq_cutover.approvers import subscription_status

    listed = [
        {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "Bea@x.com"},
        {"SubscriptionArn": "arn:aws:sns:us-east-1:1:t:a", "Protocol": "email", "Endpoint": "a@x"},
        {"SubscriptionArn": "arn:aws:sns:us-east-1:1:t:c", "Protocol": "email", "Endpoint": "c@x"},
    ]
    attributes = {
        "arn:aws:sns:us-east-1:1:t:a": {"FilterPolicy": '{"approver": ["ana"]}'},
        "arn:aws:sns:us-east-1:1:t:c": {
            "FilterPolicy": '{"approver": ["cy"]}',
            "PendingConfirmation": "true",
        },
    }

    class Sns:
        def get_paginator(self, name: str) -> Any:
            assert name == "list_subscriptions_by_topic"
            return type("P", (), {"paginate": lambda _self, **_: [{"Subscriptions": listed}]})()

        def get_subscription_attributes(self, SubscriptionArn: str) -> dict[str, Any]:
            return {"Attributes": attributes[SubscriptionArn]}

    def approver(id: str, endpoint: str) -> Any:
        return type("A", (), {"id": id, "protocol": "email", "endpoint": endpoint})()

    registry = {
        a.id: a
        for a in (
            approver("ana", "a@x"),
            approver("bea", "bea@x.com"),
            approver("cy", "c@x"),
            approver("dee", "d@x"),
        )
    }
    assert subscription_status(Sns(), "arn:topic", registry) == {
        "ana": "confirmed",
        "bea": "pending confirmation",
        "cy": "pending confirmation",
        "dee": "none",
    }

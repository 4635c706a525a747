"""Log redaction: every secret shape the product handles, in every way a log record carries it
(a %-formatted message, a dict message, `extra`, an exception, botocore's request and response
dumps, url-encoded bodies), is replaced by `***`; ordinary text is left exactly as it was."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters

from mq_cutover import redaction
from mq_cutover.approval_key import approval_key
from mq_cutover.approval_links import sign

KEY = b"k" * 64
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAT1Xk6q2vZ8yLr3m0Ea+Zq9Xf1/tW0hXc2Vx9bN4m=="
LINK_ID = sign(KEY, "Q3v9pX2mL0aZ", "ana", 1764554400)
TAG = LINK_ID.rsplit(".", 1)[1]
OLD_LINK_ID = f"Q3v9pX2mL0aZ.1764554400.{TAG}"
LINK = f"https://abc.execute-api.us-east-1.amazonaws.com/dev/approvals/{LINK_ID}?decision=approve"
PASSWORD = "offline-broker-pw-9f3K2q"
ODD_PASSWORD = "Pa55 w\"rd,with:odd}'chars"  # quotes, comma, colon, brace, space
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDHqa0AP1/example+session/token=="
LINK_KEY = "pSwn2t9mI1sqDBVN9WDrzV57nD7oMGRO0OdLuCt2vRH5wp24uAUvsxsvMiifb_Q4"
BINARY = bytes(range(7, 40))


def forms(secret: str) -> list[str]:
    """A secret as a log could show it: raw, JSON-escaped, repr'd, url-encoded."""
    found = {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
    }
    return [f for f in found if len(f) >= 8]


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{form!r} in {text!r}"


@dataclass
class Capture:
    logger: logging.Logger
    stream: io.StringIO
    records: list[logging.LogRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.kept = records

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(record)


@pytest.fixture(autouse=True)
def _redaction_on() -> Iterator[None]:
    redaction.install()
    yield
    redaction.forget_registered_secrets()


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A logger of its own at DEBUG, formatted as a person would configure it (message,
    extras through the format string, tracebacks), and the raw records."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    result = Capture(logger, stream)
    keep = _Keep(result.records)
    logger.addHandler(handler)
    logger.addHandler(keep)
    yield result
    logger.removeHandler(handler)
    logger.removeHandler(keep)


# --- every secret shape, as a %-formatted message ---------------------------------------------
SHAPES = {
    "task token (JSON)": ('{"taskToken": "%s", "gate": "cutover"}', TOKEN),
    "task token (DynamoDB item)": ('{"Item": {"taskToken": {"S": "%s"}}}', TOKEN),
    "task token (SendTaskSuccess body)": ('b\'{"taskToken": "%s", "output": "{}"}\'', TOKEN),
    "task token (repr)": ("{'taskToken': '%s', 'gate': 'cutover'}", TOKEN),
    "task token (context object)": ('{"Task": {"Token": "%s"}}', TOKEN),
    "link": ("Approve: %s", LINK),
    "link id": ("verifying %s", LINK_ID),
    "older link id": ("verifying %s", OLD_LINK_ID),
    "broker password (CreateBroker params)": (
        "{'Users': [{'Username': 'orders-app', 'Password': '%s', 'ConsoleAccess': False}]}",
        PASSWORD,
    ),
    "broker password (request body)": ('{"users": [{"password": "%s"}]}', PASSWORD),
    "password in a URL": ("connecting to amqp+ssl://orders-app:%s@b-1.mq:5671", PASSWORD),
    "password kwarg": ("MetricsSource(url='http://h:8161', password='%s')", PASSWORD),
    "Jolokia basic auth": ("Authorization: Basic %s", base64.b64encode(b"admin:pw").decode()),
    "Authorization header (repr)": (
        "headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/us-east-1/"
        "sns/aws4_request, SignedHeaders=host, Signature=%s'}",
        "5f3e8a" * 10,
    ),
    "SecretString": ('{"ARN": "arn:x", "SecretString": "%s"}', LINK_KEY),
    "SecretBinary": ('{"SecretBinary": "%s"}', base64.b64encode(BINARY).decode()),
    "SigV4 secret key (config)": ("aws_secret_access_key=%s", SECRET_KEY),
    "SigV4 secret key (STS XML)": ("<SecretAccessKey>%s</SecretAccessKey>", SECRET_KEY),
    "session token (header)": ("{'X-Amz-Security-Token': b'%s'}", SESSION_TOKEN),
    "session token (canonical request)": (
        "POST\n/\n\nhost:sns.us-east-1.amazonaws.com\nx-amz-security-token:%s\n",
        SESSION_TOKEN,
    ),
    "session token (STS JSON)": ('{"Credentials": {"SessionToken": "%s"}}', SESSION_TOKEN),
    "presigned URL": ("GET https://b.s3/k?X-Amz-Signature=%s&X-Amz-Expires=60", "ab12" * 16),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_secret_shape_in_a_formatted_message_is_redacted(capture: Capture, shape: str) -> None:
    template, secret = SHAPES[shape]
    capture.logger.debug("value: " + template, secret)
    assert_hidden(capture.text, secret)
    assert "***" in capture.text
    assert capture.text.startswith("DEBUG test.redaction.")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_secret_shape_in_extra_and_in_a_dict_message_is_redacted(
    capture: Capture, shape: str
) -> None:
    template, secret = SHAPES[shape]
    text = template % secret
    capture.logger.info({"detail": text, "gate": "cutover"}, extra={"carried": [text]})
    (record,) = capture.records
    assert isinstance(record.msg, dict) and record.msg["gate"] == "cutover"
    assert_hidden(json.dumps(record.msg) + repr(record.msg) + capture.text, secret)
    assert_hidden(repr(record.__dict__["carried"]), secret)


def test_sensitive_keys_in_dicts_and_extra_are_masked_keeping_the_shape(
    capture: Capture,
) -> None:
    capture.logger.info(
        {"taskToken": TOKEN, "Item": {"taskToken": {"S": TOKEN}, "gate": {"S": "cutover"}}},
        extra={"password": ODD_PASSWORD, "approval": {"approvalId": "Q3v9pX2mL0aZ", "to": LINK}},
    )
    (record,) = capture.records
    assert record.msg == {
        "taskToken": "***",
        "Item": {"taskToken": {"S": "***"}, "gate": {"S": "cutover"}},
    }
    assert record.__dict__["password"] == "***"
    assert record.__dict__["approval"] == {
        "approvalId": "Q3v9pX2mL0aZ",  # the gate's id alone opens nothing: it stays
        "to": LINK.replace(TAG, "***"),
    }


BODY = {"password": ODD_PASSWORD, "user": "orders-app"}
ODD_CARRIERS = {
    "JSON": json.dumps(BODY),
    "repr": repr(BODY),
    "JSON in a bytes repr": repr(json.dumps(BODY).encode()),
    "JSON inside a JSON string": json.dumps({"output": json.dumps(BODY)}),
}


@pytest.mark.parametrize("carrier", list(ODD_CARRIERS))
def test_a_password_with_quotes_and_commas_is_redacted_whole(
    capture: Capture, carrier: str
) -> None:
    capture.logger.info("body: %s", ODD_CARRIERS[carrier])
    assert_hidden(capture.text, ODD_PASSWORD)
    for piece in ("Pa55", "rd,with", "odd}", "chars"):
        assert piece not in capture.text
    assert "orders-app" in capture.text  # the next field is still there


def test_url_encoded_bodies_are_redacted(capture: Capture) -> None:
    body = urllib.parse.urlencode(
        {
            "Action": "Publish",
            "Message": f"Approve: {LINK}\n",
            "Password": ODD_PASSWORD,
            "Note": json.dumps({"taskToken": TOKEN}),
        }
    )
    capture.logger.debug("Making request with params: %r", {"body": body})
    assert_hidden(capture.text, ODD_PASSWORD, TOKEN, TAG)
    assert "Action=Publish" in capture.text


def test_exception_text_is_redacted_and_the_raised_exception_is_untouched(
    capture: Capture,
) -> None:
    class ApprovalServiceError(Exception):
        pass

    try:
        try:
            raise KeyError(f"no record for {LINK_ID}")
        except KeyError as inner:
            raise ApprovalServiceError(f"SendTaskSuccess failed for taskToken={TOKEN}") from inner
    except ApprovalServiceError as exc:
        capture.logger.exception("approval failed for %s", "Q3v9pX2mL0aZ")
        raised = exc
    assert_hidden(capture.text, TOKEN, TAG)
    assert "ApprovalServiceError: SendTaskSuccess failed for taskToken=***" in capture.text
    assert "KeyError" in capture.text and "Traceback (most recent call last)" in capture.text
    assert "raise ApprovalServiceError" in capture.text  # the traceback's frames are kept
    assert TOKEN in str(raised) and LINK_ID in str(raised.__cause__)  # the program's own


def test_an_exception_with_nothing_secret_is_logged_as_is(capture: Capture) -> None:
    error = ValueError("queue orders.in is not drained")
    try:
        raise error
    except ValueError:
        capture.logger.exception("drain")
    (record,) = capture.records
    assert record.exc_info is not None and record.exc_info[1] is error


def test_botocore_debug_dumps_hold_no_secret(aws: Any, capture: Capture) -> None:
    """Real botocore at DEBUG: the request params, the signed request and the response body."""
    names = ["botocore.endpoint", "botocore.parsers", "botocore.auth", "botocore.hooks"]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    handler = logging.StreamHandler(capture.stream)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    try:
        secrets = aws("secretsmanager")
        arn = secrets.create_secret(Name="mq-cutover/orders-app", SecretString=PASSWORD)["ARN"]
        secrets.get_secret_value(SecretId=arn)
        secrets.create_secret(Name="binary", SecretBinary=BINARY)
        secrets.get_secret_value(SecretId="binary")
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
    text = capture.text
    assert "Response body" in text and "GetSecretValue" in text  # botocore did log
    assert "x-amz-security-token" in text.lower()  # and its signed headers
    assert_hidden(text, PASSWORD, base64.b64encode(BINARY).decode())


def test_powertools_keeps_dict_messages_and_redacts_events_and_appended_keys() -> None:
    stream = io.StringIO()
    logger = Logger(
        service=f"redaction-test-{uuid.uuid4().hex[:6]}",
        logger_handler=logging.StreamHandler(stream),
        json_serializer=redaction.json_serializer,
        level="DEBUG",
    )
    logger.append_keys(session_token=SESSION_TOKEN)

    @logger.inject_lambda_context(log_event=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info({"gate": event["gate"], "taskToken": event["taskToken"]})
        logger.info("approval requested", extra={"approval": {"links": [LINK]}})

    @dataclass
    class Context:
        function_name: str = "RequestApprovalFunction"
        memory_limit_in_mb: int = 256
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:x"
        aws_request_id: str = "req-1"

    handler({"gate": "cutover", "taskToken": TOKEN, "migrationId": "orders"}, Context())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    event, message, requested = lines
    assert event["message"] == {"gate": "cutover", "taskToken": "***", "migrationId": "orders"}
    assert message["message"] == {"gate": "cutover", "taskToken": "***"}
    assert requested["approval"] == {"links": [LINK.replace(TAG, "***")]}
    assert all(line["session_token"] == "***" for line in lines)
    assert_hidden(stream.getvalue(), TOKEN, TAG, SESSION_TOKEN)


# --- values registered at runtime ---------------------------------------------------------------
def test_a_registered_secret_is_redacted_in_any_form(capture: Capture) -> None:
    redaction.register_secret(ODD_PASSWORD)
    redaction.register_secret(BINARY)
    capture.logger.info("raw %s", ODD_PASSWORD)
    capture.logger.info("json %s", json.dumps({"pw": ODD_PASSWORD}))
    capture.logger.info("url %s", urllib.parse.quote(ODD_PASSWORD, safe=""))
    capture.logger.info("binary %s", base64.b64encode(BINARY).decode())
    assert_hidden(capture.text, ODD_PASSWORD, base64.b64encode(BINARY).decode())
    assert capture.text.count("***") == 4


def test_short_values_are_not_registered(capture: Capture) -> None:
    redaction.register_secret("dev")
    capture.logger.info("stack dev, stage dev")
    assert capture.text.endswith("stack dev, stage dev\n")


def test_the_approval_link_key_is_registered_when_loaded(aws: Any, capture: Capture) -> None:
    arn = aws("secretsmanager").create_secret(Name="offline/key", SecretString=LINK_KEY)["ARN"]
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    try:
        key = approval_key(arn)
    finally:
        parameters.clear_caches()  # type: ignore[no-untyped-call]
    assert key == LINK_KEY.encode()
    capture.logger.warning("signing with %s (%r)", key.decode(), key)
    assert_hidden(capture.text, LINK_KEY)


def test_whatever_secrets_manager_returns_is_registered(aws: Any, capture: Capture) -> None:
    """Any client (a fresh session, as Powertools' parameters utility makes one): the value,
    a JSON secret's password (not its username), a binary secret."""
    secrets = aws("secretsmanager")
    secrets.create_secret(Name="a", SecretString=LINK_KEY)
    document = json.dumps({"username": "orders-app", "password": ODD_PASSWORD})
    secrets.create_secret(Name="b", SecretString=document)
    secrets.create_secret(Name="c", SecretBinary=BINARY)
    client = boto3.session.Session().client("secretsmanager", region_name="us-east-1")
    for name in ("a", "b", "c"):
        client.get_secret_value(SecretId=name)
    capture.logger.info("key %s; user orders-app, password %s", LINK_KEY, ODD_PASSWORD)
    capture.logger.info("binary %s", base64.b64encode(BINARY).decode())
    assert_hidden(capture.text, LINK_KEY, ODD_PASSWORD, base64.b64encode(BINARY).decode())
    assert "user orders-app" in capture.text


def test_the_functions_own_credentials_are_registered(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    redaction.install()
    capture.logger.info("credentials %s %s", SECRET_KEY, SESSION_TOKEN)
    assert_hidden(capture.text, SECRET_KEY, SESSION_TOKEN)


# --- what must not change ------------------------------------------------------------------------
ORDINARY = [
    "approval requested for gate cutover (quorum 2, 3 approvers: ana, bea, cy)",
    '{"approvalId": "Q3v9pX2mL0aZ", "gate": "stopOnPrem", "status": "PENDING"}',
    "passwordSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:mq-cutover/orders-a",
    '{"passwordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"}',
    "the password comes from Secrets Manager; the task token is never logged",
    '{"NextToken": "eyJ2IjoxfQ==", "nextToken": null}',
    "failover:(ssl://b-1.mq.us-east-1.amazonaws.com:61617,ssl://b-2:61617)?randomize=false",
    "https://abc.execute-api.us-east-1.amazonaws.com/dev/decisions/orders-2026-12-01",
    "drain reading at 1764554400.25: 0 messages on orders.in",
    "arn:aws:states:us-east-1:123456789012:execution:MigrationStateMachine:orders-2026-12-01",
    "Event before-call.sqs.ReceiveMessage: calling handler <function inject_api_version>",
    "OperationModel(name=GetSecretValue) with params: {'SecretId': 'arn:aws:sm:secret:x'}",
    "Boto3/1.44.5 md/Botocore#1.44.5 ua/2.1 os/linux#6.1 lang/python#3.11.7",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_text_is_untouched(capture: Capture, line: str) -> None:
    capture.logger.info("%s", line)
    capture.logger.info(line.replace("%", "%%"))
    capture.logger.info({"line": line})
    assert capture.text.splitlines()[:2] == [f"INFO {capture.logger.name} {line}"] * 2
    assert capture.records[2].msg == {"line": line}


# --- the mechanism ------------------------------------------------------------------------------
def test_records_below_the_level_are_never_built_or_redacted(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[logging.LogRecord] = []
    real = redaction.redact_record

    def counting(record: logging.LogRecord) -> None:
        calls.append(record)
        real(record)

    monkeypatch.setattr(redaction, "redact_record", counting)
    capture.logger.setLevel(logging.INFO)
    for _ in range(100):
        capture.logger.debug("taskToken=%s", TOKEN)
    assert calls == [] and capture.text == ""
    capture.logger.info("taskToken=%s", TOKEN)
    assert len(calls) == 1 and capture.text.endswith("taskToken=***\n")


def test_a_record_that_cannot_be_redacted_is_withheld(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(record: logging.LogRecord) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(redaction, "redact_record", broken)
    capture.logger.info("taskToken=%s", TOKEN, extra={"token": TOKEN})
    assert_hidden(capture.text, TOKEN)
    assert "withheld" in capture.text
    assert "token" not in capture.records[0].__dict__


def test_installing_twice_wraps_once_and_every_logger_is_covered() -> None:
    redaction.install()
    redaction.install()
    assert logging.Logger.makeRecord is redaction._make_record
    stream = io.StringIO()
    third_party = logging.getLogger("urllib3.connectionpool")
    handler = logging.StreamHandler(stream)
    third_party.addHandler(handler)
    level = third_party.level
    third_party.setLevel(logging.DEBUG)
    try:
        third_party.debug('"POST /dev/approvals/%s HTTP/1.1" 200 512', LINK_ID)
    finally:
        third_party.removeHandler(handler)
        third_party.setLevel(level)
    assert (
        stream.getvalue()
        == f'"POST /dev/approvals/{LINK_ID.replace(TAG, "***")} HTTP/1.1" 200 512\n'
    )

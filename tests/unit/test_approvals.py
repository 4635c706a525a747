"""Approval records: the email shows the facts and a link (never the token); GET decides
nothing; a decision is recorded once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.approvals import confirmation_page, decide, load, request_approval

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TOKEN = "AAAAKgAAAAIAAAAAAAAAA+token/with=chars"


class RecordingStepFunctions:
    """Records SendTaskSuccess/Failure (a real token would need a running execution; the
    workflow tests cover that path end to end)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.calls.append(("success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.calls.append(("failure", kwargs))


@pytest.fixture
def table(aws: Any) -> Any:
    import boto3

    aws("dynamodb").create_table(
        TableName="approvals",
        KeySchema=[{"AttributeName": "approvalId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "approvalId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return boto3.resource("dynamodb", region_name="us-east-1").Table("approvals")


@pytest.fixture
def inbox(aws: Any) -> tuple[Any, str, str]:
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return sns, topic, url


def _request(table: Any, inbox: tuple[Any, str, str]) -> str:
    sns, topic, _ = inbox
    result = request_approval(
        table,
        sns,
        topic_arn=topic,
        api_url="https://api.example/dev/approvals",
        task_token=TOKEN,
        migration_id="orders-1",
        gate="cutover",
        details={"next": "Repoint producers", "producers": ["/mq-cutover/a"]},
        timeout_seconds=3600,
        now=NOW,
    )
    return str(result["approvalId"])


def test_email_has_facts_and_link_but_no_token(
    aws: Any, table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox)
    _, _, url = inbox
    (message,) = aws("sqs").receive_message(QueueUrl=url)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "[mq-cutover] orders-1: approve cutover?"
    text = body["Message"]
    assert f"https://api.example/dev/approvals/{approval_id}" in text
    assert "next: Repoint producers" in text and "- /mq-cutover/a" in text
    assert "2026-12-01T03:00:00+00:00" in text
    assert TOKEN not in text and "token" not in text.lower()
    assert len(approval_id) >= 32  # 192 random bits


def test_get_page_shows_facts_and_decides_nothing(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    page = confirmation_page(load(table, approval_id), NOW)
    assert "Repoint producers" in page and "<form method='post'>" in page
    assert TOKEN not in page
    assert load(table, approval_id)["status"] == "PENDING"  # type: ignore[index]


def test_decision_is_recorded_once(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    first = decide(
        table,
        sfn,
        approval_id=approval_id,
        decision="approve",
        decided_by="ana",
        comment="go",
        source="email-link",
        now=NOW + timedelta(minutes=5),
    )
    assert first["outcome"] == "approved"
    assert sfn.calls == [
        (
            "success",
            {
                "taskToken": TOKEN,
                "output": json.dumps(
                    {"approved": True, "gate": "cutover", "by": "ana", "comment": "go"}
                ),
            },
        )
    ]
    second = decide(
        table,
        sfn,
        approval_id=approval_id,
        decision="reject",
        decided_by="bob",
        comment="",
        source="email-link",
        now=NOW + timedelta(minutes=6),
    )
    assert second == {
        "outcome": "already-decided",
        "status": "APPROVED",
        "decidedBy": "ana",
        "decidedAt": "2026-12-01T02:05:00+00:00",
    }
    assert len(sfn.calls) == 1
    page = confirmation_page(load(table, approval_id), NOW)
    assert "Already approved by <b>ana</b>" in page


def test_reject_is_a_task_failure(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    decide(
        table,
        sfn,
        approval_id=approval_id,
        decision="reject",
        decided_by="bob",
        comment="not tonight",
        source="email-link",
        now=NOW,
    )
    assert sfn.calls == [
        (
            "failure",
            {
                "taskToken": TOKEN,
                "error": "Rejected",
                "cause": "cutover rejected by bob: not tonight",
            },
        )
    ]


def test_expired_and_unknown_links_change_nothing(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    late = decide(
        table,
        sfn,
        approval_id=approval_id,
        decision="approve",
        decided_by="ana",
        comment="",
        source="email-link",
        now=NOW + timedelta(hours=2),
    )
    assert late["outcome"] == "expired" and sfn.calls == []
    assert load(table, approval_id)["status"] == "PENDING"  # type: ignore[index]
    unknown = decide(
        table,
        sfn,
        approval_id="forged",
        decision="approve",
        decided_by="x",
        comment="",
        source="email-link",
        now=NOW,
    )
    assert unknown == {"outcome": "not-found"} and sfn.calls == []

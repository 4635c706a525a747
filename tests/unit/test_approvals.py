"""Approval records: each registered approver gets their own signed link (never the token); GET
decides nothing; each approver decides once; a quorum of N distinct approvers opens the gate
exactly once; nothing is stored or sent when the topic could deliver a link to someone else."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.approval_links import LinkExpired, LinkInvalid, sign, verify
from mq_cutover.approval_pages import confirmation_page
from mq_cutover.approval_records import load, pending_for
from mq_cutover.approval_requests import request_approval
from mq_cutover.approval_votes import decide
from mq_cutover.approvers import Approver, add_approver, load_registry
from mq_cutover.errors import ApproversInvalid
from tests.conftest import approvals_table

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
KEY = b"k" * 64
TOKEN = "AAAAKgAAAAIAAAAAAAAAA+token/with=chars"
FACTS = {
    "mode": "ordered",
    "next": ["Approve: producers move now."],
    "broker": {"id": "b-1", "state": "RUNNING", "clientUrl": "ssl://amq:61617"},
    "onPremUrl": "ssl://onprem:61617",
    "changes": [
        {
            "parameter": "/mq-cutover/a",
            "from": "ssl://onprem:61617",
            "to": "ssl://amq:61617",
            "when": "now",
        }
    ],
}


class RecordingStepFunctions:
    """Records SendTaskSuccess/Failure calls (the workflow tests send them to a real execution)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.calls.append(("success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.calls.append(("failure", kwargs))


@pytest.fixture
def table(aws: Any) -> Any:
    return approvals_table()


APPROVERS = ("ana", "bob", "cy")
REGISTRY: dict[str, Approver] = {}


@pytest.fixture
def inbox(aws: Any) -> tuple[Any, str, str]:
    """The approval topic with three registered approvers, each with an SQS inbox standing in
    for their email (the same filtered subscription). Returns (sns, topic, ana's inbox)."""
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    REGISTRY.clear()
    urls = {}
    for who in APPROVERS:
        urls[who] = sqs.create_queue(QueueName=f"inbox-{who}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=urls[who], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        add_approver(
            aws("ssm"),
            sns,
            path="/approvers",
            topic_arn=topic,
            approver=Approver(who, who, "sqs", arn),
        )
    REGISTRY.update(load_registry("/approvers", aws("ssm")))  # with their enrolments
    return sns, topic, urls["ana"]


def _request(
    table: Any,
    inbox: tuple[Any, str, str],
    quorum: int = 1,
    gate: str = "cutover",
    extend_minutes: int | None = None,
) -> str:
    sns, topic, _ = inbox
    result = request_approval(
        table,
        sns,
        key=KEY,
        topic_arn=topic,
        api_url="https://api.example/dev/approvals",
        task_token=TOKEN,
        migration_id="orders-1",
        gate=gate,
        facts=FACTS,
        quorum=quorum,
        timeout_seconds=3600,
        now=NOW,
        approvers=REGISTRY,
        extend_minutes=extend_minutes,
    )
    return str(result["approvalId"])


def _decide(
    table: Any,
    sfn: Any,
    approval_id: str,
    decision: str,
    by: str,
    minutes: int = 5,
    comment: str = "",
    registry: dict[str, Approver] | None = None,
) -> dict[str, Any]:
    return decide(
        table,
        sfn,
        approval_id=approval_id,
        decision=decision,
        approver={"id": by, "name": by},
        comment=comment,
        source="email-link",
        now=NOW + timedelta(minutes=minutes),
        registry=registry if registry is not None else REGISTRY,
    )


def test_email_has_facts_and_signed_links_but_no_token(
    aws: Any, table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox)
    (message,) = aws("sqs").receive_message(QueueUrl=inbox[2], MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "[mq-cutover] orders-1: approve cutover?"
    text = body["Message"]
    links = re.findall(r"https://api\.example/dev/approvals/(\S+)\?decision=(approve|reject)", text)
    assert [d for _, d in links] == ["approve", "reject"]
    assert verify(KEY, links[0][0], NOW) == (approval_id, "ana")  # Ana's inbox: Ana's link
    assert 'from "ssl:\\/\\/onprem:61617"' in text and 'to "ssl:\\/\\/amq:61617"' in text
    assert "Decide before: 2026-12-01T03:00:00+00:00" in text
    assert TOKEN not in text and "token" not in text.lower()


def test_links_refuse_tampering_and_expire() -> None:
    link = sign(KEY, "abcdefgh1234", "ana", int((NOW + timedelta(hours=1)).timestamp()))
    assert verify(KEY, link, NOW) == ("abcdefgh1234", "ana")
    ident, who, expires, tag = link.split(".")
    forged = [
        f"zbcdefgh1234.{who}.{expires}.{tag}",  # another id
        f"{ident}.bob.{expires}.{tag}",  # another approver
        f"{ident}.{who}.{int(expires) + 3600}.{tag}",  # a later expiry
        f"{ident}.{who}.0{expires}.{tag}",  # the same expiry, zero-padded
        f"{ident}.{who}.{expires}.{'A' * 22}",  # a made-up tag
        f"{ident}.{expires}.{tag}",  # the old form, without an approver
        sign(b"another-key", ident, who, int(expires)),  # signed by someone else
        link + "\n",  # a trailing newline
        link + "=",  # padding
        " " + link,
        "not-a-link",
        "",
    ]
    for candidate in forged:
        with pytest.raises(LinkInvalid):
            verify(KEY, candidate, NOW)
    with pytest.raises(LinkExpired):
        verify(KEY, link, NOW + timedelta(hours=1))


def test_get_page_shows_facts_and_decides_nothing(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    page = confirmation_page(load(table, approval_id), NOW, preselect="approve")
    assert "<td class='k'>from</td><td><code>ssl://onprem:61617</code>" in page
    assert "<form method='post'>" in page
    assert "id='approve' name='decision' value='approve' class='chosen'" in page
    assert TOKEN not in page
    assert load(table, approval_id)["status"] == "PENDING"  # type: ignore[index]


def test_decision_is_recorded_once(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    first = _decide(table, sfn, approval_id, "approve", "ana", comment="go")
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
    second = _decide(table, sfn, approval_id, "reject", "bob", minutes=6)
    assert second == {
        "outcome": "already-decided",
        "status": "APPROVED",
        "decidedBy": "ana",
        "decidedAt": "2026-12-01T02:05:00+00:00",
    }
    assert len(sfn.calls) == 1
    assert "Already approved by <b>ana</b>" in confirmation_page(load(table, approval_id), NOW)


def test_reject_is_a_task_failure_naming_who_and_why(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    _decide(table, sfn, approval_id, "reject", "bob", comment="not tonight")
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
    record = load(table, approval_id)
    assert (
        record is not None and record["status"] == "REJECTED" and record["source"] == "email-link"
    )


def test_expired_and_unknown_gates_change_nothing(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    sfn = RecordingStepFunctions()
    assert _decide(table, sfn, approval_id, "approve", "ana", minutes=61)["outcome"] == "expired"
    assert load(table, approval_id)["status"] == "PENDING"  # type: ignore[index]
    assert _decide(table, sfn, "forged", "approve", "x")["outcome"] == "not-found"
    assert sfn.calls == []


def test_quorum_needs_distinct_approvers_and_opens_once(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox, quorum=2)
    sfn = RecordingStepFunctions()
    first = _decide(table, sfn, approval_id, "approve", "ana")
    assert first["outcome"] == "vote-recorded" and first["votes"] == 1 and first["quorum"] == 2
    assert _decide(table, sfn, approval_id, "approve", "ana")["outcome"] == "already-voted"
    assert sfn.calls == []
    shown = confirmation_page(load(table, approval_id), NOW)
    assert "<td id='votes'>1 of 2 (1 more needed)</td>" in shown
    assert "<tr><td>ana</td><td>approved at" in shown
    second = _decide(table, sfn, approval_id, "approve", "bob")
    assert second["outcome"] == "approved" and second["decidedBy"] == "ana, bob"
    assert [c[0] for c in sfn.calls] == ["success"]
    assert _decide(table, sfn, approval_id, "approve", "cy")["outcome"] == "already-decided"
    assert len(sfn.calls) == 1


def test_any_one_rejection_closes_a_quorum_gate(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox, quorum=3)
    sfn = RecordingStepFunctions()
    _decide(table, sfn, approval_id, "approve", "ana")
    assert _decide(table, sfn, approval_id, "reject", "bob")["outcome"] == "rejected"
    assert [c[0] for c in sfn.calls] == ["failure"]


def test_pending_for_finds_a_migrations_open_gates(table: Any, inbox: tuple[Any, str, str]) -> None:
    approval_id = _request(table, inbox)
    assert [r["approvalId"] for r in pending_for(table, "orders-1")] == [approval_id]
    assert pending_for(table, "orders-1", gate="stopOnPrem") == []
    assert pending_for(table, "other") == []
    _decide(table, RecordingStepFunctions(), approval_id, "approve", "ana")
    assert pending_for(table, "orders-1") == []


class FailingStepFunctions(RecordingStepFunctions):
    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def send_task_success(self, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": "x"}}, "SendTaskSuccess")


def test_undelivered_decision_reopens_the_gate(table: Any, inbox: tuple[Any, str, str]) -> None:
    from mq_cutover.approval_resume import ResumeFailed

    approval_id = _request(table, inbox)
    with pytest.raises(ResumeFailed):
        _decide(table, FailingStepFunctions("ThrottlingException"), approval_id, "approve", "ana")
    record = load(table, approval_id)
    assert record is not None and record["status"] == "PENDING" and "decidedBy" not in record
    # The same person can try again, and this time it is delivered.
    sfn = RecordingStepFunctions()
    assert _decide(table, sfn, approval_id, "approve", "ana")["outcome"] == "approved"
    assert [c[0] for c in sfn.calls] == ["success"]


def test_decision_for_a_run_no_longer_waiting_is_expired(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox)
    result = _decide(table, FailingStepFunctions("TaskTimedOut"), approval_id, "approve", "ana")
    assert result["outcome"] == "expired"
    assert load(table, approval_id)["status"] == "EXPIRED"  # type: ignore[index]
    assert "closed at" in confirmation_page(load(table, approval_id), NOW)


def test_one_approver_is_one_vote_and_only_the_gates_approvers_vote(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    approval_id = _request(table, inbox, quorum=2)
    sfn = RecordingStepFunctions()
    assert _decide(table, sfn, approval_id, "approve", "ana")["outcome"] == "vote-recorded"
    assert _decide(table, sfn, approval_id, "approve", "ana")["outcome"] == "already-voted"
    # Someone the gate's links were not issued to (registered later, or never) has no vote.
    assert _decide(table, sfn, approval_id, "approve", "mallory")["outcome"] == "not-an-approver"
    assert sfn.calls == [] and len((load(table, approval_id) or {})["votes"]) == 1


def test_nothing_is_stored_or_sent_when_a_link_could_reach_someone_else(
    aws: Any, table: Any, inbox: tuple[Any, str, str]
) -> None:
    sns, topic, ana_inbox = inbox
    sqs = aws("sqs")
    stray = sqs.create_queue(QueueName="stray")["QueueUrl"]
    stray_arn = sqs.get_queue_attributes(QueueUrl=stray, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attempts = [
        {},  # no filter: every approver's link
        {"FilterPolicy": json.dumps({"approver": ["ana", "bob"]})},  # two approvers' links
        {"FilterPolicy": json.dumps({"approver": ["ana"]})},  # Ana's links, not Ana's inbox
    ]
    for attributes in attempts:
        arn = sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=stray_arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        with pytest.raises(ApproversInvalid, match="the approval topic is not safe"):
            _request(table, inbox)
        sns.unsubscribe(SubscriptionArn=arn)
    with pytest.raises(ApproversInvalid, match="needs 4 different approvers"):
        _request(table, inbox, quorum=4)
    assert table.scan()["Items"] == []
    for queue in (stray, ana_inbox):
        assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_the_migration_index_holds_no_token(table: Any, inbox: tuple[Any, str, str]) -> None:
    _request(table, inbox)
    (item,) = table.query(
        IndexName="ByMigration",
        KeyConditionExpression="migrationId = :m",
        ExpressionAttributeValues={":m": "orders-1"},
    )["Items"]
    assert "taskToken" not in item and item["status"] == "PENDING"


def test_an_undelivered_rejection_never_counts_as_an_approval(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    from mq_cutover.approval_resume import ResumeFailed

    class FailingReject(RecordingStepFunctions):
        def send_task_failure(self, **kwargs: Any) -> None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "SendTaskFailure")

    approval_id = _request(table, inbox, quorum=2)
    with pytest.raises(ResumeFailed):
        _decide(table, FailingReject(), approval_id, "reject", "bob")
    sfn = RecordingStepFunctions()
    first = _decide(table, sfn, approval_id, "approve", "ana")
    assert first["outcome"] == "vote-recorded" and first["votes"] == 1  # bob's reject: not a vote
    assert sfn.calls == []


def test_waiting_longer_is_one_persons_choice_and_only_where_offered(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    sfn = RecordingStepFunctions()
    # A cutover gate offers no extension: the choice is refused and the gate stays open.
    cutover = _request(table, inbox)
    assert _decide(table, sfn, cutover, "extend", "ana")["outcome"] == "cannot-extend"
    assert sfn.calls == [] and (load(table, cutover) or {})["status"] == "PENDING"
    # A drain timeout gate with a quorum of 2: one person may still choose to wait longer.
    timeout = _request(table, inbox, quorum=2, gate="drainTimeout", extend_minutes=30)
    page = confirmation_page(load(table, timeout), NOW)
    assert "id='extend'" in page and "Wait 30 more minutes" in page
    assert "id='extend'" not in confirmation_page(load(table, cutover), NOW)
    result = _decide(table, sfn, timeout, "extend", "ana", comment="consumers restarting")
    assert result["outcome"] == "extended"
    ((kind, call),) = sfn.calls
    assert kind == "success"
    assert json.loads(call["output"]) == {
        "approved": False,
        "extend": True,
        "extendMinutes": 30,
        "gate": "drainTimeout",
        "by": "ana",
        "comment": "consumers restarting",
    }
    assert (load(table, timeout) or {})["status"] == "EXTENDED"
    # Decided once: a second click changes nothing.
    assert _decide(table, sfn, timeout, "approve", "bob")["outcome"] == "already-decided"
    assert len(sfn.calls) == 1


def test_a_removed_or_re_enrolled_approver_no_longer_counts(
    table: Any, inbox: tuple[Any, str, str]
) -> None:
    """Ana votes, then leaves (removed from the registry): her vote no longer counts towards
    the quorum. Someone re-added under her id later is a new enrolment, not her."""
    from dataclasses import replace

    approval_id = _request(table, inbox, quorum=2)
    sfn = RecordingStepFunctions()
    assert _decide(table, sfn, approval_id, "approve", "ana")["outcome"] == "vote-recorded"
    without_ana = {k: v for k, v in REGISTRY.items() if k != "ana"}
    second = _decide(table, sfn, approval_id, "approve", "bob", registry=without_ana)
    assert second["outcome"] == "vote-recorded" and second["votes"] == 1 and sfn.calls == []
    new_ana = {**without_ana, "ana": replace(REGISTRY["ana"], enrolment="0" * 16)}
    third = _decide(table, sfn, approval_id, "approve", "ana", registry=new_ana)
    assert third["outcome"] == "not-an-approver" and sfn.calls == []
    fourth = _decide(table, sfn, approval_id, "approve", "cy", registry=without_ana)
    assert fourth["outcome"] == "approved" and fourth["decidedBy"] == "bob, cy"

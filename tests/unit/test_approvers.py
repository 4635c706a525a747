"""The approver registry: entries checked field by field, one filtered subscription per approver,
the topic checked for anything that could deliver one approver's link to someone else, and IAM
callers mapped to a person (a role, not a session name)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mq_cutover.approvers import (
    Approver,
    add_approver,
    approver_for_principal,
    check_subscriptions,
    load_registry,
    parse_approver,
    principal_of,
    remove_approver,
    subscription_report,
)
from mq_cutover.errors import ApproversInvalid

PATH = "/mq-cutover-approvers/stack"
ROLE = "arn:aws:iam::123456789012:role/ops/ana-approver"
USER = "arn:aws:iam::123456789012:user/bea"


@pytest.mark.parametrize(
    ("approver_id", "entry", "why"),
    [
        ("Ana", {"name": "Ana", "endpoint": "a@example.com"}, "lower-case"),
        ("ana", "not json", "not JSON"),
        ("ana", {"endpoint": "a@example.com"}, "name must be"),
        ("ana", {"name": "x" * 81, "endpoint": "a@example.com"}, "name must be"),
        ("ana", {"name": "Ana\nApprove: https://x", "endpoint": "a@x.io"}, "control characters"),
        ("ana", {"name": "Ana", "endpoint": "not-an-email"}, "is not an email"),
        ("ana", {"name": "Ana", "protocol": "sms", "endpoint": "+100"}, "protocol must be"),
        ("ana", {"name": "Ana", "endpoint": "a@x.io", "iamPrincipal": "ana"}, "iamPrincipal"),
    ],
)
def test_a_bad_registry_entry_is_refused_naming_the_field(
    approver_id: str, entry: Any, why: str
) -> None:
    value = entry if isinstance(entry, str) else json.dumps(entry)
    with pytest.raises(ApproversInvalid, match=why):
        parse_approver(approver_id, value)


def test_a_session_name_is_not_a_person() -> None:
    ana = Approver("ana", "Ana Ops", "email", "ana@example.com", ROLE)
    bea = Approver("bea", "Bea Lead", "email", "bea@example.com", USER)
    registry = {"ana": ana, "bea": bea}
    for session in ("ana", "totally-bea", "bea"):  # the caller chooses the session name
        caller = f"arn:aws:sts::123456789012:assumed-role/ana-approver/{session}"
        assert principal_of(caller) == "arn:aws:iam::123456789012:role/ana-approver"
        assert approver_for_principal(registry, caller) == ana
    assert approver_for_principal(registry, USER) == bea
    assert approver_for_principal(registry, "arn:aws:iam::123456789012:user/mallory") is None
    assert approver_for_principal(registry, "arn:aws:iam::999999999999:user/bea") is None
    # A role named like a user is another principal.
    assert approver_for_principal(registry, "arn:aws:sts::123456789012:assumed-role/bea/x") is None
    assert approver_for_principal(registry, "") is None


def _queue(aws: Any, name: str) -> str:
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


def test_add_list_check_and_remove(aws: Any) -> None:
    ssm, sns = aws("ssm"), aws("sns")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    ana = Approver("ana", "Ana Ops", "sqs", _queue(aws, "ana"), ROLE)
    bea = Approver("bea", "Bea Lead", "sqs", _queue(aws, "bea"))
    for approver in (ana, bea):
        add_approver(ssm, sns, path=PATH, topic_arn=topic, approver=approver)
    registry = load_registry(PATH, ssm)
    assert {i: replace(a, enrolment="") for i, a in registry.items()} == {"ana": ana, "bea": bea}
    assert len({a.enrolment for a in registry.values()}) == 2  # each registration its own
    assert subscription_report(sns, topic, registry) == ([], {"ana", "bea"})
    stray = sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=_queue(aws, "mallory"),
        Attributes={"FilterPolicy": json.dumps({"approver": ["ana"]})},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    (problem,) = check_subscriptions(sns, topic, registry)
    assert "receives ana's links but is not ana's registered sqs endpoint" in problem
    sns.unsubscribe(SubscriptionArn=stray)
    assert remove_approver(ssm, sns, path=PATH, topic_arn=topic, approver_id="ana") == 1
    assert load_registry(PATH, ssm) == {"bea": registry["bea"]}
    problems, reached = subscription_report(sns, topic, {"bea": bea})
    assert problems == [] and reached == {"bea"}


def test_one_person_cannot_be_two_approvers(aws: Any) -> None:
    ssm, sns = aws("ssm"), aws("sns")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    add_approver(
        ssm,
        sns,
        path=PATH,
        topic_arn=topic,
        approver=Approver("ana", "Ana", "email", "a@x.io", ROLE),
    )
    for twin in (
        Approver("ana2", "Ana again", "email", "other@x.io", ROLE.replace("/ops/", "/")),
        Approver("ana3", "Ana again", "email", "A@X.IO"),
    ):
        with pytest.raises(ApproversInvalid, match="share one"):
            add_approver(ssm, sns, path=PATH, topic_arn=topic, approver=twin)
    # Written around the CLI, the registry itself refuses to verify anyone.
    ssm.put_parameter(
        Name=f"{PATH}/ana4", Type="String", Value=json.dumps({"name": "x", "endpoint": "a@x.io"})
    )
    with pytest.raises(ApproversInvalid, match="approvers ana and ana4 share one endpoint"):
        load_registry(PATH, ssm)


def test_an_identity_center_user_is_their_session_not_the_shared_role() -> None:
    role = "AWSReservedSSO_CutoverApprover_0123456789abcdef"
    ana_session = f"arn:aws:sts::123456789012:assumed-role/{role}/ana@example.com"
    ana = parse_approver(
        "ana", json.dumps({"name": "Ana", "endpoint": "a@x.io", "iamPrincipal": ana_session})
    )
    registry = {"ana": ana}
    assert approver_for_principal(registry, ana_session) == ana
    assert approver_for_principal(registry, ana_session.replace("ana@", "bea@")) is None
    shared = f"arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/{role}"
    with pytest.raises(ApproversInvalid, match="shared by everyone given its permission set"):
        parse_approver(
            "bea", json.dumps({"name": "B", "endpoint": "b@x.io", "iamPrincipal": shared})
        )

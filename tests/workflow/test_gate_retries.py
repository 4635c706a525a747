"""A gate whose Lambda is throttled (or cannot reach an AWS endpoint) is retried, not rolled
back. The retry is a new task attempt with a new task token, so whatever the failed attempt
stored or emailed is closed and decides nothing: one live approval per gate.

Faults are simulated: a botocore `before-call` hook on the request_approval handler's own
client raises what botocore raises once its own retries are used up.

On AWS each attempt has its own task token, so a failed attempt's token resumes nothing. The
emulator (moto) keeps one token across a task's retries: there, an old link that still counted
would approve the retry. Either way it is the closed record that refuses the old link."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError, EndpointConnectionError

from mq_cutover.approval_records import WITHDRAWN_BY, pending_for
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.live import ApprovalEmail, LiveRun, live_run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "comment": "window confirmed"}
FUNCTION = "RequestApprovalFunction"


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate"}}, operation)


def fail_nth(client: Any, operation: str, nth: int, error: Exception) -> list[Exception]:
    """The nth call (from 1) of `operation` on `client` raises `error` instead of reaching the
    service. Returns the list of faults raised (one, once it fired)."""
    raised: list[Exception] = []
    calls = [0]

    def before_call(**_: Any) -> None:
        calls[0] += 1
        if calls[0] == nth:
            raised.append(error)
            raise error

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(
        f"before-call.{service}.{operation}", before_call, unique_id=f"gate-fault-{operation}"
    )
    return raised


def failed_attempts(run: LiveRun) -> list[str]:
    return [
        e["taskFailedEventDetails"]["error"]
        for e in run.emulator.history(run.arn)
        if e["type"] == "TaskFailed"
    ]


def gate_records(run: LiveRun, gate: str) -> dict[str, dict[str, Any]]:
    """Every record of this run's gate by id (found through the index, read by key)."""
    assert run.plan is not None
    table = run.emulator.handlers[FUNCTION].table
    keys = table.query(
        IndexName="ByMigration",
        KeyConditionExpression=Key("migrationId").eq(run.plan.migration_id),
    )["Items"]
    records = [table.get_item(Key={"approvalId": k["approvalId"]})["Item"] for k in keys]
    return {r["approvalId"]: r for r in records if r["gate"] == gate}


def live_approvals(run: LiveRun) -> list[str]:
    assert run.plan is not None
    table = run.emulator.handlers[FUNCTION].table
    return [r["approvalId"] for r in pending_for(table, run.plan.migration_id)]


def first_links_decide_nothing(run: LiveRun, link: str, status: str, by: str) -> None:
    page = run.api.get(link)
    assert page["statusCode"] == 200, page
    assert f"Already {status}" in page["body"] and by in page["body"]
    assert "Approve cutover?" not in page["body"]  # no form
    refused = run.api.post(link, APPROVE)
    assert refused["statusCode"] == 409 and "Nothing was changed" in refused["body"]
    assert f"Already {status}" in refused["body"]
    assert run.status()["status"] == "RUNNING" and run.entered()[-1] == "Approve Cutover"


def retried_cutover(run: LiveRun) -> tuple[ApprovalEmail, ApprovalEmail]:
    """Ana's email from the failed first attempt of the cutover gate and the retry's, once the
    retry has emailed everyone; the history shows one AwsThrottled attempt, and no rollback."""
    first = run.wait_for_gate("cutover", nth=1)
    second = run.wait_for_gate("cutover", nth=2)
    run.wait_for_gate("cutover", approver="cy")  # the retry has sent every email
    assert first.approval_id != second.approval_id
    assert failed_attempts(run) == ["AwsThrottled"]
    assert "Roll Back" not in run.entered()
    return first, second


def approve_and_move_on(run: LiveRun, email: ApprovalEmail) -> None:
    assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 200
    run.wait_until("producers moved", lambda: "Repoint Producers" in run.entered())


def test_a_throttled_email_is_retried_and_the_first_links_decide_nothing(
    ordered_plan: dict[str, Any],
) -> None:
    fired: list[list[Exception]] = []

    def arm(emulator: Emulator) -> None:
        # Bea's email of the first cutover attempt is throttled: Ana's is already sent, with a
        # link to the record of a task token that the retry replaces.
        sns = emulator.handlers[FUNCTION].sns
        fired.append(fail_nth(sns, "Publish", 2, throttled("Publish")))

    with live_run(ordered_plan, before_start=arm) as run:
        first, second = retried_cutover(run)
        assert len(fired[0]) == 1
        # Exactly one live approval: the failed attempt withdrew its own record.
        records = gate_records(run, "cutover")
        assert set(records) == {first.approval_id, second.approval_id}
        assert records[first.approval_id]["status"] == "WITHDRAWN"
        assert "taskToken" not in records[first.approval_id]
        assert live_approvals(run) == [second.approval_id]
        # Each approver has the retry's email; only Ana also has the first one.
        emails = run.approval_emails()
        assert sorted(e.to for e in emails if e.approval_id == second.approval_id) == [
            "ana",
            "bea",
            "cy",
        ]
        assert [e.to for e in emails if e.approval_id == first.approval_id] == ["ana"]
        first_links_decide_nothing(run, first.approve_link, "withdrawn", WITHDRAWN_BY)
        approve_and_move_on(run, second)  # the retry's link opens the gate


def test_an_unreachable_endpoint_before_anything_is_sent_is_retried(
    ordered_plan: dict[str, Any],
) -> None:
    fired: list[list[Exception]] = []
    unreachable = EndpointConnectionError(endpoint_url="https://sns.eu-west-1.amazonaws.com/")

    def arm(emulator: Emulator) -> None:
        # The approver check (ListSubscriptionsByTopic) cannot reach SNS: nothing is stored.
        sns = emulator.handlers[FUNCTION].sns
        fired.append(fail_nth(sns, "ListSubscriptionsByTopic", 1, unreachable))

    with live_run(ordered_plan, before_start=arm) as run:
        email = run.wait_for_gate("cutover")
        run.wait_for_gate("cutover", approver="cy")
        assert len(fired[0]) == 1
        assert failed_attempts(run) == ["AwsThrottled"]
        (failed,) = [
            e["taskFailedEventDetails"]
            for e in run.emulator.history(run.arn)
            if e["type"] == "TaskFailed"
        ]
        assert "EndpointConnectionError" in failed["cause"]
        assert list(gate_records(run, "cutover")) == [email.approval_id]
        assert sorted(e.to for e in run.approval_emails()) == ["ana", "bea", "cy"]
        approve_and_move_on(run, email)

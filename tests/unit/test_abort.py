"""`mq-cutover abort`: the abort, the point of no return and the rollback are conditional writes
on the migration's lease item, so whichever comes first wins and the other is refused with the
reason; the API takes a reason (required, at most 500 printable characters) and nothing else;
open gates are failed with AbortRequested, once, never a rollback's own gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mq_cutover.abort import close_open_gates, request_abort
from mq_cutover.approval_api import BadRequest, decision_request
from mq_cutover.approval_records import load
from mq_cutover.approval_resume import ResumeFailed
from mq_cutover.errors import AbortRequested, LeaseLost
from mq_cutover.lease import (
    check_abort,
    gate_may_open,
    mark_rolling_back,
    pass_point_of_no_return,
    record_abort,
    take_lease,
    verify_lease,
)
from mq_cutover_cli.api import Answer
from mq_cutover_cli.decide import abort_line
from tests.conftest import approvals_table

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
RUN = "arn:aws:states:us-east-1:123456789012:execution:Migration:m1"
LATER_RUN = "arn:aws:states:us-east-1:123456789012:execution:Migration:m1--2"
ANA = {"id": "ana", "name": "Ana Ops"}
ANA_ARN = "arn:aws:iam::123456789012:user/ana"
SAID = "aborted by Ana Ops (arn:aws:iam::123456789012:user/ana): consumers are failing"
JSON = {"content-type": "application/json"}


class Executions:
    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses

    def describe_execution(self, executionArn: str) -> dict[str, str]:
        return {"status": self.statuses[executionArn]}


class RecordingStepFunctions:
    """Records SendTaskFailure; `fail_with` makes it answer with that error code."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def send_task_failure(self, **kwargs: Any) -> None:
        if self.fail_with:
            raise ClientError({"Error": {"Code": self.fail_with}}, "SendTaskFailure")
        self.calls.append(kwargs)


@pytest.fixture
def leases(aws: Any) -> Any:
    aws("dynamodb").create_table(
        TableName="migrations",
        KeySchema=[{"AttributeName": "migrationId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "migrationId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("migrations")
    take_lease(table, Executions({}), migration_id="m1", execution_arn=RUN, now=NOW)
    return table


@pytest.fixture
def approvals(aws: Any) -> Any:
    return approvals_table()


def gate(approvals: Any, approval_id: str, name: str, status: str = "PENDING") -> None:
    approvals.put_item(
        Item={
            "approvalId": approval_id,
            "taskToken": f"token-of-{approval_id}",
            "migrationId": "m1",
            "gate": name,
            "status": status,
            "createdAt": (NOW - timedelta(minutes=len(approval_id))).isoformat(),
            "deadlineEpoch": int((NOW + timedelta(hours=1)).timestamp()),
            "votes": [],
        }
    )


def abort(leases: Any, reason: str = "consumers are failing") -> dict[str, Any]:
    return record_abort(
        leases, migration_id="m1", approver=ANA, principal=ANA_ARN, reason=reason, now=NOW
    )


def item(leases: Any) -> dict[str, Any]:
    return dict(leases.get_item(Key={"migrationId": "m1"}, ConsistentRead=True)["Item"])


# ------------------------------------------------------------- the lease item decides each race
def test_an_abort_before_the_point_of_no_return_is_recorded_and_stops_every_next_step(
    leases: Any,
) -> None:
    result = abort(leases)
    assert result["outcome"] == "abort-requested" and result["execution"] == "m1"
    assert item(leases)["abortRequested"] == {
        "by": "ana",
        "name": "Ana Ops",
        "principal": ANA_ARN,
        "reason": "consumers are failing",
        "at": "2026-12-01T02:00:00+00:00",
    }
    # A step that changes something, and a wait loop's check, both stop with who and why.
    with pytest.raises(AbortRequested) as stopped:
        verify_lease(leases, migration_id="m1", execution_arn=RUN)
    assert str(stopped.value) == SAID
    with pytest.raises(AbortRequested, match="consumers are failing"):
        check_abort(leases, migration_id="m1")
    with pytest.raises(AbortRequested):
        gate_may_open(leases, migration_id="m1", gate="drainTimeout", now=NOW)


def test_the_stop_after_an_abort_is_refused_and_stops_nothing(leases: Any) -> None:
    abort(leases)
    with pytest.raises(AbortRequested, match=r"^aborted by Ana Ops"):
        pass_point_of_no_return(
            leases, migration_id="m1", execution_arn=RUN, step="Stop On-Prem", now=NOW
        )
    assert "pointOfNoReturn" not in item(leases)
    # The manual stop's gate is the point of no return too: it does not open.
    with pytest.raises(AbortRequested):
        gate_may_open(leases, migration_id="m1", gate="confirmOnPremStopped", now=NOW)
    assert "pointOfNoReturn" not in item(leases)


def test_an_abort_after_the_point_of_no_return_is_refused_with_the_reason(leases: Any) -> None:
    pass_point_of_no_return(
        leases, migration_id="m1", execution_arn=RUN, step="Stop On-Prem", now=NOW
    )
    # A retried stop passes again (its own mark).
    pass_point_of_no_return(
        leases, migration_id="m1", execution_arn=RUN, step="Stop On-Prem", now=NOW
    )
    result = abort(leases)
    assert result == {
        "outcome": "past-point-of-no-return",
        "detail": "m1 passed the point of no return at 2026-12-01T02:00:00+00:00 (Stop On-Prem: "
        "on-prem is being stopped); it can no longer roll back",
    }
    assert "abortRequested" not in item(leases)
    verify_lease(leases, migration_id="m1", execution_arn=RUN)  # the run goes on


def test_the_manual_stop_gate_is_the_point_of_no_return(leases: Any) -> None:
    gate_may_open(leases, migration_id="m1", gate="confirmOnPremStopped", now=NOW)
    assert item(leases)["pointOfNoReturn"]["step"] == "gate confirmOnPremStopped"
    assert abort(leases)["outcome"] == "past-point-of-no-return"


def test_an_abort_while_rolling_back_is_refused_and_a_recorded_one_no_longer_stops_it(
    leases: Any,
) -> None:
    failure = {"state": "Check Drain", "error": "DrainCheckFailed", "cause": "no metrics"}
    mark_rolling_back(leases, migration_id="m1", execution_arn=RUN, failure=failure, now=NOW)
    result = abort(leases)
    assert result["outcome"] == "already-rolling-back"
    assert "after Check Drain failed (DrainCheckFailed)" in result["detail"]
    assert "abortRequested" not in item(leases)


def test_the_rollback_runs_past_an_abort_it_was_started_by(leases: Any) -> None:
    abort(leases)
    failure = {"state": "Check Drain", "error": "AbortRequested", "cause": SAID}
    mark_rolling_back(leases, migration_id="m1", execution_arn=RUN, failure=failure, now=NOW)
    # A later rollback step keeps the first mark.
    mark_rolling_back(leases, migration_id="m1", execution_arn=RUN, failure=None, now=NOW)
    assert item(leases)["rollingBack"]["error"] == "AbortRequested"
    check_abort(leases, migration_id="m1")  # the rollback's own drains and gates go on
    gate_may_open(leases, migration_id="m1", gate="rollbackDrainTimeout", now=NOW)
    assert abort(leases)["outcome"] == "already-aborted"


def test_a_second_abort_keeps_the_first(leases: Any) -> None:
    abort(leases)
    again = record_abort(
        leases,
        migration_id="m1",
        approver={"id": "bea", "name": "Bea Lead"},
        principal="arn:aws:iam::123456789012:role/bea",
        reason="me too",
        now=NOW,
    )
    assert again["outcome"] == "already-aborted"
    assert (
        again["detail"]
        == f"m1 was already {SAID} (at 2026-12-01T02:00:00+00:00); it rolls back next"
    )
    assert item(leases)["abortRequested"]["by"] == "ana"


def test_nothing_to_abort_without_a_run(leases: Any) -> None:
    result = record_abort(
        leases, migration_id="m2", approver=ANA, principal=ANA_ARN, reason="x", now=NOW
    )
    assert result["outcome"] == "not-running"
    assert "m2" not in {i["migrationId"] for i in leases.scan()["Items"]}


def test_a_retried_take_keeps_the_abort_and_a_new_run_starts_clean(leases: Any) -> None:
    abort(leases)
    take_lease(leases, Executions({RUN: "RUNNING"}), migration_id="m1", execution_arn=RUN, now=NOW)
    assert item(leases)["abortRequested"]["by"] == "ana"
    take_lease(
        leases, Executions({RUN: "FAILED"}), migration_id="m1", execution_arn=LATER_RUN, now=NOW
    )
    assert "abortRequested" not in item(leases)
    verify_lease(leases, migration_id="m1", execution_arn=LATER_RUN)


def test_only_the_holder_passes_the_point_of_no_return_or_rolls_back(leases: Any) -> None:
    with pytest.raises(LeaseLost, match="m1--2 no longer holds"):
        pass_point_of_no_return(
            leases, migration_id="m1", execution_arn=LATER_RUN, step="Stop On-Prem", now=NOW
        )
    with pytest.raises(LeaseLost, match="m1--2 no longer holds"):
        mark_rolling_back(leases, migration_id="m1", execution_arn=LATER_RUN, failure={}, now=NOW)
    assert set(item(leases)) == {"migrationId", "executionArn", "since"}


# ------------------------------------------------------------------------------ open gates
def test_the_open_gates_fail_with_abort_requested_once(leases: Any, approvals: Any) -> None:
    gate(approvals, "g1", "cutover")
    gate(approvals, "g22", "stopOnPrem", status="APPROVED")
    sfn = RecordingStepFunctions()
    result = request_abort(
        leases,
        approvals,
        sfn,
        migration_id="m1",
        approver=ANA,
        principal=ANA_ARN,
        reason="consumers are failing",
        now=NOW,
    )
    assert result["outcome"] == "abort-requested" and result["closedGates"] == ["cutover"]
    assert sfn.calls == [{"taskToken": "token-of-g1", "error": "AbortRequested", "cause": SAID}]
    closed = load(approvals, "g1")
    assert closed is not None
    assert (closed["status"], closed["decidedBy"], closed["comment"], closed["source"]) == (
        "ABORTED",
        "Ana Ops",
        "consumers are failing",
        "abort",
    )
    # A retried abort finds nothing left to close.
    again = request_abort(
        leases,
        approvals,
        sfn,
        migration_id="m1",
        approver=ANA,
        principal=ANA_ARN,
        reason="consumers are failing",
        now=NOW,
    )
    assert again["outcome"] == "already-aborted" and again["closedGates"] == []
    assert len(sfn.calls) == 1


def test_a_rollbacks_own_gate_is_never_closed(approvals: Any) -> None:
    gate(approvals, "g1", "rollbackDrainTimeout")
    sfn = RecordingStepFunctions()
    abort_record = {"name": "Ana Ops", "principal": ANA_ARN, "reason": "x"}
    closed = close_open_gates(approvals, sfn, migration_id="m1", abort=abort_record, now=NOW)
    assert closed == [] and sfn.calls == []
    assert (load(approvals, "g1") or {})["status"] == "PENDING"


def test_a_gate_the_run_no_longer_waits_at_is_passed_over(approvals: Any) -> None:
    gate(approvals, "g1", "cutover")
    sfn = RecordingStepFunctions(fail_with="TaskTimedOut")
    abort_record = {"name": "Ana Ops", "principal": ANA_ARN, "reason": "x"}
    assert close_open_gates(approvals, sfn, migration_id="m1", abort=abort_record, now=NOW) == []


def test_an_undelivered_abort_reopens_the_gate_for_a_retry(approvals: Any) -> None:
    gate(approvals, "g1", "cutover")
    sfn = RecordingStepFunctions(fail_with="ThrottlingException")
    abort_record = {"name": "Ana Ops", "principal": ANA_ARN, "reason": "x"}
    with pytest.raises(ResumeFailed):
        close_open_gates(approvals, sfn, migration_id="m1", abort=abort_record, now=NOW)
    record = load(approvals, "g1") or {}
    assert record["status"] == "PENDING" and "decidedBy" not in record


# --------------------------------------------------------------------------- the request
def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_an_abort_request_needs_a_reason_and_nothing_else() -> None:
    assert decision_request(body(decision="abort", reason="  consumers failing "), JSON) == {
        "decision": "abort",
        "reason": "consumers failing",
    }
    assert decision_request(body(decision="abort", reason="é" * 500), JSON)["reason"] == "é" * 500


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"decision": "abort"}, "reason is required"),
        ({"decision": "abort", "reason": "   "}, "reason is required"),
        ({"decision": "abort", "reason": 7}, "reason must be text"),
        ({"decision": "abort", "reason": "x" * 501}, "reason is longer than 500 characters"),
        ({"decision": "abort", "reason": "a\nb"}, "reason has control characters"),
        ({"decision": "abort", "reason": "a\x1b[2Jb"}, "reason has control characters"),
        ({"decision": "abort", "reason": "x", "gate": "cutover"}, "unknown field 'gate'"),
        ({"decision": "abort", "reason": "x", "comment": "y"}, "unknown field 'comment'"),
    ],
)
def test_a_malformed_abort_is_refused_naming_the_field(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(BadRequest, match=said):
        decision_request(body(**fields), JSON)


# ---------------------------------------------------------------------------- the terminal
FOLLOW = "mq-cutover status m1 --stack prod"


def test_the_terminal_says_who_aborted_and_how_to_follow_the_rollback() -> None:
    answer = Answer(
        200,
        {
            "outcome": "abort-requested",
            "abort": {"name": "Ana Ops", "principal": ANA_ARN, "reason": "x"},
            "closedGates": ["cutover"],
        },
    )
    assert abort_line(answer, FOLLOW) == (
        True,
        f"abort requested by Ana Ops ({ANA_ARN}): the migration rolls back; it was waiting at "
        f"cutover (follow it with {FOLLOW})",
    )


def test_a_refusal_is_one_line_with_the_servers_reason_and_no_escape_codes() -> None:
    answer = Answer(
        409, {"outcome": "past-point-of-no-return", "detail": "m1 passed\x1b[31m the point"}
    )
    assert abort_line(answer, FOLLOW) == (
        False,
        "abort refused (past-point-of-no-return): m1 passed\\x1b[31m the point",
    )

"""`mq-cutover abort` on the real state machine: the real CLI (`main([...])`, SigV4-signed as an
IAM user) through the simulated AWS_IAM authoriser to the real approval function. Wherever the
run is before the point of no return - a drain loop, a gate, halfway through moving producers -
it ends in the same rollback a rejected gate takes, every parameter back on-prem, the
notification and the failure naming who aborted and why. After Stop On-Prem began, or while it
already rolls back, the abort is refused with the reason and the run goes on as it was.

Where the abort must land inside a step (between two drain readings, before a producer's
repoint), it is sent from the emulator's hooks at that moment, not raced against the clock."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import boto3
import pytest

from mq_cutover_cli.cli import main
from mq_cutover_cli.harness import ACCOUNT
from mq_cutover_cli.live import LiveRun, live_run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "comment": "go"}
REJECT = {"decision": "reject", "comment": "DLQ not empty"}
ANA = f"arn:aws:iam::{ACCOUNT}:user/ana"
REASON = "billing consumers fail on the new broker"
ABORTED_BY = f"aborted by Ana Ops ({ANA}): {REASON}"


def session_of(run: LiveRun, user: str) -> Any:
    """An IAM user's own credentials (ana is a registered approver with this principal)."""
    iam = run.emulator.client("iam")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name="us-east-1",
    )


def abort(run: LiveRun, session: Any, migration: str, reason: str = REASON) -> tuple[int, str]:
    """`mq-cutover abort` as a person types it: (exit status, what it printed)."""
    url = run.emulator.approval_api_url.replace("/approvals", "/decisions")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(
            ["abort", migration, "--reason", reason, "--api-url", url],
            session=session,
            transport=run.api.signed,
        )
    return code, out.getvalue().strip()


def lease(run: LiveRun, migration: str) -> dict[str, Any]:
    table = run.emulator.resources["MigrationsTable"]
    item = run.emulator.client("dynamodb").get_item(
        TableName=table, Key={"migrationId": {"S": migration}}, ConsistentRead=True
    )
    return dict(item.get("Item") or {})


def gate_status(run: LiveRun, gate: str) -> str:
    table = run.emulator.resources["ApprovalsTable"]
    items = run.emulator.client("dynamodb").scan(TableName=table)["Items"]
    (record,) = [i for i in items if i["gate"]["S"] == gate]
    return str(record["status"]["S"])


def rollback_note(run: LiveRun) -> str:
    (note,) = [m for m in run.emulator.inbox("NotificationTopic") if "rolled back" in m["subject"]]
    return note["message"]


def assert_rolled_back_by_the_abort(run: LiveRun, state: str) -> None:
    status = run.wait_until_done()
    assert status["status"] == "FAILED" and status["error"] == "AbortRequested"
    assert status["cause"].startswith(
        f"Rolled back after {state} failed (AbortRequested): {ABORTED_BY} | restored "
    )
    entered = run.entered()
    assert entered[entered.index(state) :].count("Roll Back") >= 1
    assert entered[-2:] == ["Notify Rolled Back", "Rolled Back"]
    assert "Stop On-Prem" not in entered
    assert run.parameter_values() == run.initial  # every client back on-prem
    note = rollback_note(run)
    assert f"Failed at: {state}" in note and "Error: AbortRequested" in note
    assert f"Cause: {ABORTED_BY}" in note


def test_an_abort_during_the_drain_loop_rolls_back_at_the_next_reading(
    ordered_plan: dict[str, Any],
) -> None:
    """Ordered mode, producers moved, the run reading the on-prem drain: the abort arrives
    between two readings of one Check Drain call; the next reading stops it."""
    migration = ordered_plan["migrationId"]
    sent: dict[str, Any] = {}
    with live_run(ordered_plan) as run:
        ana = session_of(run, "ana")
        current: list[dict[str, Any]] = []

        def entering(name: str, payload: dict[str, Any]) -> None:
            forward_drain = name == "CheckDrainFunction" and set(payload) == {
                "migrationId",
                "plan",
                "previous",
            }
            current[:] = [payload] if forward_drain else []

        def between_readings() -> None:
            if current and "code" not in sent:
                sent["code"], sent["said"] = abort(run, ana, migration)
                sent["lease"] = lease(run, migration)

        run.emulator.hooks.append(entering)
        run.emulator.ticks.append(between_readings)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        assert_rolled_back_by_the_abort(run, "Check Drain")
        assert sent["code"] == 0, sent["said"]
        assert sent["said"] == (
            f"abort requested by Ana Ops ({ANA}): the migration rolls back (follow it with "
            f"mq-cutover status {migration} --stack <stack>)"
        )
        recorded = sent["lease"]["abortRequested"]["M"]
        assert recorded["principal"]["S"] == ANA and recorded["reason"]["S"] == REASON
        entered = run.entered()
        # Producers had moved; the drain loop was running; no timeout gate was reached.
        assert "Repoint Producers" in entered and "Approve Drain Timeout" not in entered
        # The ordered rollback: the on-prem backlog drained, consumers to Amazon MQ, producers
        # back, Amazon MQ drained, consumers back.
        assert entered.count("Check Rollback Drain") >= 2
        # Stopped within the call it arrived in (at its next reading), not at the next call.
        forward = [p for n, p in run.emulator.invocations if n == "CheckDrainFunction"]
        assert sum(1 for p in forward if set(p) == {"migrationId", "plan", "previous"}) == 1
        assert lease(run, migration)["rollingBack"]["M"]["error"]["S"] == "AbortRequested"


def test_an_abort_at_an_open_gate_rolls_back_at_once(ordered_plan: dict[str, Any]) -> None:
    """Producers and consumers moved, the run waiting at the stop gate: the abort fails the
    gate's task; the approvers' links then say it was aborted."""
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        ana = session_of(run, "ana")
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        email = run.wait_for_gate("stopOnPrem")
        assert run.parameter_values() != run.initial
        code, said = abort(run, ana, migration)
        assert code == 0, said
        assert said == (
            f"abort requested by Ana Ops ({ANA}): the migration rolls back; it was waiting at "
            f"stopOnPrem (follow it with mq-cutover status {migration} --stack <stack>)"
        )
        assert_rolled_back_by_the_abort(run, "Approve Stop On-Prem")
        assert gate_status(run, "stopOnPrem") == "ABORTED"
        late = run.api.post(email.approve_link, APPROVE)
        assert late["statusCode"] == 409 and "Already aborted by" in late["body"]
        # After the end: refused, with what happened.
        code, said = abort(run, ana, migration, "again")
        assert code == 1 and said.startswith(
            f"mq-cutover: abort refused (already-aborted): {migration} was already {ABORTED_BY} "
        )
        assert "its rollback began at " in said


def test_an_abort_in_unordered_mode_after_a_producer_moved_brings_everyone_back(
    unordered_plan: dict[str, Any],
) -> None:
    """Unordered mode, the first producer already on Amazon MQ: the abort lands before the
    second producer's repoint, which changes nothing; the rollback brings producers back,
    drains Amazon MQ with consumers still widened, then narrows them to on-prem."""
    migration = unordered_plan["migrationId"]
    sent: dict[str, Any] = {}
    with live_run(unordered_plan) as run:
        ana = session_of(run, "ana")
        moved: list[str] = []

        def before_second_producer(name: str, payload: dict[str, Any]) -> None:
            second = name == "RepointClientsFunction" and payload.get("parameterIndex") == 1
            if second and "code" not in sent:
                moved[:] = [n for n, v in run.parameter_values().items() if v != run.initial[n]]
                sent["code"], sent["said"] = abort(run, ana, migration)

        run.emulator.hooks.append(before_second_producer)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        assert_rolled_back_by_the_abort(run, "Repoint Producers One By One")
        assert sent["code"] == 0, sent["said"]
        producers = unordered_plan["producers"]["parameters"]
        # The first producer and the widened consumers had moved when the abort came.
        assert producers[0] in moved and producers[1] not in moved
        assert set(unordered_plan["consumers"]["parameters"]) <= set(moved)
        assert "Check Rollback Drain" in run.entered()  # Amazon MQ drained before narrowing


def test_an_abort_after_the_stop_began_is_refused_and_the_run_completes(
    ordered_plan: dict[str, Any],
) -> None:
    migration = ordered_plan["migrationId"]
    sent: dict[str, Any] = {}
    with live_run(ordered_plan) as run:
        ana = session_of(run, "ana")

        def after_the_stop_began(name: str, payload: dict[str, Any], result: Any) -> None:
            if name == "StopOnPremFunction" and "code" not in sent:
                sent["code"], sent["said"] = abort(run, ana, migration)

        run.emulator.after_hooks.append(after_the_stop_began)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        status = run.wait_until_done()
        assert status["status"] == "SUCCEEDED"
        assert sent["code"] == 1
        assert sent["said"].startswith(
            f"mq-cutover: abort refused (past-point-of-no-return): {migration} passed the point "
            "of no return at "
        )
        assert sent["said"].endswith(
            "(Stop On-Prem: on-prem is being stopped); it can no longer roll back"
        )
        assert "abortRequested" not in lease(run, migration)
        assert "Roll Back" not in run.entered()
        assert all(v != run.initial[n] for n, v in run.parameter_values().items())


def test_an_abort_while_rolling_back_is_refused(ordered_plan: dict[str, Any]) -> None:
    migration = ordered_plan["migrationId"]
    sent: dict[str, Any] = {}
    with live_run(ordered_plan) as run:
        ana = session_of(run, "ana")

        def during_the_rollback(name: str, payload: dict[str, Any], result: Any) -> None:
            if name == "RollbackFunction" and "code" not in sent:
                sent["code"], sent["said"] = abort(run, ana, migration)

        run.emulator.after_hooks.append(during_the_rollback)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        run.api.post(run.wait_for_gate("stopOnPrem").reject_link, REJECT)
        status = run.wait_until_done()
        assert status["status"] == "FAILED" and status["error"] == "Rejected"
        assert sent["code"] == 1
        assert sent["said"].startswith(
            f"mq-cutover: abort refused (already-rolling-back): {migration} is already rolling "
            "back (or rolled back) since "
        )
        assert sent["said"].endswith("after Approve Stop On-Prem failed (Rejected)")
        assert "abortRequested" not in lease(run, migration)
        assert run.parameter_values() == run.initial


def test_only_a_registered_approver_may_abort_and_a_refusal_changes_nothing(
    ordered_plan: dict[str, Any],
) -> None:
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover")
        mallory = session_of(run, "mallory")
        code, said = abort(run, mallory, migration)
        assert code == 3
        assert said == (
            f"mq-cutover: not authorised as arn:aws:iam::{ACCOUNT}:user/mallory (access key "
            f"{mallory.get_credentials().access_key}): arn:aws:iam::{ACCOUNT}:user/mallory is "
            "not a registered approver of this stack"
        )
        assert set(lease(run, migration)) == {"migrationId", "executionArn", "since"}
        assert gate_status(run, "cutover") == "PENDING"
        # Nothing to abort where no run holds the migration.
        code, said = abort(run, session_of(run, "ana"), "orders-2027-01-01")
        assert (code, said) == (
            1,
            "mq-cutover: abort refused (not-running): orders-2027-01-01 is not running (no run "
            "holds it): nothing to abort",
        )
        # The run goes on as if nobody had asked.
        run.api.post(email.approve_link, APPROVE)
        run.wait_until("producers moved", lambda: "Repoint Producers" in run.entered())

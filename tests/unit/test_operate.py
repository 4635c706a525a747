"""start/status/report pieces that need no run: --at refusals, the schedule's input (a reference
to the plan), a run started by reference read back, the reading of a history (a gate's task
token is never shown), and the report page's escaping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mq_cutover_cli import operate
from mq_cutover_cli.cli import main
from mq_cutover_cli.report_page import chart_points, render

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Migration"
TOKEN = "AQCEAAAAKgAAAA-secret-task-token+/=="


@pytest.fixture
def stack() -> Iterator[Any]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "StateMachineArn": {"Value": MACHINE},
                "CutoverScheduleRoleArn": {"Value": "arn:aws:iam::123456789012:role/s"},
            },
        }
        session.client("cloudformation").create_stack(
            StackName="s", TemplateBody=json.dumps(template)
        )
        yield session


def plan_file(tmp_path: Path, **extra: Any) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"migrationId": "orders-1", "mode": "ordered", **extra}))
    return str(path)


def test_at_in_the_past_an_unknown_zone_or_a_bad_time_is_refused_before_anything(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_file(tmp_path)
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    cases = {
        past: "is in the past",
        "tomorrow at two": "is not a time like 2026-12-01T02:00:00",
    }
    for at, why in cases.items():
        assert main(["start", "--plan", plan, "--stack", "s", "--at", at], session=stack) == 2
        assert why in capsys.readouterr().err
    argv = ["start", "--plan", plan, "--stack", "s", "--at", "2099-01-01T02:00:00"]
    assert main([*argv, "--time-zone", "Mars/Olympus"], session=stack) == 2
    assert "--time-zone: 'Mars/Olympus' is not an IANA time zone" in capsys.readouterr().err
    assert stack.client("scheduler").list_schedules()["Schedules"] == []


def test_a_time_with_an_offset_is_read_in_the_schedules_zone() -> None:
    moment = operate._schedule_time("2099-06-01T02:00:00+00:00", "Europe/Paris")
    assert moment.strftime("%Y-%m-%dT%H:%M:%S") == "2099-06-01T04:00:00"  # CEST, UTC+2


def test_a_stack_without_a_plan_bucket_cannot_schedule_and_says_why(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--at always starts the run by reference (the schedule's input names the plan in the
    stack's plan bucket): a stack deployed before the bucket existed is refused, before
    anything, naming the output it lacks."""
    plan = plan_file(tmp_path, padding="x" * 300_000)
    argv = ["start", "--plan", plan, "--stack", "s", "--at", "2099-01-01T02:00:00"]
    assert main(argv, session=stack) == 2
    err = capsys.readouterr().err
    assert "stack s has no PlanBucketName output" in err
    assert "this one is 300,0" in err and "deploy this version of the template" in err
    assert stack.client("scheduler").list_schedules()["Schedules"] == []


def test_the_schedules_input_is_a_reference_whatever_the_plans_size() -> None:
    reference = operate.PlanReference("s3", bucket="b", key="plans/orders-1/" + "0" * 64 + ".json")
    schedule_input = operate._schedule_input(MACHINE, "orders-1", json.dumps(reference.document()))
    assert len(schedule_input.encode()) < 512
    started = json.loads(schedule_input)
    assert json.loads(started["Input"]) == {"planRef": f"s3://b/plans/orders-1/{'0' * 64}.json"}


class FakeSfn:
    """An execution with no history yet, started with `input`."""

    def __init__(self, start_input: dict[str, Any]) -> None:
        self.input = json.dumps(start_input)

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return {
            "executionArn": executionArn,
            "name": "orders-1",
            "status": "RUNNING",
            "startDate": datetime.now(UTC),
            "input": self.input,
        }

    def get_paginator(self, _name: str) -> Any:
        class Pages:
            def paginate(self, **_kwargs: Any) -> list[dict[str, Any]]:
                return [{"events": []}]

        return Pages()


def test_a_run_started_by_reference_shows_the_plan_it_names() -> None:
    from mq_cutover.errors import PlanInvalid

    arn = MACHINE.replace(":stateMachine:", ":execution:") + ":orders-1"
    ref = {"planRef": "s3://b/plans/orders-1.json", "versionId": "v1"}
    plan = {"migrationId": "orders-1", "mode": "unordered", "producers": {"parameters": ["/a"]}}
    asked: list[dict[str, Any]] = []

    def reader(document: dict[str, Any]) -> dict[str, Any]:
        asked.append(document)
        return plan

    record = operate.Record.read(FakeSfn(ref), arn, reader)
    assert asked == [ref] and record.plan == plan
    assert record.plan_ref == "s3://b/plans/orders-1.json (version v1)"
    assert record.where_clients_are()["producers"] == {"/a": "onPrem"}
    lines = operate.status_lines(record)
    assert lines[0].startswith("orders-1 (unordered): RUNNING")
    assert "  plan:      s3://b/plans/orders-1.json (version v1)" in lines

    def gone(document: dict[str, Any]) -> dict[str, Any]:
        raise PlanInvalid(["planRef: s3://b/plans/orders-1.json: no such key"])

    for unreadable in (
        operate.Record.read(FakeSfn(ref), arn, gone),
        operate.Record.read(FakeSfn(ref), arn),
    ):
        assert unreadable.plan == {} and unreadable.migration_id == "orders-1"
        (line,) = [x for x in operate.status_lines(unreadable) if x.startswith("  plan:")]
        assert "(not readable: " in line
    lines = operate.status_lines(operate.Record.read(FakeSfn(ref), arn, gone))
    assert "no such key)" in next(x for x in lines if x.startswith("  plan:"))
    # A run started with the plan itself shows no plan line.
    inline = operate.Record.read(FakeSfn(plan), arn, reader)
    assert inline.plan == plan and inline.plan_ref is None and len(asked) == 1
    assert not [x for x in operate.status_lines(inline) if x.startswith("  plan:")]


def test_the_schedule_is_named_after_the_stack_and_refused_when_too_long(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator policy may create only schedules named `<stack name>.<migration id>` (the
    workflow test start --at creates one); a name too long is refused before anything."""
    assert operate.schedule_name("s", "orders-1") == "s.orders-1"
    stack_arn = "arn:aws:cloudformation:us-east-1:123456789012:stack/mq-prod/0a1b-2c3d"
    assert operate.schedule_name(stack_arn, "orders-1") == "mq-prod.orders-1"
    long_id = tmp_path / "long.json"
    long_id.write_text(json.dumps({"migrationId": "o" * 63, "mode": "ordered"}))
    argv = ["start", "--plan", str(long_id), "--stack", "s", "--at", "2099-01-01T02:00:00"]
    assert main(argv, session=stack) == 2
    err = capsys.readouterr().err
    assert err == (
        f"mq-cutover: migrationId: the schedule's name s.{'o' * 63} would be 65 characters, the "
        "limit is 64 (<stack name>.<migrationId>): shorten the migrationId, or start the run "
        "at the time without --at\n"
    )
    assert stack.client("scheduler").list_schedules()["Schedules"] == []


def test_an_unreadable_plan_is_one_line(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text("[1, 2")
    for path in (str(tmp_path / "missing.json"), str(tmp_path / "bad.json")):
        assert main(["start", "--plan", path, "--stack", "s"], session=stack) == 2
        err = capsys.readouterr().err
        assert err.startswith("mq-cutover: --plan: ") and err.count("\n") == 1


def event(number: int, kind: str, seconds: int, **details: Any) -> dict[str, Any]:
    key = kind[0].lower() + kind[1:]
    key = {
        "taskStateEntered": "stateEnteredEventDetails",
        "taskStateExited": "stateExitedEventDetails",
    }.get(key, f"{key}EventDetails")
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC) + timedelta(seconds=seconds)
    return {"id": number, "type": kind, "timestamp": at, key: details}


def waiting_at_the_cutover() -> operate.Record:
    parameters = {"FunctionName": "f", "Payload": {"gate": "cutover", "taskToken": TOKEN}}
    events = [
        event(1, "ExecutionStarted", 0, input="{}"),
        event(2, "TaskStateEntered", 1, name="Approve Cutover"),
        event(
            3,
            "TaskScheduled",
            1,
            resource="invoke.waitForTaskToken",
            parameters=json.dumps(parameters),
        ),
    ]
    execution = {
        "executionArn": f"{MACHINE.replace('stateMachine', 'execution')}:orders-1",
        "name": "orders-1",
        "status": "RUNNING",
        "startDate": datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        "input": json.dumps({"migrationId": "orders-1", "mode": "ordered"}),
    }
    record = operate.Record(execution, events, json.loads(execution["input"]))
    record.steps = operate._steps(events)
    return record


def test_a_gates_task_token_is_never_shown() -> None:
    record = waiting_at_the_cutover()
    gate = record.open_gate()
    assert gate is not None and gate.gate == "cutover"
    text = "\n".join(operate.status_lines(record, None, "no API"))
    assert "  gate:      cutover open since 02:00:01Z" in text
    assert TOKEN not in text and "secret-task-token" not in text
    report = json.dumps(operate.build_report(record, ssm=None))
    assert "secret-task-token" not in report
    assert json.loads(report)["approvals"][0]["outcome"] == "open"


ANA = "arn:aws:iam::123456789012:user/ana"
ABORTED = f"aborted by Ana Ops ({ANA}): DLQ growing (see INC-7): fix first"


def record_of(events: list[dict[str, Any]], status: str = "RUNNING") -> operate.Record:
    execution = {
        "executionArn": f"{MACHINE.replace('stateMachine', 'execution')}:orders-1",
        "name": "orders-1",
        "status": status,
        "startDate": datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        "input": json.dumps({"migrationId": "orders-1", "mode": "ordered"}),
    }
    record = operate.Record(execution, events, json.loads(execution["input"]))
    record.steps = operate._steps(events)
    return record


def rollback_events(first: int, seconds: int, state: str, cause: str) -> list[dict[str, Any]]:
    payload = {"failure": {"state": state, "error": "AbortRequested", "cause": cause}}
    return [
        event(first, "TaskStateEntered", seconds, name="Roll Back"),
        event(first + 1, "TaskScheduled", seconds, parameters=json.dumps({"Payload": payload})),
    ]


def test_an_abort_at_a_gate_and_its_rollback_are_read_from_the_history() -> None:
    """A gate failed by the approval API carries the abort's text as its cause."""
    gate = {"FunctionName": "f", "Payload": {"gate": "stopOnPrem", "taskToken": TOKEN}}
    events = [
        event(1, "ExecutionStarted", 0, input="{}"),
        event(2, "TaskStateEntered", 60, name="Approve Stop On-Prem"),
        event(
            3, "TaskScheduled", 60, resource="invoke.waitForTaskToken", parameters=json.dumps(gate)
        ),
        event(4, "TaskFailed", 125, error="AbortRequested", cause=ABORTED),
        event(5, "TaskStateExited", 125, name="Approve Stop On-Prem"),
        *rollback_events(6, 126, "Approve Stop On-Prem", ABORTED),
    ]
    record = record_of(events)
    assert record.abort() == {
        "by": "Ana Ops",
        "principal": ANA,
        "reason": "DLQ growing (see INC-7): fix first",
        "at": "2026-12-01T02:02:05Z",
        "state": "Approve Stop On-Prem",
        "text": ABORTED,
    }
    assert record.point_of_no_return() is None
    rollback = record.rollback()
    assert rollback is not None and rollback["outcome"] == "rolling back"
    assert (rollback["afterState"], rollback["error"]) == ("Approve Stop On-Prem", "AbortRequested")
    (approval,) = record.approvals()
    assert (approval["outcome"], approval["by"]) == ("aborted", "Ana Ops")
    text = "\n".join(operate.status_lines(record, stack="prod"))
    assert (
        f"  abort:     asked by Ana Ops ({ANA}), met at 02:02:05Z in Approve Stop On-Prem: "
        "DLQ growing (see INC-7): fix first\n" in text
    )
    assert (
        "  rollback:  rolling back since 02:02:06Z, after Approve Stop On-Prem failed "
        "(AbortRequested)\n" in text
    )
    assert "point of no return" not in text and "abort:     possible" not in text
    assert TOKEN not in text


def test_an_abort_that_came_before_the_stop_is_not_the_point_of_no_return() -> None:
    """Stop On-Prem met the abort first (a Lambda error: its cause is JSON): nothing was
    stopped, so the run never passed the point of no return, and rolled back."""
    lambda_cause = json.dumps({"errorMessage": ABORTED, "errorType": "AbortRequested"})
    events = [
        event(1, "ExecutionStarted", 0, input="{}"),
        event(2, "TaskStateEntered", 60, name="Stop On-Prem"),
        event(3, "TaskFailed", 61, error="AbortRequested", cause=lambda_cause),
        event(4, "TaskStateExited", 61, name="Stop On-Prem"),
        *rollback_events(5, 62, "Stop On-Prem", ABORTED),
        event(7, "TaskSucceeded", 63, output=json.dumps({"Payload": {"restored": []}})),
        event(8, "TaskStateExited", 63, name="Roll Back"),
        event(9, "FailStateEntered", 64, name="Rolled Back"),
        event(10, "ExecutionFailed", 64, error="AbortRequested", cause="Rolled back"),
    ]
    record = record_of(events, status="FAILED")
    abort = record.abort()
    assert abort is not None and abort["reason"] == "DLQ growing (see INC-7): fix first"
    assert abort["state"] == "Stop On-Prem"
    assert record.point_of_no_return() is None
    text = "\n".join(operate.status_lines(record))
    assert (
        "  rollback:  rolled back at 02:01:04Z (began 02:01:02Z, after Stop On-Prem failed "
        "(AbortRequested))\n" in text
    )
    assert "TaskFailed  Stop On-Prem: AbortRequested aborted by Ana Ops" in text  # not JSON


def test_past_the_stop_an_abort_is_no_longer_possible() -> None:
    events = [
        event(1, "ExecutionStarted", 0, input="{}"),
        event(2, "TaskStateEntered", 60, name="Stop On-Prem"),
        event(3, "TaskSucceeded", 61, output=json.dumps({"Payload": {"commandId": "c"}})),
        event(4, "TaskStateExited", 61, name="Stop On-Prem"),
        event(5, "TaskStateEntered", 61, name="Check On-Prem Stop"),
    ]
    record = record_of(events)
    assert record.point_of_no_return() == {"state": "Stop On-Prem", "at": "2026-12-01T02:01:00Z"}
    assert record.abort() is None and record.rollback() is None
    text = "\n".join(operate.status_lines(record, stack="prod"))
    assert (
        "  abort:     no longer possible: past the point of no return since 02:01:00Z "
        "(Stop On-Prem began)\n" in text
    )
    before = record_of(events[:1])
    assert (
        "  abort:     possible until the on-prem stop begins: mq-cutover abort orders-1 "
        "--stack prod --reason TEXT"
    ) in "\n".join(operate.status_lines(before, stack="prod"))


def test_the_page_escapes_what_the_run_carries_and_draws_known_counts_only() -> None:
    hostile = '<script>alert("x")</script>'
    report = {
        "migrationId": hostile,
        "execution": {"status": "FAILED", "cause": hostile},
        "approvals": [{"gate": "cutover", "outcome": "rejected", "by": hostile, "detail": "x"}],
        "parameterChanges": [],
        "messagesLeft": {"onPrem": {"at": "2026-12-01T02:00:00Z", "queues": [{"queue": hostile}]}},
        "drainReadings": {
            "onPrem": [
                {"at": "2026-12-01T02:00:00+00:00", "messagesLeft": 10},
                {"at": "2026-12-01T02:05:00+00:00", "messagesLeft": None},  # unknown, not zero
                {"at": "2026-12-01T02:10:00+00:00", "messagesLeft": 0},
            ],
            "amazonMq": [{"at": "2026-12-01T02:10:00+00:00", "messagesLeft": 4}],
        },
    }
    page = render(report)
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 4
    assert [v for _, v in chart_points(report["drainReadings"])["onPrem"]] == [10, 0]
    assert page.count('<polyline class="series"') == 2
    assert "On-prem (2 readings, 1 unknown (not drawn))" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from anywhere


def test_client_moves_at_scale_come_from_the_counts_and_the_plan() -> None:
    """At thousands of parameters a step's result names its first 50 and counts them all: the
    record takes the names from the plan's group [start:start+handled], and a rollback that
    restored more than it names restored every parameter not left in conflict."""
    from datetime import UTC, datetime

    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    producers = [f"/p/{i:04d}" for i in range(120)]
    consumers = [f"/c/{i:04d}" for i in range(80)]
    repoint = {
        "step": "producers",
        "changed": producers[10:60],
        "changedCount": 100,
        "unchanged": [],
        "unchangedCount": 0,
        "start": 10,
    }
    rollback = {
        "restored": producers[:50],
        "restoredCount": 199,
        "conflicts": [{"name": consumers[5]}],
    }
    record = operate.Record(
        {},
        [],
        {"producers": {"parameters": producers}, "consumers": {"parameters": consumers}},
        steps=[
            operate.Step("Repoint Producers", "Task", at, at, output=repoint),
            operate.Step("Roll Back", "Task", at, at, output=rollback),
        ],
    )
    moves = record.client_moves()
    assert moves[0]["names"] == producers[10:110]
    assert len(moves[1]["names"]) == 199 and consumers[5] not in moves[1]["names"]

"""`mq-cutover start | status | report` against the emulator: the real CLI code (`main([...])`)
on a boto3 session, the real state machine and handlers, the stack's outputs in moto's
CloudFormation. Each test checks what AWS holds afterwards (executions, schedules, history,
Parameter Store), not only what was printed."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials

from mq_cutover.plan import parse_plan
from mq_cutover_cli import operate
from mq_cutover_cli.cli import main
from mq_cutover_cli.harness import ACCOUNT, REGION, Emulator, SimClock
from mq_cutover_cli.harness import STACK_NAME as STACK
from mq_cutover_cli.live import LiveRun, _drive_to_an_end, live_run
from mq_cutover_cli.world import World, default_world

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "comment": "window confirmed"}


def deploy(emulator: Emulator) -> None:
    """The emulated stack (the harness describes its outputs in CloudFormation), with the
    schedule role's output too: the role `start --at` gives its schedule."""
    role = emulator.client("iam").create_role(
        RoleName="CutoverScheduleRole", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    cloudformation = emulator.client("cloudformation")
    body = cloudformation.get_template(StackName=STACK)["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else dict(body)
    body["Outputs"]["CutoverScheduleRoleArn"] = {"Value": role}
    (stack,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    with warnings.catch_warnings():  # moto parses no WaitConditionHandle; outputs are enough
        warnings.simplefilter("ignore")
        cloudformation.update_stack(
            StackName=STACK, TemplateBody=json.dumps(body), Parameters=stack["Parameters"]
        )
    outputs = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    assert {"StateMachineArn", "CutoverScheduleRoleArn", "DecisionApiUrl"} <= {
        o["OutputKey"] for o in outputs
    }


def session(credentials: Credentials | None = None) -> Any:
    if credentials is None:
        return boto3.session.Session(region_name=REGION)
    return boto3.session.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        region_name=REGION,
    )


def iam_user(emulator: Emulator, name: str) -> Credentials:
    emulator.client("iam").create_user(UserName=name)
    key = emulator.client("iam").create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@contextlib.contextmanager
def deployed(plan: dict[str, Any], world: World | None = None) -> Iterator[Emulator]:
    """The emulated stack, deployed, with nothing started yet; every execution started in it
    is driven to an end afterwards."""
    parsed = parse_plan(plan)
    world = world or default_world(parsed)
    world.fill_defaults(parsed)
    emulator = Emulator(SimClock())
    with emulator.running():
        world.install(emulator, parsed)
        deploy(emulator)
        try:
            yield emulator
        finally:
            sfn = emulator.client("stepfunctions")
            listed = sfn.list_executions(stateMachineArn=emulator.state_machine_arn)
            for execution in listed["executions"]:
                arn = execution["executionArn"]
                # moto cannot stop a run whose worker has not begun: let it take a first step.
                deadline = time.monotonic() + 30
                while len(emulator.history(arn)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                _drive_to_an_end(emulator, arn)


def plan_file(tmp_path: Path, plan: dict[str, Any], name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(plan, indent=2))
    return str(path)


def executions(emulator: Emulator) -> list[dict[str, Any]]:
    sfn = emulator.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=emulator.state_machine_arn)["executions"]
    return list(listed)


# --- start ------------------------------------------------------------------------------------
def test_start_runs_the_plan_as_an_execution_named_after_the_migration_and_only_once(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path, ordered_plan)
    migration = ordered_plan["migrationId"]
    with deployed(ordered_plan) as emulator:
        assert main(["start", "--plan", path, "--stack", STACK], session=session()) == 0
        out = capsys.readouterr().out
        (execution,) = executions(emulator)
        assert execution["name"] == migration
        arn = execution["executionArn"]
        described = emulator.status(arn)
        assert json.loads(described["input"]) == ordered_plan
        assert f"  execution: {arn}\n" in out
        assert (
            f"  console:   https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
            f"#/v2/executions/details/{arn}\n" in out
        )
        assert "preflight:" in out and "checks passed" in out

        assert main(["start", "--plan", path, "--stack", STACK], session=session()) == 1
        err = capsys.readouterr().err
        assert f"migration {migration} was already started" in err
        assert err.count("\n") == 1  # one line, no traceback
        assert [e["executionArn"] for e in executions(emulator)] == [arn]


def test_a_plan_that_fails_preflight_starts_nothing(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "/mq-cutover/orders/ghost/broker-url"
    with deployed(ordered_plan) as emulator:
        broken = copy.deepcopy(ordered_plan)
        broken["producers"]["parameters"].append(missing)  # never created in the account
        path = plan_file(tmp_path, broken)
        assert main(["start", "--plan", path, "--stack", STACK], session=session()) == 1
        captured = capsys.readouterr()
        assert "❌" in captured.out and missing in captured.out
        assert "nothing was started" in captured.err
        assert executions(emulator) == []


def test_start_at_creates_a_one_time_schedule_that_starts_this_migration(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path, ordered_plan)
    migration = ordered_plan["migrationId"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT02:00:00")
    with deployed(ordered_plan) as emulator:
        argv = ["start", "--plan", path, "--stack", STACK, "--at", tomorrow]
        argv += ["--time-zone", "Europe/Paris"]
        assert main(argv, session=session()) == 0
        out = capsys.readouterr().out
        assert f"scheduled {migration} at {tomorrow} Europe/Paris" in out
        bucket = emulator.resources["PlanBucket"]
        text = Path(path).read_text()
        key = f"plans/{migration}/{hashlib.sha256(text.encode()).hexdigest()}.json"
        assert f"plan: s3://{bucket}/{key} ({len(text):,} bytes; the run starts with a" in out
        schedule = emulator.client("scheduler").get_schedule(Name=f"{STACK}.{migration}")
        assert schedule["ScheduleExpression"] == f"at({tomorrow})"
        assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
        assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert schedule["ActionAfterCompletion"] == "DELETE"
        target = schedule["Target"]
        assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:sfn:startExecution"
        assert target["RoleArn"].endswith(":role/CutoverScheduleRole")
        started = json.loads(target["Input"])
        assert started["StateMachineArn"] == emulator.state_machine_arn
        assert started["Name"] == migration
        # The schedule names the plan, uploaded as written: no size limit, a tiny input.
        assert json.loads(started["Input"]) == {"planRef": f"s3://{bucket}/{key}"}
        assert len(target["Input"].encode()) < 512
        uploaded = emulator.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        assert uploaded.decode() == text
        assert executions(emulator) == []  # the schedule starts it, not the CLI

        yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT02:00:00")
        argv = ["start", "--plan", path, "--stack", STACK, "--at", yesterday]
        assert main(argv, session=session()) == 2
        assert "is in the past" in capsys.readouterr().err
        listed = emulator.client("scheduler").list_schedules()["Schedules"]
        assert [s["Name"] for s in listed] == [f"{STACK}.{migration}"]


def test_a_plan_by_reference_starts_and_status_and_report_read_it_back(
    ordered_plan: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan over the inline limit (lowered here to 1 KiB; 200 KiB in use) is uploaded and
    the run started with its reference; `status` and `report` read the plan back (its
    parameters), and say where it was. --by-reference does the same for any plan."""
    monkeypatch.setattr(operate, "INLINE_START_LIMIT", 1024)
    path = plan_file(tmp_path, ordered_plan)
    text = Path(path).read_text()
    assert len(text) > 1024
    migration = ordered_plan["migrationId"]
    parsed = parse_plan(ordered_plan)
    world = default_world(parsed)
    world.fill_defaults(parsed)
    emulator = Emulator(SimClock())
    with emulator.running():
        world.install(emulator, parsed)
        deploy(emulator)
        bucket = emulator.resources["PlanBucket"]
        key = f"plans/{migration}/{hashlib.sha256(text.encode()).hexdigest()}.json"
        ssm = emulator.client("ssm")
        initial = {n: ssm.get_parameter(Name=n)["Parameter"]["Value"] for n in world.parameters}
        assert main(["start", "--plan", path, "--stack", STACK], session=session()) == 0
        out = capsys.readouterr().out
        assert f"plan: s3://{bucket}/{key} ({len(text):,} bytes;" in out
        (execution,) = executions(emulator)
        arn = execution["executionArn"]
        try:
            assert json.loads(emulator.status(arn)["input"]) == {"planRef": f"s3://{bucket}/{key}"}
            run = LiveRun(emulator, arn, parsed, world, initial)
            email = run.wait_for_gate("cutover")
            assert main(["status", migration, "--stack", STACK], session=session()) == 0
            out = capsys.readouterr().out
            assert out.startswith(f"{migration} (ordered): RUNNING for ")
            assert f"  plan:      s3://{bucket}/{key}\n" in out
            # The parameters come from the plan read back (the input holds none).
            assert "  parameters: 0 of 4 moved to Amazon MQ (producers 0 of 2; consumers 0" in out
            assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 200
            assert (
                run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)["statusCode"]
                == 200
            )
            assert run.wait_until_done()["status"] == "SUCCEEDED"
            report = tmp_path / "report.json"
            argv = ["report", migration, "--stack", STACK, "--json", str(report)]
            assert main(argv, session=session()) == 0
            document = json.loads(report.read_text())
            assert document["planRef"] == f"s3://{bucket}/{key}"
            assert document["planProblem"] is None and document["mode"] == "ordered"
            assert document["parameters"]["moved"] == document["parameters"]["total"] == 4

            # The plan is gone (expired by the bucket's lifecycle rule, say): status says so.
            s3 = emulator.client("s3")
            for version in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
                s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
            assert main(["status", migration, "--stack", STACK], session=session()) == 0
            out = capsys.readouterr().out
            assert f"  plan:      s3://{bucket}/{key} (not readable: planRef: " in out
            assert "no such key)" in out
        finally:
            _drive_to_an_end(emulator, arn)


def test_by_reference_uploads_any_plan(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    path = plan_file(tmp_path, ordered_plan)
    with deployed(ordered_plan) as emulator:
        args = argparse.Namespace(
            plan=path, stack=STACK, at=None, time_zone="UTC", retry=False, by_reference=True
        )
        assert operate.start(args, session()) == 0
        (execution,) = executions(emulator)
        reference = json.loads(emulator.status(execution["executionArn"])["input"])
        assert reference["planRef"].startswith(f"s3://{emulator.resources['PlanBucket']}/plans/")
        assert "; the run starts with a reference to it)" in capsys.readouterr().out
        # Without it, a plan this small goes inline, as before.
        ordered_plan["migrationId"] = "orders-inline"
        inline = plan_file(tmp_path, ordered_plan, "inline.json")
        assert main(["start", "--plan", inline, "--stack", STACK], session=session()) == 0
        (started,) = [e for e in executions(emulator) if e["name"] == "orders-inline"]
        assert json.loads(emulator.status(started["executionArn"])["input"]) == ordered_plan


# --- status -----------------------------------------------------------------------------------
def test_status_at_a_gate_shows_its_votes_from_the_decision_api(
    ordered_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ordered_plan["approvals"]["quorum"] = {"cutover": 2}
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        email = run.wait_for_gate("cutover")
        assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 200  # Ana, 1 of 2
        ana = iam_user(run.emulator, "ana")
        argv = ["status", migration, "--stack", STACK]
        assert main(argv, session=session(ana), transport=run.api.signed) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{migration} (ordered): RUNNING for ")
        assert "  step:      Approve Cutover (since " in out
        assert "  gate:      cutover open since " in out
        assert "    1 of 2 approvals; expires " in out
        assert "    vote: Ana Ops approve at " in out
        assert "  parameters: 0 of 4 moved to Amazon MQ (producers 0 of 2; consumers 0 of 2)" in out
        assert "  brokers:   no queue reading yet" in out
        assert (
            "  abort:     possible until the on-prem stop begins: mq-cutover abort "
            f"{migration} --stack {STACK} --reason TEXT\n" in out
        )
        assert "rollback:" not in out

        # The decision API cannot be reached: the gate is shown, without votes, and why.
        def unreachable(*_: Any) -> Any:
            raise OSError("connection refused")

        assert main(argv, session=session(ana), transport=unreachable) == 0
        out = capsys.readouterr().out
        assert "  gate:      cutover open since " in out
        assert "    votes not shown: " in out and "connection refused" in out


def test_status_during_the_drain_shows_messages_left_per_queue(
    ordered_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The drain is slow (100 messages a minute a queue): the second Check Drain call finds
    the first one's reading in the history, per queue, while the producers are on Amazon MQ."""
    migration = ordered_plan["migrationId"]
    parsed = parse_plan(ordered_plan)
    world = default_world(parsed)
    for queue in world.queues:
        queue.drain_per_minute = 100
    seen: list[str] = []
    calls: list[str] = []

    def during_the_drain(emulator: Emulator) -> None:
        deploy(emulator)

        def hook(function: str, event: dict[str, Any]) -> None:
            if function != "CheckDrainFunction":
                return
            calls.append(function)
            if len(calls) == 2:
                assert main(["status", migration, "--stack", STACK], session=session()) == 0
                seen.append(capsys.readouterr().out)

        emulator.hooks.append(hook)

    with live_run(ordered_plan, world, before_start=during_the_drain) as run:
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        run.wait_until("the second drain check", lambda: seen)
        history = run.emulator.history(run.arn)
    (out,) = seen
    first = next(
        json.loads(e["taskSucceededEventDetails"]["output"])["Payload"]
        for e in history
        if e["type"] == "TaskSucceeded" and '"purpose": "drain"' in str(e)
    )
    assert first["messagesLeft"] > 0
    line = (
        f"  On-prem: {first['messagesLeft']:,} messages left in "
        f"{first['queuesWithMessagesCount']} of {first['watchedQueues']} queues (Check Drain"
    )
    assert line in out
    for queue in first["queuesWithMessages"]:
        assert re.search(rf"\n    {re.escape(queue['queue'])} +{queue['messages']:,}\n", out)
    assert "  step:      Check Drain (since " in out
    assert "  gate:      none open" in out
    assert "  parameters: 2 of 4 moved to Amazon MQ (producers 2 of 2; consumers 0 of 2)" in out


def test_status_after_the_run_and_of_an_unknown_migration(
    ordered_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        run.wait_until_done()
        stop_began = next(
            e["timestamp"]
            for e in run.emulator.history(run.arn)
            if e["type"] == "TaskStateEntered"
            and e["stateEnteredEventDetails"]["name"] == "Stop On-Prem"
        )
        capsys.readouterr()
        argv = ["status", migration, "--stack", STACK, "--watch"]
        assert main(argv, session=session()) == 0  # ended: one screen, no wait
        out = capsys.readouterr().out
        assert out.startswith(operate.CLEAR_SCREEN + f"{migration} (ordered): SUCCEEDED after ")
        assert (
            "  abort:     no longer possible: past the point of no return since "
            f"{stop_began.astimezone(UTC):%H:%M:%S}Z (Stop On-Prem began)\n" in out
        )
        assert "rollback:" not in out and "abort:     possible" not in out
        assert "  gate:      none open" in out
        assert "  parameters: 4 of 4 moved to Amazon MQ" in out
        assert "ExecutionSucceeded" in out

        assert main(["status", "nope", "--stack", STACK], session=session()) == 1
        captured = capsys.readouterr()
        assert captured.err == f"mq-cutover: no migration nope on stack {STACK}\n"


def test_status_watch_redraws_until_the_run_ends(
    ordered_plan: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """Each pause of --watch lets the run go one gate further; the screen is redrawn each time
    and the command ends with the run."""
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        run.wait_for_gate("cutover")
        gates = ["cutover", "stopOnPrem"]

        def step(_seconds: float) -> None:
            if gates:
                run.api.post(run.wait_for_gate(gates.pop(0)).approve_link, APPROVE)
            if not gates:
                run.wait_until_done()
            else:
                run.wait_until(f"at {gates[0]}", lambda: run.approval_emails("ana")[1:])

        monkeypatch.setattr(operate, "pause", step)
        argv = ["status", migration, "--stack", STACK, "--watch", "--interval", "1"]
        assert main(argv, session=session()) == 0
        screens = capsys.readouterr().out.split(operate.CLEAR_SCREEN)[1:]
    assert len(screens) == 3
    assert "  step:      Approve Cutover" in screens[0]
    assert "  step:      Approve Stop On-Prem" in screens[1]
    assert ": SUCCEEDED after " in screens[2]


def test_status_shows_who_aborted_why_and_when_and_the_rollback(
    ordered_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Ana aborts between two readings of the drain (as tests/workflow/test_abort.py does);
    status, read while the rollback runs and after it, says who asked, why, where and when the
    run met it, and the rollback's progress, all from the execution's history."""
    migration = ordered_plan["migrationId"]
    reason = "billing consumers fail on the new broker"
    principal = f"arn:aws:iam::{ACCOUNT}:user/ana"
    sent: dict[str, Any] = {}
    screens: list[str] = []
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        ana = session(iam_user(run.emulator, "ana"))  # a registered approver's principal
        url = run.emulator.approval_api_url.replace("/approvals", "/decisions")
        forward_drain: list[bool] = []

        def entering(function: str, payload: dict[str, Any]) -> None:
            drain = {"migrationId", "plan", "previous"}
            forward_drain[:] = [function == "CheckDrainFunction" and set(payload) == drain]
            if function == "RollbackFunction" and not screens:  # the rollback's first step
                sent["said"] = capsys.readouterr().out  # the abort's answer
                assert main(["status", migration, "--stack", STACK], session=session()) == 0
                screens.append(capsys.readouterr().out)

        def between_readings() -> None:
            if forward_drain == [True] and "code" not in sent:
                argv = ["abort", migration, "--reason", reason, "--api-url", url]
                sent["code"] = main(argv, session=ana, transport=run.api.signed)

        run.emulator.hooks.append(entering)
        run.emulator.ticks.append(between_readings)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        ended = run.wait_until_done()
        assert sent["code"] == 0 and sent["said"].startswith("abort requested by Ana Ops")
        assert ended["status"] == "FAILED" and ended["error"] == "AbortRequested"
        assert main(["status", migration, "--stack", STACK], session=session()) == 0
        screens.append(capsys.readouterr().out)
        history = run.emulator.history(run.arn)

    def at(kind: str, name: str | None = None) -> str:
        for event in history:
            details = event.get("stateEnteredEventDetails") or {}
            if event["type"] == kind and (name is None or details.get("name") == name):
                return f"{event['timestamp'].astimezone(UTC):%H:%M:%S}Z"
        raise AssertionError(f"no {kind} {name or ''} in the history")

    (met,) = [e for e in history if e["type"] == "TaskFailed"]
    assert met["taskFailedEventDetails"]["error"] == "AbortRequested"
    met_at = f"{met['timestamp'].astimezone(UTC):%H:%M:%S}Z"
    began = at("TaskStateEntered", "Roll Back")
    abort_line = (
        f"  abort:     asked by Ana Ops ({principal}), met at {met_at} in Check Drain: {reason}\n"
    )
    during, after = screens
    assert during.startswith(f"{migration} (ordered): RUNNING for ")
    assert abort_line in during
    assert (
        f"  rollback:  rolling back since {began}, after Check Drain failed (AbortRequested)\n"
        in during
    )
    assert "point of no return" not in during and "abort:     possible" not in during
    assert after.startswith(f"{migration} (ordered): FAILED after ")
    assert abort_line in after
    assert (
        f"  rollback:  rolled back at {at('FailStateEntered', 'Rolled Back')} (began {began}, "
        "after Check Drain failed (AbortRequested))\n" in after
    )
    assert "  parameters: 0 of 4 moved to Amazon MQ" in after


# --- report -----------------------------------------------------------------------------------
def test_report_after_a_full_run_matches_the_history_and_parameter_store(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        run.wait_until_done()
        history = run.emulator.history(run.arn)
        ssm = run.emulator.client("ssm")
        final = run.parameter_values()
        capsys.readouterr()
        json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
        argv = ["report", migration, "--stack", STACK]
        argv += ["--json", str(json_path), "--html", str(html_path)]
        assert main(argv, session=session()) == 0
        out = capsys.readouterr().out
        report = json.loads(json_path.read_text())
        versions = {
            name: ssm.get_parameter_history(Name=name)["Parameters"] for name in run.initial
        }

    assert out.startswith(f"report of {migration} (ordered): SUCCEEDED in ")
    assert "  approval:   cutover approved by Ana Ops at " in out
    assert f"  json: {json_path}" in out and f"  html: {html_path}" in out
    assert report["execution"]["status"] == "SUCCEEDED"
    assert report["execution"]["arn"] == run.arn

    # Timeline: every state entered (Choice and Pass states aside), in order, with its times.
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in history
        if e["type"].endswith("StateEntered") and not e["type"].startswith(("Choice", "Pass"))
    ]
    assert [t["state"] for t in report["timeline"]] == entered
    assert all(t["exitedAt"] and t["seconds"] is not None for t in report["timeline"])

    # Approvals: what each gate's task returned, when it returned it.
    answers = [
        (json.loads(e["taskSucceededEventDetails"]["output"]), e["timestamp"])
        for e in history
        if e["type"] == "TaskSucceeded"
        and e["taskSucceededEventDetails"]["resource"] == "invoke.waitForTaskToken"
    ]
    assert [(a["gate"], a["outcome"], a["by"], a["comment"]) for a in report["approvals"]] == [
        (answer["gate"], "approved", answer["by"], answer["comment"]) for answer, _ in answers
    ]
    assert [a["gate"] for a in report["approvals"]] == ["cutover", "stopOnPrem"]
    for approval, (_, at) in zip(report["approvals"], answers, strict=True):
        stamp = operate._when(approval["decidedAt"])
        assert stamp is not None and abs((stamp - at).total_seconds()) < 1.5

    # Parameter changes: Parameter Store's versions after the pre- label, each once.
    changes = report["parameterChanges"]
    assert sorted(c["parameter"] for c in changes) == sorted(run.initial)
    for change in changes:
        name = change["parameter"]
        assert change["from"] == run.initial[name]
        assert change["to"] == final[name]
        by_version = {int(v["Version"]): v for v in versions[name]}
        assert change["to"] == by_version[change["version"]]["Value"]
        assert f"pre-{migration}" in by_version[change["version"] - 1].get("Labels", [])
    steps = {c["parameter"]: c["step"] for c in changes}
    assert {steps[n] for n in ordered_plan["producers"]["parameters"]} == {"Repoint Producers"}
    assert {steps[n] for n in ordered_plan["consumers"]["parameters"]} == {"Repoint Consumers"}
    assert report["parameters"] == {"moved": 4, "total": 4}

    # Counts: the fence's reconciliation, as the history carries it.
    fence = next(
        json.loads(e["taskSucceededEventDetails"]["output"])["Payload"]
        for e in history
        if e["type"] == "TaskSucceeded" and '"purpose": "fence"' in str(e)
    )
    assert report["counts"] == fence["counts"]
    assert report["counts"]["onPrem"]["atStart"] > 0

    # Chart: each check's last reading, and each wait's first one, as the history has them.
    readings = [
        json.loads(e["taskSucceededEventDetails"]["output"])["Payload"]
        for e in history
        if e["type"] == "TaskSucceeded" and '"purpose": "' in str(e)
    ]
    points = report["drainReadings"]["onPrem"]
    assert sorted((p["at"], p["messagesLeft"]) for p in points if p["reading"] == "last") == sorted(
        (r["checkedAt"], r["messagesLeft"]) for r in readings
    )
    assert sorted(
        (p["at"], p["messagesLeft"]) for p in points if p["reading"] == "first"
    ) == sorted({(r["startedAt"], r["initialMessagesLeft"]) for r in readings})
    assert points[0]["messagesLeft"] == 9000  # the backlog when the drain began
    html = html_path.read_text()
    assert html.count('<polyline class="series"') == len(report["drainReadings"])
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_report_of_a_rolled_back_run_shows_the_rejection_and_the_restores(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migration = ordered_plan["migrationId"]
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        bea = run.wait_for_gate("stopOnPrem", approver="bea")
        run.api.post(bea.reject_link, {"decision": "reject", "comment": "DLQ <b>growing</b>"})
        run.wait_until_done()
        assert run.parameter_values() == run.initial
        json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
        argv = ["report", migration, "--stack", STACK]
        argv += ["--json", str(json_path), "--html", str(html_path)]
        assert main(argv, session=session()) == 0
        report = json.loads(json_path.read_text())
    stop = report["approvals"][-1]
    assert (stop["gate"], stop["outcome"], stop["by"]) == ("stopOnPrem", "rejected", "Bea Lead")
    assert "DLQ <b>growing</b>" in stop["detail"]
    changes = report["parameterChanges"]
    for name, initial in run.initial.items():  # moved, then put back by the rollback
        mine = [c for c in changes if c["parameter"] == name]
        assert [c["step"] for c in mine] == [mine[0]["step"], "Roll Back"]
        assert mine[-1]["to"] == initial and mine[0]["from"] == initial
    assert report["parameters"] == {"moved": 0, "total": 4}
    assert set(report["drainReadings"]) == {"onPrem", "amazonMq"}
    html = html_path.read_text()
    assert "DLQ &lt;b&gt;growing&lt;/b&gt;" in html and "<b>growing" not in html
    assert "report of" in capsys.readouterr().out


def test_start_retry_starts_the_next_attempt_only_after_one_ended_without_success(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path, ordered_plan)
    migration = ordered_plan["migrationId"]
    retry = ["start", "--plan", path, "--stack", STACK, "--retry"]
    reject = {"decision": "reject", "comment": "not tonight"}
    with live_run(ordered_plan) as run:
        deploy(run.emulator)
        run.wait_for_gate("cutover")
        assert main(retry, session=session()) == 1  # the first attempt is still running
        assert f"--retry: {migration} is still RUNNING" in capsys.readouterr().err
        run.api.post(run.wait_for_gate("cutover").reject_link, reject)
        assert run.wait_until_done()["status"] == "FAILED"  # rolled back
        assert main(["start", "--plan", path, "--stack", STACK], session=session()) == 1
        assert "start its next attempt with --retry" in capsys.readouterr().err
        assert main(retry, session=session()) == 0
        assert f"started {migration}--2\n" in capsys.readouterr().out
        (second,) = [e for e in executions(run.emulator) if e["name"] == f"{migration}--2"]
        assert json.loads(run.emulator.status(second["executionArn"])["input"]) == ordered_plan
        # The second attempt really runs (it took the lease and opened its own gate); end it.
        run.api.post(run.wait_for_gate("cutover", nth=2).reject_link, reject)
        ended = run.wait_until(
            "the second attempt to end",
            lambda: (
                s
                if (s := run.emulator.status(second["executionArn"]))["status"] != "RUNNING"
                else None
            ),
        )
        assert ended["status"] == "FAILED"
        assert main(retry, session=session()) == 0  # a third attempt after the second
        assert f"started {migration}--3\n" in capsys.readouterr().out
        (third,) = [e for e in executions(run.emulator) if e["name"] == f"{migration}--3"]
        run.api.post(run.wait_for_gate("cutover", nth=3).reject_link, reject)
        run.wait_until(
            "the third attempt to end",
            lambda: run.emulator.status(third["executionArn"])["status"] != "RUNNING" or None,
        )
        assert run.parameter_values() == run.initial  # each attempt rolled back

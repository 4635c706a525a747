"""The operator's policy, checked: `mq-cutover preflight`, `start`, `start --at`, `status` and
`report` run against the emulator (the real CLI code, `main([...])`), every boto3 call they make
is recorded (cli/mq_cutover_cli/call_log.py) and each one must be allowed by the template's
OperatorPolicy (tests/iam_policies.py evaluates it as IAM would). The other way round too: every
statement and every action the policy grants is needed by some call, and removing one is caught.

What the operator does not get: the decision API. `status` asks it for an open gate's votes as
the caller; that needs ApproverPolicy and a registered approver (README "IAM")."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.plan import parse_plan
from mq_cutover_cli import call_log
from mq_cutover_cli.call_log import AwsCall
from mq_cutover_cli.cli import main
from mq_cutover_cli.harness import STACK_NAME as STACK
from mq_cutover_cli.harness import Emulator, SimClock
from mq_cutover_cli.live import LiveRun, _drive_to_an_end
from mq_cutover_cli.world import default_world
from tests import iam_policies as iam
from tests.workflow.test_operate import deploy, iam_user, plan_file, session

pytestmark = pytest.mark.workflow

OPERATOR = "OperatorPolicy"  # the recorded calls' "function": the person running the CLI
APPROVE = {"decision": "approve", "comment": "window confirmed"}


@dataclass
class OperatorRun:
    """What the commands did, and the IAM requests their calls make."""

    exits: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[AwsCall, list[iam.Request]]] = field(default_factory=list)
    decision_requests: list[tuple[str, str]] = field(default_factory=list)
    stack: iam.Stack | None = None

    def policy(self) -> list[dict[str, Any]]:
        assert self.stack is not None
        return self.stack.managed_policy_statements(OPERATOR)

    def violations(self, statements: list[dict[str, Any]] | None = None) -> list[str]:
        policy = self.policy() if statements is None else statements
        return iam.violations(self.requests, lambda _function: policy)

    def operations(self) -> set[str]:
        return {f"{call.service}.{call.operation}" for call, _ in self.requests}


def _stack(emulator: Emulator) -> iam.Stack:
    """The policies with the emulator's stack parameters and its stack's real id."""
    declared = iam.transformed_template().get("Parameters", {})
    parameters = {k: v for k, v in emulator.stack_parameters.items() if k in declared}
    described = emulator.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    return iam.Stack(parameters=parameters, stack_id=str(described[0]["StackId"]))


@pytest.fixture(scope="module")
def operator_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorRun]:
    """One migration, operated from the terminal as the operator would: preflight, start at a
    time, start now, status at the cutover gate, the approvers decide, status and report after
    the run, and a preflight of a plan that adopts the broker the run created."""
    from tests.conftest import load_event

    plan = load_event("plan-ordered.json")
    migration = plan["migrationId"]
    tmp = tmp_path_factory.mktemp("operator")
    path = plan_file(tmp, plan)
    done = OperatorRun()
    parsed = parse_plan(plan)
    world = default_world(parsed)
    world.fill_defaults(parsed)
    emulator = Emulator(SimClock())
    with call_log.recording() as calls, emulator.running():
        world.install(emulator, parsed)
        deploy(emulator)
        operator = session(iam_user(emulator, "olga"))  # an operator, not an approver
        run: LiveRun | None = None

        def command(label: str, argv: list[str], **kwargs: Any) -> None:
            said = io.StringIO()
            with (
                call_log.invoking(OPERATOR),
                contextlib.redirect_stdout(said),
                contextlib.redirect_stderr(said),
            ):
                done.exits[label] = main(argv, session=operator, **kwargs)
            done.outputs[label] = said.getvalue()

        try:
            command("preflight", ["preflight", "--plan", path, "--stack", STACK])
            tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT02:00:00")
            at = ["--at", tomorrow, "--time-zone", "Europe/Paris"]
            command("start --at", ["start", "--plan", path, "--stack", STACK, *at])
            # By reference: uploaded to the plan bucket; status and report read it back.
            command("start", ["start", "--plan", path, "--stack", STACK, "--by-reference"])
            sfn = emulator.client("stepfunctions")
            (execution,) = sfn.list_executions(stateMachineArn=emulator.state_machine_arn)[
                "executions"
            ]
            ssm = emulator.client("ssm")
            initial = {n: ssm.get_parameter(Name=n)["Parameter"]["Value"] for n in world.parameters}
            run = LiveRun(emulator, str(execution["executionArn"]), parsed, world, initial)
            email = run.wait_for_gate("cutover")

            api = run.api

            def transport(
                method: str, url: str, headers: dict[str, str], body: bytes | None
            ) -> tuple[int, dict[str, str], bytes]:
                done.decision_requests.append((method, url))
                return api.signed(method, url, headers, body)

            command(
                "status at a gate", ["status", migration, "--stack", STACK], transport=transport
            )
            assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 200
            assert (
                run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)["statusCode"]
                == 200
            )
            assert run.wait_until_done()["status"] == "SUCCEEDED"
            command("status", ["status", migration, "--stack", STACK])
            report = ["report", migration, "--stack", STACK, "--json", str(tmp / "r.json")]
            command("report", [*report, "--html", str(tmp / "r.html")])
            # A run started with a plan in Parameter Store (as a schedule's CutoverPlanRef may
            # name it): status reads the plan from under the plan parameter prefix.
            in_ssm = {**plan, "migrationId": "orders-ssm"}
            named = emulator.put_plan(json.dumps(in_ssm), "orders-ssm", "ssm")
            emulator.start(json.dumps(named), name="orders-ssm")
            command("status (ssm)", ["status", "orders-ssm", "--stack", STACK])

            broker = emulator.client("mq").list_brokers()["BrokerSummaries"][0]["BrokerId"]
            adopting = {**plan, "migrationId": "orders-adopt", "target": {"adoptBrokerId": broker}}
            adopt_path = plan_file(tmp, adopting, "adopt.json")
            command("preflight (adopt)", ["preflight", "--plan", adopt_path, "--stack", STACK])
            # Queues found by pattern (ListMetrics) and an EC2 stop (DescribeInstances).
            other = {
                **plan,
                "migrationId": "orders-ec2",
                "onPrem": {**plan["onPrem"], "queues": ["orders.*"]},
                "stopOnPrem": {"method": "ec2-stop", "instanceIds": ["i-0a1b2c3d4e5f60718"]},
            }
            other_path = plan_file(tmp, other, "ec2.json")
            command("preflight (ec2)", ["preflight", "--plan", other_path, "--stack", STACK])

            authorizations = iam.Authorizations(emulator.client)
            done.requests = [
                (call, authorizations.requests(call)) for call in calls if call.function == OPERATOR
            ]
            done.stack = _stack(emulator)
        finally:
            listed = emulator.client("stepfunctions").list_executions(
                stateMachineArn=emulator.state_machine_arn
            )["executions"]
            for execution in listed:
                _drive_to_an_end(emulator, str(execution["executionArn"]))
    yield done


# ------------------------------------------------------------------------ the calls, checked
def test_every_call_the_operators_commands_make_is_allowed(operator_run: OperatorRun) -> None:
    assert operator_run.exits == {
        "preflight": 0,
        "start --at": 0,
        "start": 0,
        "status at a gate": 0,
        "status": 0,
        "report": 0,
        "status (ssm)": 0,
        "preflight (adopt)": 1,  # the plan's parameters were moved by the run: refused
        "preflight (ec2)": 1,  # and the instance does not exist
    }
    # The recorder saw each command's calls (an empty list would prove nothing).
    assert {
        "cloudformation.DescribeStacks",
        "stepfunctions.ListExecutions",
        "stepfunctions.DescribeStateMachine",
        "stepfunctions.StartExecution",
        "stepfunctions.DescribeExecution",
        "stepfunctions.GetExecutionHistory",
        "scheduler.CreateSchedule",
        "ssm.GetParameters",
        "ssm.GetParameterHistory",
        "ssm.GetParametersByPath",
        "secretsmanager.DescribeSecret",
        "secretsmanager.GetSecretValue",
        "mq.DescribeBroker",
        "cloudwatch.GetMetricData",
        "cloudwatch.ListMetrics",
        "ec2.DescribeInstances",
        "s3.PutObject",
        "s3.GetObject",
        "ssm.GetParameter",
    } <= operator_run.operations()
    assert "  plan:      ssm:/mq-cutover-plans/orders-ssm\n" in operator_run.outputs["status (ssm)"]
    assert "  plan:      s3://" in operator_run.outputs["status"]
    assert "not readable" not in operator_run.outputs["status"]
    found = operator_run.violations()
    assert not found, "calls OperatorPolicy does not allow:\n" + "\n".join(found)


def test_the_policy_grants_nothing_the_commands_do_not_use(operator_run: OperatorRun) -> None:
    """Exactly: each action granted is one some call needs, and each statement, removed, is
    missed by a call (so every one of them is needed, and the check can fail)."""
    granted = {
        str(action).lower()
        for statement in operator_run.policy()
        for action in iam._as_list(statement["Action"])
    }
    used = {r.action.lower() for _, requests in operator_run.requests for r in requests}
    assert granted == used, f"granted, never used: {granted - used}; used: {used - granted}"
    policy = operator_run.policy()
    for index, statement in enumerate(policy):
        without = policy[:index] + policy[index + 1 :]
        assert operator_run.violations(without), f"{statement['Sid']} is not needed"


def test_a_missing_statement_is_caught_by_name(operator_run: OperatorRun) -> None:
    without_pass_role = [
        s for s in operator_run.policy() if s.get("Sid") != "GiveTheScheduleItsRole"
    ]
    assert operator_run.violations(without_pass_role) == [
        f"{OPERATOR}: scheduler.CreateSchedule needs iam:PassRole on "
        f"arn:aws:iam::{iam.ACCOUNT}:role/CutoverScheduleRole with "
        "{'iam:PassedToService': 'scheduler.amazonaws.com'}"
    ]
    without_history = [
        s for s in operator_run.policy() if s.get("Sid") != "ReadThisStateMachinesExecutions"
    ]
    found = operator_run.violations(without_history)
    assert any(
        "stepfunctions.GetExecutionHistory needs states:GetExecutionHistory" in line
        for line in found
    )
    assert all(line.startswith(f"{OPERATOR}: stepfunctions.") for line in found), found


# ------------------------------------------------------------------- what the policy scopes
def test_the_operator_cannot_decide_change_or_reach_another_stack(
    operator_run: OperatorRun,
) -> None:
    stack = operator_run.stack
    assert stack is not None
    policy = operator_run.policy()
    api = stack.ref("ApprovalApi")
    execute = f"arn:aws:execute-api:{iam.REGION}:{iam.ACCOUNT}:{api}/dev"
    machine = stack.ref("MigrationStateMachine")
    execution = iam.arn("states", "execution:MigrationStateMachine:orders-2026-12-01")
    schedule = iam.arn("scheduler", f"schedule/default/{STACK}.orders-2026-12-01")
    role = stack.get_att("CutoverScheduleRole", "Arn")
    to_scheduler = {"iam:PassedToService": "scheduler.amazonaws.com"}
    assert iam.is_allowed(policy, "scheduler:CreateSchedule", schedule)
    assert iam.is_allowed(policy, "iam:PassRole", role, to_scheduler)
    forbidden = [
        # Votes and aborts go through the decision API as an approver, never around it.
        ("execute-api:Invoke", f"{execute}/GET/decisions/orders-2026-12-01"),
        ("execute-api:Invoke", f"{execute}/POST/decisions/orders-2026-12-01"),
        ("states:SendTaskSuccess", "*"),
        ("states:SendTaskFailure", "*"),
        ("states:StopExecution", execution),
        ("dynamodb:GetItem", stack.get_att("ApprovalsTable", "Arn")),
        ("dynamodb:UpdateItem", stack.get_att("MigrationsTable", "Arn")),
        ("secretsmanager:GetSecretValue", stack.ref("ApprovalLinkKey")),
        # The run changes client parameters, not the operator.
        ("ssm:PutParameter", iam.parameter_arn("/mq-cutover/orders/checkout/broker-url")),
        ("ssm:GetParameter", iam.parameter_arn("/other-app/broker-url")),
        ("ssm:PutParameter", iam.parameter_arn(f"/mq-cutover-approvers/{STACK}/olga")),
        ("sns:Subscribe", stack.ref("ApprovalTopic")),
        # Another stack's state machine, executions and schedules.
        ("states:StartExecution", machine.replace("MigrationStateMachine", "OtherMachine")),
        ("states:GetExecutionHistory", execution.replace("MigrationStateMachine", "Other")),
        ("scheduler:CreateSchedule", schedule.replace(f"/{STACK}.", f"/{STACK}-2.")),
        ("scheduler:CreateSchedule", schedule.replace(f"/{STACK}.", "/other.")),
        ("scheduler:CreateSchedule", schedule.replace("/default/", "/other-group/")),
        ("scheduler:DeleteSchedule", schedule),
        # Plans: the operator's under plans/ only; the validated copies are the run's.
        ("s3:PutObject", iam.object_arn(stack.ref("PlanBucket"), "validated/orders/x.mqc1")),
        ("s3:GetObject", iam.object_arn(stack.ref("PlanBucket"), "validated/orders/x.mqc1")),
        ("s3:DeleteObject", iam.object_arn(stack.ref("PlanBucket"), "plans/orders/x.json")),
        ("s3:PutObject", iam.object_arn("another-bucket", "plans/orders/x.json")),
        ("ssm:GetParameter", iam.parameter_arn("/other-plans/orders")),
    ]
    for action, resource in forbidden:
        assert not iam.is_allowed(policy, action, resource), (action, resource)
    # The schedule's role goes to Scheduler only, and no other role may be passed.
    assert not iam.is_allowed(
        policy, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    assert not iam.is_allowed(policy, "iam:PassRole", role, {})
    assert not iam.is_allowed(
        policy, "iam:PassRole", stack.get_att("ValidatePlanFunctionRole", "Arn"), to_scheduler
    )


def test_status_shows_votes_only_to_a_registered_approver(operator_run: OperatorRun) -> None:
    """status asked the decision API (GET /decisions/<id>) as the operator; that route is the
    approver's (ApproverPolicy, and a registered principal), so the operator alone sees the open
    gate without its votes."""
    assert operator_run.stack is not None
    ((method, url),) = operator_run.decision_requests
    assert method == "GET" and url.endswith("/decisions/orders-2026-12-01")
    api = operator_run.stack.ref("ApprovalApi")
    route = f"arn:aws:execute-api:{iam.REGION}:{iam.ACCOUNT}:{api}/dev/GET/decisions/"
    route += "orders-2026-12-01"
    assert not iam.is_allowed(operator_run.policy(), "execute-api:Invoke", route)
    said = operator_run.outputs["status at a gate"]
    assert "  gate:      cutover open since " in said
    assert "    votes not shown: " in said and "is not a registered approver" in said
    approver = operator_run.stack.managed_policy_statements("ApproverPolicy")
    assert iam.is_allowed(approver, "execute-api:Invoke", route)


# ----------------------------------------------------------------------- KMS, when given
def test_customer_keys_only_through_their_service(operator_run: OperatorRun) -> None:
    key = iam.arn("kms", "key/11111111-2222-3333-4444-555555555555")
    parameter = {"kms:ViaService": f"ssm.{iam.REGION}.amazonaws.com"}
    secret = {"kms:ViaService": f"secretsmanager.{iam.REGION}.amazonaws.com"}
    assert not iam.is_allowed(operator_run.policy(), "kms:Decrypt", key, parameter)
    given = iam.Stack(parameters={"ParameterKmsKeyArns": key, "BrokerSecretKmsKeyArns": key})
    policy = given.managed_policy_statements(OPERATOR)
    assert iam.is_allowed(policy, "kms:Decrypt", key, parameter)
    assert iam.is_allowed(policy, "kms:Decrypt", key, secret)
    assert not iam.is_allowed(policy, "kms:Decrypt", key, {})
    assert not iam.is_allowed(policy, "kms:Encrypt", key, parameter)
    other = iam.arn("kms", "key/66666666-7777-8888-9999-000000000000")
    assert not iam.is_allowed(policy, "kms:Decrypt", other, parameter)


def test_the_output_names_the_policy() -> None:
    outputs = iam.transformed_template()["Outputs"]
    assert outputs["OperatorPolicyArn"]["Value"] == {"Ref": OPERATOR}

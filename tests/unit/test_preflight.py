"""The preflight, check by check: an account seeded (moto, through the offline emulator's stack
and world) so that every check holds, then broken in one place per test. Each test asserts the
failing check's field and message, that every other check still holds, and that nothing in the
account was changed (the preflight only reads)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from mq_cutover import preflight
from mq_cutover.errors import AwsThrottled, PlanInvalid
from mq_cutover.metrics_bridge import Publishing, QueueStats, aggregate, put, sample_data
from mq_cutover.plan import parse_plan
from mq_cutover.preflight import Check, Clients, history_estimate, loop_events, run_checks
from mq_cutover.queue_set import QueueSet
from mq_cutover.validation import validate_plan
from mq_cutover_cli.cli import main
from mq_cutover_cli.harness import REGION, ROOT, STACK_NAME, Emulator
from mq_cutover_cli.live import live_run
from mq_cutover_cli.preflight_cmd import stack_settings
from mq_cutover_cli.world import World, default_world
from tests.conftest import load_event

ASL = json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())


@dataclass
class Account:
    emulator: Emulator
    plan: dict[str, Any]
    world: World

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    def checks(self, plan: dict[str, Any] | None = None, **kwargs: Any) -> list[Check]:
        settings = stack_settings(self.client("cloudformation"), STACK_NAME)
        return run_checks(
            plan or self.plan,
            settings,
            Clients.from_factory(self.client),
            now=self.emulator.clock.now(),
            **kwargs,
        )

    def state(self) -> dict[str, Any]:
        """What a change would show: parameter versions, brokers, commands, secrets, subnets."""
        ssm = self.client("ssm")
        return {
            "parameters": {
                name: ssm.get_parameter(Name=name)["Parameter"]["Version"]
                for name in self.world.parameters
            },
            "brokers": self.client("mq").list_brokers()["BrokerSummaries"],
            "commands": ssm.list_commands()["Commands"],
            "secrets": [
                s["Name"] for s in self.client("secretsmanager").list_secrets()["SecretList"]
            ],
            "executions": self.client("stepfunctions").list_executions(
                stateMachineArn=self.emulator.state_machine_arn
            )["executions"],
        }


@contextmanager
def account(
    plan: dict[str, Any] | None = None, world: dict[str, Any] | None = None, **emulator: Any
) -> Iterator[Account]:
    plan = copy.deepcopy(plan or load_event("plan-ordered.json"))
    parsed = parse_plan(plan)
    the_world = World.from_document(world) if world else default_world(parsed)
    the_world.fill_defaults(parsed)
    instance = Emulator(**emulator)
    with instance.running():
        the_world.install(instance, parsed)
        yield Account(instance, plan, the_world)


def failed(checks: list[Check]) -> list[Check]:
    return [check for check in checks if not check.ok]


def only_failure(acct: Account, plan: dict[str, Any] | None = None, **kwargs: Any) -> Check:
    """The one failing check (and the account unchanged by the checks)."""
    before = acct.state()
    checks = acct.checks(plan, **kwargs)
    assert acct.state() == before, "the preflight changed the account"
    bad = failed(checks)
    assert len(bad) == 1, [check.line() for check in bad]
    assert bad[0].fix, "a failed check says how to fix it"
    return bad[0]


def test_a_prepared_account_passes_every_check() -> None:
    with account() as acct:
        checks = acct.checks()
    assert failed(checks) == []
    assert [c.field for c in checks] == [
        "approvals",
        "migrationId",
        "producers.parameters",
        "consumers.parameters",
        "target.create.engineVersion",
        "target.create.hostInstanceType",
        "target.create.subnetIds",
        "target.create.securityGroups",
        "target.create.users[0].passwordSecretArn",
        "onPrem.metrics",
        "stopOnPrem.targetTags",
        "(plan)",
    ]


# ------------------------------------------------------------------------------ parameters
def test_a_missing_parameter() -> None:
    with account() as acct:
        name = acct.plan["producers"]["parameters"][1]
        acct.client("ssm").delete_parameter(Name=name)
        acct.world.parameters.pop(name)
        check = only_failure(acct)
    assert check.field == "producers.parameters[1]"
    assert check.problem == f"{name} does not exist"


def test_a_parameter_outside_the_stack_prefix() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["consumers"]["parameters"][0] = "/other-team/url"
        acct.client("ssm").put_parameter(Name="/other-team/url", Value="x", Type="String")
        check = only_failure(acct, plan)
    assert check.field == "consumers.parameters[0]"
    assert check.problem == (
        "/other-team/url is outside /mq-cutover/, the only path this stack may change"
    )


def test_a_string_list_parameter_is_not_writable() -> None:
    with account() as acct:
        name = acct.plan["consumers"]["parameters"][1]
        ssm = acct.client("ssm")
        ssm.delete_parameter(Name=name)
        ssm.put_parameter(Name=name, Value=acct.world.parameters[name], Type="StringList")
        check = only_failure(acct)
    assert check.field == "consumers.parameters[1]"
    assert "is a StringList" in check.problem


def test_a_parameter_that_already_points_elsewhere() -> None:
    with account() as acct:
        name = acct.plan["producers"]["parameters"][0]
        acct.client("ssm").put_parameter(
            Name=name, Value="ssl://someone-else:61617", Type="String", Overwrite=True
        )
        check = only_failure(acct)
    assert check.field == "producers.parameters[0]"
    assert check.problem == (
        f"{name} does not point at the on-prem broker (onPrem.url): it holds "
        "ssl://someone-else:61617"
    )


# ------------------------------------------------------------------------------ metrics
def test_a_queue_without_metrics_is_missing_not_empty() -> None:
    plan = load_event("plan-ordered.json")
    plan["onPrem"]["queues"].append("orders.refunded")
    world = {"queues": [{"name": q, "messages": 10} for q in plan["onPrem"]["queues"][:4]]}
    with account(plan, world) as acct:
        check = only_failure(acct)
    assert check.field == "onPrem.queues"
    assert "for 1 queue(s): orders.refunded (missing is never zero)" in check.problem


def test_stale_metrics() -> None:
    with account() as acct:
        acct.emulator.clock.advance(240)  # the bridge stopped 4 minutes ago
        check = only_failure(acct)
    assert check.field == "onPrem.queues"
    assert check.problem.startswith("figures older than 180 s for 3 queue(s): orders.created (")


def _bridge_sample(acct: Account, consumers: dict[str, int], plan: Any = None) -> None:
    """One sample of every world queue, published by the product's bridge code (aggregates and
    detail), with these queues' consumer counts (the others keep one)."""
    parsed = parse_plan(plan or acct.plan)
    metrics = parsed.on_prem.metrics
    stats = [
        QueueStats(q.name, q.messages, 0, q.messages, 0, consumers.get(q.name, 1))
        for q in acct.world.queues
    ]
    queue_set = QueueSet.from_plan(parsed)
    data = sample_data(
        aggregate(stats, queue_set),
        metrics,
        acct.emulator.clock.now(),
        publishing=Publishing(queue_set=queue_set),
        high_resolution=metrics.period_seconds < 60,
        queues_read=len(stats),
        detail=stats,
    )
    put(acct.client("cloudwatch"), metrics.namespace, data)


def test_a_queue_without_consumers() -> None:
    with account() as acct:
        acct.emulator.clock.advance(60)  # the bridge's next sample: orders.paid's readers left
        _bridge_sample(acct, {"orders.paid": 0})
        check = only_failure(acct)
    assert check.field == "onPrem.queues"
    # Counted from the aggregates (SetQueuesWithConsumers); named only when the detail can tell.
    assert check.problem.startswith("no consumer on-prem for 1 queue(s)")


def test_a_queue_without_consumers_per_queue_readings() -> None:
    plan = load_event("plan-ordered.json")
    plan["onPrem"]["metrics"]["readings"] = "perQueue"
    with account(plan) as acct:
        metrics = acct.plan["onPrem"]["metrics"]
        acct.emulator.clock.advance(60)
        acct.client("cloudwatch").put_metric_data(
            Namespace=metrics["namespace"],
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [
                        {"Name": "Broker", "Value": "onprem-1"},
                        {"Name": "Queue", "Value": queue.name},
                    ],
                    "Timestamp": acct.emulator.clock.now(),
                    "Value": value,
                }
                for queue in acct.world.queues
                for name, value in (
                    ("QueueSize", queue.messages),
                    ("InFlightCount", 0),
                    ("EnqueueCount", queue.messages),
                    ("ConsumerCount", 0 if queue.name == "orders.paid" else 1),
                )
            ],
        )
        check = only_failure(acct)
    assert check.field == "onPrem.queues"
    assert check.problem.startswith("no consumer on-prem for 1 queue(s): orders.paid")


def test_a_bridge_watching_another_queue_set_is_found_before_the_window() -> None:
    """The plan watches fewer queues than the bridge was started with: no aggregates under the
    plan's QueueSet digest. Found by the preflight, never read as empty."""
    plan = load_event("plan-ordered.json")
    with account(plan) as acct:
        narrowed = copy.deepcopy(plan)
        narrowed["onPrem"]["queues"] = [acct.world.queues[0].name]
        acct.emulator.clock.advance(300)  # the full set's samples are now stale
        _bridge_sample(acct, {})  # the bridge still publishes the plan-ordered set
        checks = failed(acct.checks(narrowed))
    problems = [c.problem for c in checks if c.field == "onPrem.metrics"]
    assert problems and "no recent aggregates for QueueSet" in problems[0], problems
    digest = QueueSet.from_plan(parse_plan(narrowed)).digest
    assert digest in problems[0]


# ------------------------------------------------------------------------------ hosts
HOST = "mi-0a1b2c3d4e5f60718"


def plan_stopping_on(host: str) -> dict[str, Any]:
    plan = load_event("plan-ordered.json")
    plan["stopOnPrem"] = {"method": "ssm-command", "commands": ["stop"], "instanceIds": [host]}
    return plan


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("ConnectionLost", f"{HOST} is ConnectionLost: a command would never reach it"),
        ("absent", f"{HOST} is not an SSM managed instance (no SSM Agent registered)"),
    ],
)
def test_a_host_that_is_not_online(status: str, message: str) -> None:
    with account(plan_stopping_on(HOST), {"hosts": {HOST: status}}) as acct:
        check = only_failure(acct)
    assert check.field == "stopOnPrem.instanceIds"
    assert check.problem == message


def test_a_host_without_the_stack_tag() -> None:
    with account(plan_stopping_on(HOST)) as acct:
        acct.world.managed_hosts[HOST].clear()  # registered, online, never tagged
        check = only_failure(acct)
    assert check.field == "stopOnPrem.instanceIds"
    assert check.problem.startswith(f"{HOST} not tagged mq-cutover:on-prem=true")


def test_no_host_carries_the_target_tags() -> None:
    plan = load_event("plan-ordered.json")
    with account(plan) as acct:
        plan["stopOnPrem"]["targetTags"] = {"role": ["broker"]}
        check = only_failure(acct, plan)
    assert check.field == "stopOnPrem.targetTags"
    assert check.problem == "no SSM managed instance carries role=broker"


def test_an_ec2_stop_target_not_tagged() -> None:
    plan = load_event("plan-ordered.json")
    plan["stopOnPrem"] = {"method": "ec2-stop", "instanceIds": ["i-0a1b2c3d4e5f60718"]}
    with account(plan) as acct:
        acct.client("ec2").delete_tags(
            Resources=["i-0a1b2c3d4e5f60718"], Tags=[{"Key": "mq-cutover:on-prem"}]
        )
        check = only_failure(acct)
    assert check.field == "stopOnPrem.instanceIds"
    assert check.problem == (
        "EC2 instance i-0a1b2c3d4e5f60718 is not tagged mq-cutover:on-prem=true: the stack may "
        "not stop it"
    )


# ------------------------------------------------------------------------------ secrets
def test_a_missing_secret() -> None:
    with account() as acct:
        acct.client("secretsmanager").delete_secret(
            SecretId="mq-cutover/orders-app", ForceDeleteWithoutRecovery=True
        )
        check = only_failure(acct)
    assert check.field == "target.create.users[0].passwordSecretArn"
    assert check.problem == "secret mq-cutover/orders-app does not exist"


def test_a_secret_outside_the_stack_prefix() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        user = plan["target"]["create"]["users"][0]
        user["passwordSecretArn"] = user["passwordSecretArn"].replace("mq-cutover/", "team/")
        check = only_failure(acct, plan)
    assert check.field == "target.create.users[0].passwordSecretArn"
    assert check.problem.startswith(
        "secret team/orders-app is outside the stack's BrokerUserSecretsPrefix mq-cutover/"
    )


def test_a_password_amazon_mq_would_refuse() -> None:
    with account() as acct:
        acct.client("secretsmanager").put_secret_value(
            SecretId="mq-cutover/orders-app", SecretString=json.dumps({"password": "short:1"})
        )
        check = only_failure(acct)
    assert check.problem == (
        "secret mq-cutover/orders-app: the password is shorter than 12 characters; Amazon MQ "
        "would refuse it"
    )
    assert "short:1" not in check.line()


# ------------------------------------------------------------------------------ network, engine
def test_subnets_in_one_zone() -> None:
    plan = load_event("plan-ordered.json")
    subnets = plan["target"]["create"]["subnetIds"]
    with account(plan, {"subnetZones": {s: "us-east-1a" for s in subnets}}) as acct:
        check = only_failure(acct)
    assert check.field == "target.create.subnetIds"
    assert check.problem.startswith(f"subnets share an Availability Zone ({', '.join(subnets)} in")


def test_a_subnet_that_does_not_exist() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["target"]["create"]["subnetIds"][1] = "subnet-0fffffffffffffff0"
        bad = failed(acct.checks(plan))
    assert [(c.field, c.problem) for c in bad] == [
        (
            "target.create.subnetIds[1]",
            "subnet subnet-0fffffffffffffff0 does not exist in this account and region",
        ),
        # the one subnet left is in one zone: active/standby needs two
        (
            "target.create.subnetIds",
            "ACTIVE_STANDBY_MULTI_AZ needs two subnets in two Availability Zones",
        ),
    ]


def test_a_security_group_that_does_not_exist() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["target"]["create"]["securityGroups"] = ["sg-0fffffffffffffff0"]
        check = only_failure(acct, plan)
    assert check.field == "target.create.securityGroups[0]"
    assert check.problem == (
        "security group sg-0fffffffffffffff0 does not exist in this account and region"
    )


def test_an_engine_version_amazon_mq_does_not_offer() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["target"]["create"]["engineVersion"] = "5.15"
        bad = failed(acct.checks(plan))
    assert [c.field for c in bad] == [
        "target.create.engineVersion",
        "target.create.hostInstanceType",  # no instance type offers 5.15 either
    ]
    assert bad[0].problem == "Amazon MQ does not offer ACTIVEMQ 5.15 here"
    assert bad[0].fix == "choose one of 5.18, 5.17.6"


def test_an_instance_type_not_offered_for_the_deployment_mode() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["target"]["create"]["hostInstanceType"] = "mq.t3.micro"
        check = only_failure(acct, plan)
    assert check.field == "target.create.hostInstanceType"
    assert check.problem == "mq.t3.micro is not offered for ACTIVEMQ 5.18 ACTIVE_STANDBY_MULTI_AZ"


def test_an_adopted_broker_that_does_not_exist() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        del plan["target"]["create"]
        plan["target"]["adoptBrokerId"] = "b-0000"
        check = only_failure(acct, plan)
    assert (check.field, check.problem) == ("target.adoptBrokerId", "broker b-0000 not found")


# ------------------------------------------------------------------------------ approvals, runs
def test_no_confirmed_subscription_means_no_approver() -> None:
    with account(approvers=()) as acct:
        check = only_failure(acct)
    assert check.field == "approvals"
    assert check.problem.startswith("the stack has no approver who can vote")


def test_a_running_attempt_of_the_same_migration(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as first:
        first.wait_for_gate("cutover")  # the first attempt runs, waiting at its gate
        acct = Account(first.emulator, ordered_plan, first.world)
        check = only_failure(acct)
        # Validate Plan leaves a running attempt to its next step, Take Migration Lease.
        mine = acct.checks(execution_name="orders-2026-12-01--2")
    assert check.field == "migrationId"
    assert check.problem == "migration orders-2026-12-01 is already running as orders-2026-12-01"
    assert failed(mine) == [] and "migrationId" not in [c.field for c in mine]


def test_the_history_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "HISTORY_LIMIT", 1000)
    with account() as acct:
        check = only_failure(acct)
    assert check.field == "(plan)"
    # The estimate comes from the ASL (it moves when states are added): its form, and over 1,000.
    estimate = re.match(
        r"a run could take ([\d,]+) history events \(stopOnPrem [\d,]+,", check.problem
    )
    assert estimate and int(estimate.group(1).replace(",", "")) > 1000, check.problem
    assert check.problem.endswith("Step Functions stops an execution at 1,000, with no rollback")


def test_a_check_that_cannot_be_made_fails_closed() -> None:
    with account() as acct:
        real = acct.client

        class Denied:
            def __getattr__(self, name: str) -> Any:
                def call(*_args: Any, **_kwargs: Any) -> Any:
                    raise ClientError(
                        {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "ListMetrics"
                    )

                return call

        def client(service: str) -> Any:
            return Denied() if service == "cloudwatch" else real(service)

        settings = stack_settings(real("cloudformation"), STACK_NAME)
        checks = run_checks(acct.plan, settings, Clients.from_factory(client))
    (check,) = failed(checks)
    assert check.field == "onPrem.metrics"
    assert check.problem == "could not be checked: ListMetrics: AccessDenied (not allowed)"


# ------------------------------------------------------- AWS did not answer: retried, not refused
SECRET = "target.create.users[0].passwordSecretArn"
URL = "https://secretsmanager.us-east-1.amazonaws.com"
UNANSWERED = "could not be checked (AWS unreachable or throttled)"


def throttled(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation
    )


def session_where(operation: str, error: Exception) -> boto3.Session:
    """A session on the emulator whose `<service id>.<Operation>` call raises `error` instead
    of reaching the service: a simulated fault, what botocore raises once its own retries are
    used up. Every other call is real (a new session: no cached client gets the fault)."""
    session = boto3.Session(region_name=REGION)

    def fault(**_: Any) -> None:
        raise error

    session.events.register_first(f"before-call.{operation}", fault)
    return session


def validated(acct: Account, session: boto3.Session) -> Any:
    """Validate Plan's checks (the function's path: stop at the first unanswered check)."""
    return validate_plan(
        acct.plan,
        execution_name="orders-2026-12-01",
        stack=stack_settings(acct.client("cloudformation"), STACK_NAME),
        clients=Clients.from_factory(session.client),
        now=acct.emulator.clock.now(),
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        pytest.param(
            throttled("DescribeSecret"),
            "DescribeSecret: ThrottlingException (Rate exceeded)",
            id="throttled",
        ),
        pytest.param(
            EndpointConnectionError(endpoint_url=URL),
            f'EndpointConnectionError: Could not connect to the endpoint URL: "{URL}"',
            id="no-connection",
        ),
        pytest.param(
            ConnectTimeoutError(endpoint_url=URL),
            f'ConnectTimeoutError: Connect timeout on endpoint URL: "{URL}"',
            id="connect-timeout",
        ),
        pytest.param(
            ReadTimeoutError(endpoint_url=URL),
            f'ReadTimeoutError: Read timeout on endpoint URL: "{URL}"',
            id="read-timeout",
        ),
    ],
)
def test_a_check_aws_does_not_answer_is_retried_not_refused(error: Exception, said: str) -> None:
    with account() as acct:
        before = acct.state()
        with pytest.raises(AwsThrottled) as raised:
            validated(acct, session_where("secrets-manager.DescribeSecret", error))
        assert acct.state() == before
    assert str(raised.value) == f"{SECRET}: {UNANSWERED}: {said}"
    assert raised.value.__cause__ is error


def test_throttled_metrics_are_retried_not_refused() -> None:
    """CloudWatch throttled past botocore's retries (drain's readings raise AwsThrottled)."""
    with account() as acct:
        session = session_where("cloudwatch.GetMetricData", throttled("GetMetricData"))
        with pytest.raises(AwsThrottled) as raised:
            validated(acct, session)
    assert str(raised.value) == (
        f"onPrem.metrics: {UNANSWERED}: GetMetricData: ThrottlingException (Rate exceeded)"
    )
    assert isinstance(raised.value.__cause__, ClientError)


def test_access_denied_is_a_refusal_naming_the_field() -> None:
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DescribeSecret"
    )
    with account() as acct, pytest.raises(PlanInvalid) as refused:
        validated(acct, session_where("secrets-manager.DescribeSecret", denied))
    assert refused.value.problems == [
        f"{SECRET}: could not be checked: DescribeSecret: AccessDeniedException (not allowed)"
    ]


def test_a_finding_before_an_unanswered_check_is_still_a_refusal() -> None:
    """The secret is missing (a finding); then CloudWatch does not answer: the plan is refused
    for the secret, and the metrics are named as not checked (no retry would change that)."""
    with account() as acct:
        acct.client("secretsmanager").delete_secret(
            SecretId="mq-cutover/orders-app", ForceDeleteWithoutRecovery=True
        )
        session = session_where("cloudwatch.GetMetricData", throttled("GetMetricData"))
        with pytest.raises(PlanInvalid) as refused:
            validated(acct, session)
    assert refused.value.problems == [
        f"{SECRET}: secret mq-cutover/orders-app does not exist",
        f"onPrem.metrics: {UNANSWERED}: GetMetricData: ThrottlingException (Rate exceeded)",
    ]


def test_a_plan_that_does_not_parse_is_one_check_per_field() -> None:
    plan = load_event("plan-ordered.json")
    del plan["target"]["create"]["engine"]
    checks = run_checks(plan, preflight.StackSettings(), Clients.from_factory(lambda _: None))
    assert [c.line() for c in checks] == [
        "❌ target.create.engine: Field required — fix: correct the plan (mq-cutover schema "
        "prints the plan's JSON Schema)"
    ]


# ------------------------------------------------------------------------------ history budget
def test_the_loops_events_come_from_the_state_machine() -> None:
    states = ASL["States"]
    # Check Drain (a Lambda task: 5 events) -> Drained? (2) -> Wait For Drain (2).
    assert loop_events(states, "Wait For Drain") == 9
    assert loop_events(states, "Check Drain") == 9
    # An extension: the gate (a callback task: 6) -> Wait Longer? (2) -> Extend Drain (2) ->
    # Check Drain (5) -> Drained? (2).
    assert loop_events(states, "Extend Drain") == 17
    with pytest.raises(ValueError, match="on no loop"):
        loop_events(states, "Validate Plan")


def test_the_estimate_bounds_a_real_run_and_its_drain_loop(ordered_plan: dict[str, Any]) -> None:
    """A real offline run: each drain poll adds the ASL-derived events, and the whole history
    stays under the worst case estimated before the run."""
    from tests.workflow.conftest import run

    sim = run(ordered_plan)
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    drains = [
        e["id"]
        for e in sim.history
        if e.get("stateEnteredEventDetails", {}).get("name") == "Check Drain"
    ]
    assert len(drains) >= 2
    assert drains[1] - drains[0] == loop_events(ASL["States"], "Wait For Drain")
    estimate = history_estimate(parse_plan(ordered_plan), ASL)
    assert len(sim.history) <= sum(estimate.values())


# ------------------------------------------------------------------------------ the command
def cli(tmp_path: Path, plan: Any, *extra: str) -> int:
    path = tmp_path / "plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    session = boto3.Session(region_name=REGION)
    return main(["preflight", "--plan", str(path), "--stack", STACK_NAME, *extra], session=session)


def test_the_command_prints_a_line_per_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with account() as acct:
        assert cli(tmp_path, acct.plan) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("✅ approvals: 3 approver(s) with a confirmed subscription")
        assert "✅ target.create.subnetIds: 2 subnet(s) exist in 2 Availability Zone(s)" in (
            "\n".join(lines)
        )
        assert lines[-1] == "all 12 checks passed"

        acct.client("secretsmanager").delete_secret(
            SecretId="mq-cutover/orders-app", ForceDeleteWithoutRecovery=True
        )
        assert cli(tmp_path, acct.plan) == 1
        out = capsys.readouterr().out.splitlines()
        assert (
            "❌ target.create.users[0].passwordSecretArn: secret mq-cutover/orders-app does not "
            "exist — fix: create it (aws secretsmanager create-secret) with the broker user's "
            "password, or correct the ARN (a secret's ARN ends with a random suffix)"
        ) in out
        assert out[-1] == "1 of 12 checks failed: fix them before the window"

        assert cli(tmp_path, acct.plan, "--json") == 1
        listed = json.loads(capsys.readouterr().out)
        assert len(listed) == 12
        bad = [c for c in listed if not c["ok"]]
        assert bad == [
            {
                "field": "target.create.users[0].passwordSecretArn",
                "check": "secret",
                "ok": False,
                "problem": "secret mq-cutover/orders-app does not exist",
                "fix": bad[0]["fix"],
                "detail": "",
                "transient": False,
            }
        ]


def test_an_unreadable_plan_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with account():
        assert cli(tmp_path, "{not json") == 2
        assert capsys.readouterr().err.startswith("mq-cutover: the plan is not JSON:")
        session = boto3.Session(region_name=REGION)
        missing = str(tmp_path / "nowhere.json")
        assert main(["preflight", "--plan", missing, "--stack", STACK_NAME], session=session) == 2
        (tmp_path / "plan.json").write_text(json.dumps(load_event("plan-ordered.json")))
        no_stack = ["preflight", "--plan", str(tmp_path / "plan.json"), "--stack", "nope"]
        assert main(no_stack, session=session) == 3
        assert "DescribeStacks failed" in capsys.readouterr().err


def test_the_command_says_retry_when_aws_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 4, not 1: nothing was found wrong; the checks after it are still made."""
    path = tmp_path / "plan.json"
    with account() as acct:
        path.write_text(json.dumps(acct.plan))
        command = ["preflight", "--plan", str(path), "--stack", STACK_NAME]

        def preflight_where(operation: str, error: Exception, *extra: str) -> int:
            return main([*command, *extra], session=session_where(operation, error))

        assert preflight_where("cloudwatch.GetMetricData", throttled("GetMetricData")) == 4
        out = capsys.readouterr().out.splitlines()
        assert (
            f"⏳ onPrem.metrics: {UNANSWERED}: GetMetricData: ThrottlingException (Rate "
            "exceeded) — retry (nothing was found wrong here; run the preflight again)"
        ) in out
        assert "✅ stopOnPrem.targetTags: 1 host(s) online in SSM and tagged" in out[-3]
        assert out[-1] == (f"1 {UNANSWERED}: retry; the other 11 of 12 passed")

        unreachable = EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com")
        assert preflight_where("ssm.GetParameters", unreachable, "--json") == 4
        listed = json.loads(capsys.readouterr().out)
        assert [(c["field"], c["transient"]) for c in listed if not c["ok"]] == [
            ("producers.parameters[0]", True),
            ("producers.parameters[1]", True),
            ("consumers.parameters[0]", True),
            ("consumers.parameters[1]", True),
        ]

        acct.client("secretsmanager").delete_secret(
            SecretId="mq-cutover/orders-app", ForceDeleteWithoutRecovery=True
        )
        assert preflight_where("cloudwatch.GetMetricData", throttled("GetMetricData")) == 1
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"1 of 12 checks failed: fix them before the window; 1 {UNANSWERED}: retry"
        )


def test_start_starts_nothing_when_aws_does_not_answer_a_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`start` runs the same checks: an unanswered one starts nothing and says why (not
    "checks failed": nothing was found wrong)."""
    path = tmp_path / "plan.json"
    with account() as acct:
        path.write_text(json.dumps(acct.plan))
        session = session_where("cloudwatch.GetMetricData", throttled("GetMetricData"))
        assert main(["start", "--plan", str(path), "--stack", STACK_NAME], session=session) == 1
        captured = capsys.readouterr()
        assert f"⏳ onPrem.metrics: {UNANSWERED}" in captured.out
        assert captured.err == (
            "mq-cutover: preflight: AWS did not answer 1 of 12 checks (run start again); "
            "nothing was started\n"
        )
        sfn = acct.client("stepfunctions")
        machines = sfn.list_state_machines()["stateMachines"]
        assert machines  # the stack's state machine exists: a start would have run it
        assert all(
            not sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]
            for m in machines
        )


def test_patterns_matching_more_queues_than_amazon_mq_metrics_cover() -> None:
    """The plan's own rule counts listed names; queues found by a pattern are counted here:
    over AWS/AmazonMQ's 1,000 destinations the Amazon MQ side would not even see the rest."""
    plan = load_event("plan-scale-1000.json")
    world = load_event("plan-scale-1000-world.json")
    world["queues"].append({**world["queues"][0], "name": "app.queue-1000"})
    with account(plan, world) as acct:
        check = only_failure(acct)
        assert check.field == "target.metrics"
        assert check.problem.startswith(
            "onPrem.queues' patterns match 1001 queues on-prem (less onPrem.ignoreQueues), but "
            "Amazon MQ's own metrics (AWS/AmazonMQ) cover only a broker's first 1000 destinations"
        )
        bridged = copy.deepcopy(acct.plan)
        bridged["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
        assert failed(acct.checks(bridged)) == []

"""Validate Plan runs the preflight: a run whose account is not ready fails at its first step,
naming the plan field, before any change (no command sent, no parameter written, no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from mq_cutover.plan import parse_plan
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.simulate import Simulation
from mq_cutover_cli.world import default_world
from tests.workflow.conftest import NOT_STARTED, entered, run

pytestmark = pytest.mark.workflow

STOP_HOST, CLIENT_HOST = "mi-0a1b2c3d4e5f60718", "i-0c1d2e3f4a5b60718"


def nothing_changed(sim: Simulation, commands: list[Any]) -> None:
    report = sim.report
    assert report["execution"]["status"] == "FAILED"
    assert report["execution"]["error"] == "PlanInvalid"
    assert entered(sim) == NOT_STARTED
    scheduled = [
        (e["taskScheduledEventDetails"]["resourceType"], e["taskScheduledEventDetails"]["resource"])
        for e in sim.history
        if e["type"] == "TaskScheduled"
    ]
    assert scheduled == [("lambda", "invoke"), ("sns", "publish")]  # the check, the notice
    assert report["brokersCreated"] == [] and report["approvalEmails"] == []
    assert all(len(p["history"]) == 1 for p in report["parameters"].values())
    assert commands == []  # no SSM command was sent (read when the run had ended)


def count_commands(commands: list[Any]) -> Any:
    def after_run(emulator: Emulator, _arn: str) -> None:
        commands.extend(emulator.client("ssm").list_commands()["Commands"])

    return after_run


def test_a_missing_broker_user_secret_stops_the_run_at_validate_plan(
    ordered_plan: dict[str, Any],
) -> None:
    def remove_secret(emulator: Emulator) -> None:
        emulator.client("secretsmanager").delete_secret(
            SecretId="mq-cutover/orders-app", ForceDeleteWithoutRecovery=True
        )

    commands: list[Any] = []
    sim = run(ordered_plan, before_start=remove_secret, after_run=count_commands(commands))
    nothing_changed(sim, commands)
    assert sim.report["execution"]["cause"] == (
        "target.create.users[0].passwordSecretArn: secret mq-cutover/orders-app does not exist"
    )


def test_an_offline_host_stops_the_run_at_validate_plan(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["stopOnPrem"] = {
        "method": "ssm-command",
        "commands": ["systemctl stop activemq"],
        "instanceIds": [STOP_HOST],
    }
    ordered_plan["consumers"]["restartHook"] = {
        "commands": ["systemctl restart consumers"],
        "instanceIds": [CLIENT_HOST],
    }
    world = default_world(parse_plan(ordered_plan))
    world.host_status = {STOP_HOST: "ConnectionLost", CLIENT_HOST: "absent"}
    commands: list[Any] = []
    sim = run(ordered_plan, world=world, after_run=count_commands(commands))
    nothing_changed(sim, commands)
    assert sim.report["execution"]["cause"].split("; ") == [
        f"consumers.restartHook.instanceIds: {CLIENT_HOST} is not an SSM managed instance (no "
        "SSM Agent registered)",
        f"stopOnPrem.instanceIds: {STOP_HOST} is ConnectionLost: a command would never reach it",
    ]


def test_an_unreachable_endpoint_at_validate_plan_is_retried_and_the_run_goes_on(
    ordered_plan: dict[str, Any],
) -> None:
    """Validate Plan's first attempt cannot reach CloudWatch (simulated: what botocore raises
    once its own retries are used up): the step fails as AwsThrottled, its Retry runs it again,
    and the run goes on; the plan is not refused."""
    unreachable = EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com")
    fired: list[str] = []

    def arm(emulator: Emulator) -> None:
        # The function's own client (loaded with its module for this emulator): no other
        # handler or test sees the fault.
        cloudwatch = emulator.handlers["ValidatePlanFunction"].clients.cloudwatch
        assert cloudwatch is not emulator.client("cloudwatch")

        def once(**_: Any) -> None:
            if not fired:
                fired.append("GetMetricData")
                raise unreachable

        cloudwatch.meta.events.register_first(
            "before-call.cloudwatch.GetMetricData", once, unique_id="preflight-unreachable"
        )

    sim = run(ordered_plan, before_start=arm)
    assert fired == ["GetMetricData"]
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    failed = [e for e in sim.history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["AwsThrottled"]
    assert (
        "onPrem.metrics: could not be checked (AWS unreachable or throttled)"
        in (failed[0]["taskFailedEventDetails"]["cause"])
    )
    # Validate Plan entered once, its task run twice (the failed attempt, the retry), then the
    # next state.
    assert entered(sim)[:2] == ["Validate Plan", "Take Migration Lease"]
    lease = next(
        e["id"]
        for e in sim.history
        if e.get("stateEnteredEventDetails", {}).get("name") == "Take Migration Lease"
    )
    before_lease = [e["type"] for e in sim.history if e["id"] < lease]
    assert before_lease.count("TaskScheduled") == 2 and before_lease.count("TaskSucceeded") == 1
    assert failed[0]["id"] < lease

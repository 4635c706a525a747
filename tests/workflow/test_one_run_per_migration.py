"""One run per migration, a later attempt that resumes safely, and an older attempt that is
redriven after a later one took over: it changes nothing."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest

from mq_cutover.errors import LeaseLost
from mq_cutover_cli.harness import Emulator, LambdaContext
from mq_cutover_cli.live import _drive_to_an_end as drive_to_an_end
from mq_cutover_cli.live import live_run
from tests.conftest import load_event
from tests.workflow.conftest import entered, run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve"}


def test_a_second_execution_of_a_running_migration_is_refused(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as first:
        first.wait_for_gate("cutover")  # the first run holds the lease and waits at its gate
        emulator = first.emulator
        second = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
        status = first.wait_until(
            "the second run to end",
            lambda: s if (s := emulator.status(second))["status"] != "RUNNING" else None,
        )
        assert status["status"] == "FAILED" and status["error"] == "MigrationAlreadyRunning"
        assert "already being run by orders-2026-12-01 " in status["cause"]
        assert emulator.states_entered(second) == [
            "Validate Plan",
            "Take Migration Lease",
            "Describe Failure",
            "Route Failure",
            "Notify Not Started",
            "Not Started",
        ]
        # Nothing of the first run was touched, and it goes on.
        assert len(emulator.client("mq").list_brokers()["BrokerSummaries"]) == 1
        assert first.status()["status"] == "RUNNING"
        first.api.post(first.wait_for_gate("cutover").approve_link, APPROVE)
        first.api.post(first.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        assert first.wait_until_done()["status"] == "SUCCEEDED"


def test_a_later_attempt_after_a_rollback_adopts_the_broker_and_succeeds(
    ordered_plan: dict[str, Any],
) -> None:
    def second_attempt(emulator: Any, first_arn: str) -> None:
        # The first attempt was rejected at stopOnPrem and rolled back; now try again.
        arn = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
        from mq_cutover_cli.simulate import Approver

        approver = Approver(emulator, "auto")
        approver._read = len(emulator.inbox("ApprovalTopic"))  # the first run's mail is read
        import time

        deadline = time.monotonic() + 60
        while emulator.status(arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            approver.service()
            time.sleep(0.05)
        status = emulator.status(arn)
        assert status["status"] == "SUCCEEDED", status
        output = json.loads(status["output"])
        assert output["broker"]["created"] is False  # adopted: CreatorRequestId / tag
        assert len(emulator.client("mq").list_brokers()["BrokerSummaries"]) == 1
        ssm = emulator.client("ssm")
        for name in ordered_plan["producers"]["parameters"]:
            assert (
                ssm.get_parameter(Name=name)["Parameter"]["Value"] == output["broker"]["clientUrl"]
            )
        outcomes.append(status["status"])

    outcomes: list[str] = []
    first = run(ordered_plan, approve="reject:stopOnPrem", after_run=second_attempt)
    assert first.report["execution"]["status"] == "FAILED"
    assert outcomes == ["SUCCEEDED"]


def test_simulated_redrive_of_an_older_attempt_changes_nothing(
    ordered_plan: dict[str, Any],
) -> None:
    """Step Functions redrive resumes a failed execution from where it failed, past Take Migration
    Lease. Simulated: the first attempt waits at its cutover gate; a later attempt takes the
    lease meanwhile (the harness has Step Functions report the first as FAILED to it, as it was
    before being redriven); then the first goes on, as the redriven run would."""
    with live_run(ordered_plan) as first:
        gate = first.wait_for_gate("cutover")
        emulator = first.emulator
        sfn = emulator.handlers["TakeLeaseFunction"].sfn
        real_describe = sfn.describe_execution

        def first_failed(executionArn: str) -> dict[str, Any]:
            status = dict(real_describe(executionArn=executionArn))
            return {**status, "status": "FAILED"} if executionArn == first.arn else status

        with mock.patch.object(sfn, "describe_execution", first_failed):
            second = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
            try:
                second_gate = first.wait_for_gate("cutover", nth=2)  # it holds the lease now
                first.api.post(gate.approve_link, APPROVE)  # the old attempt goes on
                status = first.wait_until_done()
                assert status["status"] == "FAILED" and status["error"] == "LeaseLost"
                assert status["cause"].startswith(
                    "Stopped at Repoint Producers, nothing changed, nothing rolled back: execution "
                    "orders-2026-12-01 no longer holds migration orders-2026-12-01's lease: "
                    "orders-2026-12-01--2 holds it"
                )
                states = emulator.states_entered(first.arn)
                assert states[-5:] == [
                    "Repoint Producers",
                    "Describe Failure",
                    "Route Failure",
                    "Notify Not Ours",
                    "Not Ours",
                ]
                assert "Roll Back" not in states
                # Nothing in SSM changed: no parameter version, no command.
                ssm = emulator.client("ssm")
                for name in first.world.parameters:
                    assert len(ssm.get_parameter_history(Name=name)["Parameters"]) == 1, name
                assert ssm.list_commands()["Commands"] == []
                (note,) = emulator.inbox("NotificationTopic")
                assert note["subject"] == (
                    "[mq-cutover] orders-2026-12-01: stopped, a later attempt holds the migration"
                )
                assert "nothing was rolled back" in note["message"]
                # The later attempt is untouched, and goes on to the end.
                first.api.post(second_gate.approve_link, APPROVE)
                first.api.post(first.wait_for_gate("stopOnPrem").approve_link, APPROVE)
                ended = first.wait_until(
                    "the later attempt to end",
                    lambda: s if (s := emulator.status(second))["status"] != "RUNNING" else None,
                )
                assert ended["status"] == "SUCCEEDED", ended
                assert "Notify Not Ours" not in emulator.states_entered(second)
            finally:
                drive_to_an_end(emulator, second)


def test_simulated_redrive_rejected_at_a_gate_does_not_roll_back_the_later_attempt(
    ordered_plan: dict[str, Any],
) -> None:
    """The older attempt had moved every client and waits at stopOnPrem; a later attempt takes
    the lease (simulated as above) and owns those clients now. A rejection of the old gate
    must not roll them back: Roll Back refuses (LeaseLost) and the run ends at Not Ours."""
    with live_run(ordered_plan) as first:
        first.api.post(first.wait_for_gate("cutover").approve_link, APPROVE)
        stop_gate = first.wait_for_gate("stopOnPrem")
        emulator = first.emulator
        moved = first.parameter_values()
        assert moved != first.initial
        sfn = emulator.handlers["TakeLeaseFunction"].sfn
        real_describe = sfn.describe_execution

        def first_failed(executionArn: str) -> dict[str, Any]:
            status = dict(real_describe(executionArn=executionArn))
            return {**status, "status": "FAILED"} if executionArn == first.arn else status

        with mock.patch.object(sfn, "describe_execution", first_failed):
            second = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
            try:
                first.wait_for_gate("cutover", nth=2)  # the later attempt holds the lease
                first.api.post(stop_gate.reject_link, {**APPROVE, "decision": "reject"})
                status = first.wait_until_done()
                assert status["status"] == "FAILED" and status["error"] == "LeaseLost"
                assert status["cause"].startswith("Stopped at Roll Back, nothing changed")
                states = emulator.states_entered(first.arn)
                assert states[-5:] == [
                    "Roll Back",
                    "Describe Failure",
                    "Route Failure",
                    "Notify Not Ours",
                    "Not Ours",
                ]
                assert first.parameter_values() == moved  # the later attempt's, as it found them
            finally:
                drive_to_an_end(emulator, second)


def test_simulated_lease_loss_inside_the_unordered_map_stops_without_rollback(
    unordered_plan: dict[str, Any],
) -> None:
    """The lease moves (simulated: its item is given to a later attempt) between the placement
    check and the first producer: the Map's iteration refuses, the Map fails with LeaseLost,
    and nothing is rolled back (the consumers stay widened, for the later attempt to find)."""

    def lose_the_lease(emulator: Emulator) -> None:
        def hook(function: str, event: dict[str, Any]) -> None:
            if function == "CheckDrainFunction" and event.get("purpose") == "placement":
                table = emulator.resources["MigrationsTable"]
                emulator.client("dynamodb").put_item(
                    TableName=table,
                    Item={
                        "migrationId": {"S": "telemetry-2026-12-01"},
                        "executionArn": {
                            "S": "arn:aws:states:::execution:m:telemetry-2026-12-01--2"
                        },
                        "since": {"S": "2026-12-01T02:00:00+00:00"},
                    },
                )

        emulator.hooks.append(hook)

    sim = run(unordered_plan, before_start=lose_the_lease)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "LeaseLost"
    assert execution["cause"].startswith("Stopped at Repoint Producers One By One, nothing changed")
    assert "telemetry-2026-12-01--2 holds it" in execution["cause"]
    states = entered(sim)
    assert states[-6:] == [
        "Repoint Producers One By One",
        "Repoint Producer",
        "Describe Failure",
        "Route Failure",
        "Notify Not Ours",
        "Not Ours",
    ]
    assert "Roll Back" not in states
    for name in unordered_plan["producers"]["parameters"]:
        assert sim.report["parameters"][name]["final"] == unordered_plan["onPrem"]["url"]
    for name in unordered_plan["consumers"]["parameters"]:
        assert "randomize=false" in sim.report["parameters"][name]["final"]  # still widened


@pytest.mark.parametrize(
    ("function", "event_file"),
    [
        ("RepointClientsFunction", "repoint_clients.json"),
        ("RollbackFunction", "rollback.json"),
        ("StopOnPremFunction", "stop_onprem.json"),
        ("ProvisionBrokerFunction", "provision_broker.json"),
    ],
)
def test_a_step_of_an_execution_without_the_lease_changes_nothing(
    ordered_plan: dict[str, Any], function: str, event_file: str
) -> None:
    """Each state-changing handler, called for an execution that does not hold the lease (here
    the holder waits at its cutover gate), refuses before any change."""
    with live_run(ordered_plan) as holder:
        holder.wait_for_gate("cutover")
        emulator = holder.emulator
        event = load_event(f"functions/{event_file}")
        event["executionArn"] = holder.arn + "--0"  # an attempt that is not the holder
        if event.get("broker"):
            event["broker"] = {**event["broker"], **first_endpoints(holder)}
        brokers = emulator.client("mq").list_brokers()["BrokerSummaries"]
        context = LambdaContext(function_name=function, invoked_function_arn=function)
        with pytest.raises(LeaseLost, match="no longer holds migration orders-2026-12-01's lease"):
            emulator.handlers[function].lambda_handler(event, context)
        ssm = emulator.client("ssm")
        for name in holder.world.parameters:
            assert len(ssm.get_parameter_history(Name=name)["Parameters"]) == 1, name
        assert ssm.list_commands()["Commands"] == []
        assert emulator.client("mq").list_brokers()["BrokerSummaries"] == brokers
        assert holder.status()["status"] == "RUNNING"


def first_endpoints(run: Any) -> dict[str, Any]:
    """The broker endpoints the running execution resolved (so a rollback event is real)."""
    (endpoints,) = [
        json.loads(e["stateExitedEventDetails"]["output"])["Payload"]
        for e in run.emulator.history(run.arn)
        if e.get("stateExitedEventDetails", {}).get("name") == "Resolve Endpoints"
    ]
    return {"clientUrl": endpoints["clientUrl"], "endpoints": endpoints["endpoints"]}

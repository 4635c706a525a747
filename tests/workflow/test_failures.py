"""Failure paths on the real state machine: each ends in a known state an operator can read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from moto.mq.models import mq_backends

from mq_cutover.plan import parse_plan
from mq_cutover_cli.harness import ACCOUNT, REGION, Emulator
from mq_cutover_cli.simulate import Simulation
from mq_cutover_cli.world import World, default_world
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow


def gate_email(sim: Simulation, gate: str) -> str:
    """The first email of a gate, as the approver Ana received it."""
    return next(
        str(m["message"])
        for m in sim.report["approvalEmails"]
        if m["subject"].endswith(f"approve {gate}?") and m["to"] == "ana"
    )


def stuck_world(plan: dict[str, Any]) -> World:
    """One queue never drains (its consumers are gone)."""
    world = default_world(parse_plan(plan))
    world.queues[0].drain_per_minute = 0
    return world


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_drain_timeout_asks_a_person(ordered_plan: dict[str, Any], decision: str) -> None:
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
    }
    approve = "auto" if decision == "approve" else "reject:drainTimeout"
    sim = run(ordered_plan, world=stuck_world(ordered_plan), approve=approve)
    states = entered(sim)
    # One call reads every 60 s for 240 s (5 readings), waits 60 s, and the next call's first
    # reading is past the 5-minute deadline.
    assert states.count("Check Drain") == 2
    assert "Approve Drain Timeout" in states
    drains = task_results(sim, "Check Drain")
    assert [d["readings"] for d in drains] == [5, 6]
    assert drains[-1]["timedOut"] and not drains[-1]["drained"]
    assert drains[-1]["queuesWithMessages"][0]["queue"] == "orders.created"
    timeout_email = gate_email(sim, "drainTimeout")
    assert "On-prem messages left: 3000" in timeout_email
    assert '"orders.created": 3000 waiting, 0 in flight' in timeout_email
    assert "Approve: move on as if drained" in timeout_email
    if decision == "approve":
        assert sim.report["execution"]["status"] == "SUCCEEDED"
        assert "Repoint Consumers" in states
        # The person accepted leaving messages on-prem: the fence waits for clients to leave,
        # not for those messages, and the counts show them left behind, accounted for.
        assert "Approve Fence Timeout" not in states
        on_prem = sim.report["execution"]["output"]["counts"]["onPrem"]
        assert on_prem["left"] == 3000 and on_prem["flaggedCount"] == 0
    else:
        assert sim.report["execution"]["status"] == "FAILED"
        assert "Repoint Consumers" not in states
        assert final_values(sim) == initial_values(sim)


def test_drain_timeout_can_be_extended_then_drains(ordered_plan: dict[str, Any]) -> None:
    """The approver waits longer once; the stuck consumers come back and the queue drains
    within the extension, so the run goes on to the consumers without a second question."""
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
        "extendMinutes": 20,
        "maxExtensions": 1,
    }
    world = default_world(parse_plan(ordered_plan))
    world.queues[0].drain_per_minute = 300  # 3,000 messages: drained after 10 minutes
    sim = run(ordered_plan, world=world, approve="extend:drainTimeout")
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    states = entered(sim)
    timeout_at = states.index("Approve Drain Timeout")
    after_gate = states[timeout_at + 1 : timeout_at + 4]
    assert after_gate == ["Wait Longer?", "Extend Drain", "Check Drain"]
    assert states.count("Approve Drain Timeout") == 1
    drains = task_results(sim, "Check Drain")
    timed_out = next(d for d in drains if d["timedOut"])
    after = drains[drains.index(timed_out) + 1]
    assert after["extensions"] == 1 and after["extensionsLeft"] == 0
    assert after["deadlineAt"] > timed_out["deadlineAt"]
    assert drains[-1]["drained"] and drains[-1]["messagesLeft"] == 0
    timeout_email = gate_email(sim, "drainTimeout")
    assert "?decision=extend  (wait 20 more minutes)" in timeout_email
    decided = [d for d in sim.report["approverActions"] if d["gate"] == "drainTimeout"]
    assert [d["decision"] for d in decided] == ["extend"]
    assert "Repoint Consumers" in states


def test_a_straggler_producer_on_prem_holds_the_drain(ordered_plan: dict[str, Any]) -> None:
    """Simulated: one producer never picked up its new URL and keeps sending to the old broker
    for 10 minutes; its consumers take each message at once, so the queue reads 0 throughout.
    The enqueue counter keeps the drain from counting until that producer stops: read from the
    bridge's aggregates (the default readings), the set's enqueue total moves; which queue's
    is not in the aggregates, so it is not named, and not counted as none either."""
    ordered_plan["drain"] = {"pollIntervalSeconds": 60, "consecutiveEmptyReadings": 2}
    world = default_world(parse_plan(ordered_plan))
    for queue in world.queues:
        queue.messages = 0
    world.queues[1].enqueue_per_minute = 20
    world.queues[1].enqueue_for_seconds = 600
    sim = run(ordered_plan, world=world)
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    drains = task_results(sim, "Check Drain")
    assert not drains[0]["producersQuiet"] and drains[0]["messagesLeft"] == 0
    assert drains[0]["readMode"] == "aggregate" and drains[0]["stillReceivingCount"] is None
    # 20 a minute: the set's total moved by 20 over its newest (60-s) period.
    assert drains[0]["enqueuedNewestPeriod"] == 20 and drains[0]["stillReceiving"] == []
    assert drains[-1]["drained"] and drains[-1]["producersQuiet"]
    assert drains[-1]["enqueuedNewestPeriod"] == 0
    # Drained only once the straggler had stopped for K quiet, empty periods.
    stop_at = world.drain_started + timedelta(seconds=600)
    assert datetime.fromisoformat(drains[-1]["checkedAt"]) >= stop_at + timedelta(minutes=2)


def test_broker_creation_failure_rolls_back_and_keeps_the_broker(
    ordered_plan: dict[str, Any],
) -> None:
    def fail_creation(emulator: Emulator) -> None:
        def hook(function: str, event: dict[str, Any]) -> None:
            if function == "CheckBrokerFunction":  # simulated: Amazon MQ gives up on the broker
                mq_backends[ACCOUNT][REGION].brokers[event["brokerId"]].state = "CREATION_FAILED"

        emulator.hooks.append(hook)

    sim = run(ordered_plan, before_start=fail_creation)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "BrokerCreationFailed"
    assert "is CREATION_FAILED" in execution["cause"] and "kept" in execution["cause"]
    states = entered(sim)
    assert "Resolve Endpoints" not in states and "Approve Cutover" not in states
    assert states[-4:] == [
        "Roll Back",
        "Rollback Next?",
        "Notify Rolled Back",
        "Rolled Back",
    ]
    assert sim.report["brokersCreated"][0]["state"] == "CREATION_FAILED"
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())


def test_broker_creation_timeout_is_bounded(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"]["creationTimeoutMinutes"] = 5
    world = default_world(parse_plan(ordered_plan))
    world.broker_creation_polls = 100
    sim = run(ordered_plan, world=world)
    execution = sim.report["execution"]
    assert execution["error"] == "BrokerCreationTimedOut"
    assert entered(sim).count("Check Broker") == 5


def test_stop_failure_past_the_point_of_no_return_is_not_rolled_back(
    ordered_plan: dict[str, Any],
) -> None:
    def untag_hosts(emulator: Emulator) -> None:
        """Simulated: someone removed the on-prem host's tag, so the stop reaches nobody."""
        ec2 = emulator.client("ec2")
        for reservation in ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                ec2.delete_tags(Resources=[instance["InstanceId"]], Tags=instance.get("Tags", []))

    sim = run(ordered_plan, before_start=untag_hosts)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "OnPremStopFailed"
    assert execution["cause"].startswith("Past the point of no return, nothing rolled back")
    states = entered(sim)
    assert "Roll Back" not in states and states[-2:] == [
        "Notify Manual Action",
        "Manual Action Needed",
    ]
    client_url = task_results(sim, "Resolve Endpoints")[0]["clientUrl"]
    assert set(final_values(sim).values()) == {client_url}
    assert sim.report["notifications"] == [
        "[mq-cutover] orders-2026-12-01: on-prem stop failed, act by hand"
    ]


def test_manual_stop_is_confirmed_by_a_person(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["stopOnPrem"] = {"method": "manual"}
    sim = run(ordered_plan)
    states = entered(sim)
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    assert "Confirm On-Prem Stopped" in states
    assert "Stop On-Prem" not in states and "Approve Stop On-Prem" not in states
    assert [a["gate"] for a in sim.report["approverActions"]] == ["cutover", "confirmOnPremStopped"]


def test_gates_can_be_turned_off_only_on_a_stack_that_requires_none(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["approvals"] = {"gates": []}
    sim = run(unordered_plan, approve="none", stack_parameters={"RequiredGates": ""})
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    assert sim.report["approvals"] == []


def test_a_failing_rollback_says_so_and_how_to_restore_by_hand(
    ordered_plan: dict[str, Any],
) -> None:
    sim = run(ordered_plan, approve="reject:stopOnPrem", fail_at=["Roll Back:permanent"])
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "RollbackFailed"
    assert "after Approve Stop On-Prem failed" in execution["cause"]
    assert entered(sim)[-2:] == ["Notify Rollback Failed", "Rollback Failed"]
    assert sim.report["notifications"] == [
        "[mq-cutover] orders-2026-12-01: ROLLBACK FAILED, act by hand"
    ]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_the_fence_holds_the_stop_while_a_consumer_stays_on_prem(
    ordered_plan: dict[str, Any], decision: str
) -> None:
    """A consumer that never picked up its new URL (simulated) is still connected on-prem: the
    stop waits, then a person decides at fenceTimeout, shown who is still there."""
    ordered_plan["drain"] = {"fenceTimeoutMinutes": 5}
    world = World.from_document({"strayConsumers": 1})
    approve = "auto" if decision == "approve" else "reject:fenceTimeout"
    sim = run(ordered_plan, world=world, approve=approve)
    states = entered(sim)
    fences = task_results(sim, "Check Fence")
    assert fences[-1]["timedOut"] and not fences[-1]["done"]
    assert {q["queue"] for q in fences[-1]["connected"]} >= {"orders.created"}
    email = gate_email(sim, "fenceTimeout")
    assert '"orders.created": 1 consumer(s) STILL CONNECTED' in email
    if decision == "approve":
        assert sim.report["execution"]["status"] == "SUCCEEDED"
        assert states.index("Approve Fence Timeout") < states.index("Stop On-Prem")
        assert sim.report["execution"]["output"]["counts"]["onPrem"]["flaggedCount"] == 0
    else:
        assert sim.report["execution"]["status"] == "FAILED"
        assert "Stop On-Prem" not in states
        assert final_values(sim) == initial_values(sim)
        steps = task_results(sim, "Roll Back")
        # The stray consumer keeps the rollback's fence from holding too: a person goes on.
        assert [s["action"] for s in steps] == [
            "drain",
            "producers-back",
            "drain",
            "consumers-back",
            "done",
        ]
        assert steps[0]["purpose"] == "fence"
        gates = [a["gate"] for a in sim.report["approverActions"]]
        assert gates[-2:] == ["fenceTimeout", "rollbackDrainTimeout"]


def test_a_rollback_that_cannot_bring_everything_home_stops_at_a_gate(
    ordered_plan: dict[str, Any],
) -> None:
    """Rejected at the drain timeout with a queue nobody consumes (on either broker): neither of
    the rollback's drains can finish, so each time a person sees the numbers
    (rollbackDrainTimeout) and chooses to go on; what is left behind is counted, never hidden,
    and nothing suggests deleting the broker that still holds messages."""
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
        "rollbackTimeoutMinutes": 5,
    }
    sim = run(ordered_plan, world=stuck_world(ordered_plan), approve="reject:drainTimeout")
    states = entered(sim)
    assert sim.report["execution"]["status"] == "FAILED"
    gates = [a["gate"] for a in sim.report["approverActions"]]
    assert gates[-3:] == ["drainTimeout", "rollbackDrainTimeout", "rollbackDrainTimeout"]
    email = gate_email(sim, "rollbackDrainTimeout")
    assert "On-prem messages left: 3000" in email
    assert '"orders.created": WILL NEVER DRAIN (3000 messages and no consumer' in email
    actions = [step["action"] for step in task_results(sim, "Roll Back")]
    assert actions == [
        "drain",
        "consumers-to-amazon-mq",
        "drain",  # the fence: no consumer left on-prem
        "producers-back",
        "drain",
        "consumers-back",
        "done",
    ]
    assert states.index("Approve Rollback Drain Timeout") < states.index("Notify Rolled Back")
    assert final_values(sim) == initial_values(sim)
    message = sim.report["notificationMessages"][-1]
    assert message.count("(a person chose to go on)") == 2
    assert "Messages left on-prem: 3000 — orders.created: 3000" in message
    left = task_results(sim, "Roll Back")[-1]["brokers"]["amazonMq"]["messagesLeft"]
    assert left > 0 and f"Messages left on Amazon MQ: {left} — orders.created: " in message
    assert "do NOT delete it" in message and "delete it if you do not retry" not in message


def test_consumers_not_on_both_brokers_stop_before_any_producer_moves(
    unordered_plan: dict[str, Any],
) -> None:
    """Unordered: one queue has no consumer on either broker, so the placement check never
    passes; rejected at placementTimeout, nothing had reached Amazon MQ and only the widened
    consumers go back."""
    unordered_plan["drain"] = {"placementTimeoutMinutes": 5}
    sim = run(unordered_plan, world=stuck_world(unordered_plan), approve="reject:placementTimeout")
    states = entered(sim)
    assert sim.report["execution"]["error"] == "Rejected"
    assert "Repoint Producers One By One" not in states
    placement = task_results(sim, "Check Placement")[-1]
    stuck = unordered_plan["onPrem"]["queues"][0]
    assert placement["timedOut"] and placement["unplaced"][0]["queue"] == stuck
    email = gate_email(sim, "placementTimeout")
    assert f'"{stuck}": consumers on-prem 0, on Amazon MQ 0 (needs at least 1 on each)' in email
    actions = [step["action"] for step in task_results(sim, "Roll Back")]
    assert actions == ["consumers-back", "done"]
    assert final_values(sim) == initial_values(sim)

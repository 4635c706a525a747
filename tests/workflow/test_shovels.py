"""RabbitMQ, mode unordered, on the real state machine (moto; the brokers' management APIs
and their shovels simulated by the world, `mq_cutover_cli.simulated_brokers`): shovels start
before any client moves, consumers move first, producers follow, what is left on-prem is
shovelled and verified by count before the shovels go and the on-prem broker stops; a shovel
that cannot reach Amazon MQ stops the run before any client moves; a rollback removes the
shovels first."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.plan import parse_plan
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.simulate import Simulation
from mq_cutover_cli.world import World, default_world
from tests.conftest import load_event
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow


def shovel_run(**kwargs: Any) -> tuple[Simulation, World]:
    plan = load_event("plan-rabbitmq-unordered.json")
    world = default_world(parse_plan(plan))
    return run(plan, world=world, **kwargs), world


def test_shovels_move_what_is_left_and_are_verified_by_count() -> None:
    sim, world = shovel_run()
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    states = entered(sim)
    order = ["Start Shovels", "Move Consumers First", "Mark Shovel Baseline", "Repoint Producers"]
    assert [states.index(s) for s in order] == sorted(states.index(s) for s in order)
    assert states.index("Verify Shovels") < states.index("Remove Shovels")
    assert states.index("Remove Shovels") < states.index("Check Fence")
    assert not {"Widen Consumers", "Check Placement", "Narrow Consumers"} & set(states)
    [started] = task_results(sim, "Start Shovels")
    assert started["running"] and started["count"] == 2  # the DLQ is not shovelled
    verified = task_results(sim, "Verify Shovels")[-1]
    assert verified["verified"] and verified["problemCount"] == 0
    # Every message the shovels took on-prem was counted on Amazon MQ: the two backlogs.
    assert sum(q["moved"] for q in verified["queues"]) == 6000
    on_prem = world.broker_apis["onPrem"]
    assert on_prem.shovel_parameters == {}  # removed before the on-prem broker stopped
    # Consumers first (every one of them), then producers; every client ends on Amazon MQ.
    plan = parse_plan(load_event("plan-rabbitmq-unordered.json"))
    [consumers] = task_results(sim, "Move Consumers First")
    [producers] = task_results(sim, "Repoint Producers")
    assert sorted(consumers["changed"]) == sorted(plan.consumers.parameters)
    assert sorted(producers["changed"]) == sorted(plan.producers.parameters)
    assert set(final_values(sim).values()) == {
        sim.report["execution"]["output"]["broker"]["clientUrl"]
    }


def test_a_shovel_that_cannot_reach_amazon_mq_stops_the_run_before_any_client_moves() -> None:
    def unreachable(emulator: Emulator) -> None:
        world.broker_apis["onPrem"].shovel_peers.clear()  # no route to Amazon MQ

    plan = load_event("plan-rabbitmq-unordered.json")
    world = default_world(parse_plan(plan))
    sim = run(plan, world=world, before_start=unreachable)
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "ShovelFailed")
    assert "not running after 90 s" in execution["cause"]
    assert "starting" in execution["cause"]
    assert final_values(sim) == initial_values(sim)  # no client moved
    [removed] = [r for r in task_results(sim, "Roll Back") if r["action"] == "remove-shovels"]
    assert removed["shovels"]["count"] == 2
    assert world.broker_apis["onPrem"].shovel_parameters == {}
    assert "Move Consumers First" not in entered(sim)
    # Start Shovels failed: some may have been defined (the rollback memo says so), but the
    # removal found them and none had connected: Amazon MQ holds nothing, no consumer moves.
    assert removed["memo"]["shovelsStarted"] and removed["shovels"]["ran"] == 0
    assert not removed["memo"].get("shovelled")
    assert [r["action"] for r in task_results(sim, "Roll Back")] == ["remove-shovels", "done"]


def test_a_rejected_stop_removes_the_shovels_first_and_brings_clients_home() -> None:
    sim, world = shovel_run(approve="reject:stopOnPrem")
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "Rejected")
    actions = [r["action"] for r in task_results(sim, "Roll Back")]
    # The shovels were already removed before the fence; removing them again changes nothing
    # (they ran: Start Shovels succeeded, the memo says so).
    assert actions[0] == "remove-shovels"
    assert task_results(sim, "Roll Back")[0]["shovels"]["count"] == 0
    assert task_results(sim, "Roll Back")[0]["memo"]["shovelsRan"]
    assert "producers-back" in actions and "consumers-back" in actions
    assert actions.index("producers-back") < actions.index("consumers-back")
    assert final_values(sim) == initial_values(sim)
    assert world.broker_apis["onPrem"].shovel_parameters == {}


def test_a_failure_after_the_shovels_ran_brings_what_they_moved_home() -> None:
    """Move Consumers First fails (simulated permanent fault) after the shovels started: what
    they moved to Amazon MQ has no consumer there. The rollback removes them, sends the
    consumers to Amazon MQ to empty it, and brings them back."""
    sim, world = shovel_run(fail_at=["Repoint Consumers"])
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "SimulatedPermanentFault")
    assert "Move Consumers First failed" in execution["cause"]
    actions = [(r["action"], r["side"]) for r in task_results(sim, "Roll Back")]
    assert actions == [
        ("remove-shovels", None),
        ("consumers-to-amazon-mq", None),
        ("drain", "amazonMq"),
        ("consumers-back", None),
        ("done", None),
    ]
    assert task_results(sim, "Roll Back")[0]["shovels"]["ran"] == 2
    assert "left on Amazon MQ: 0" in execution["cause"]
    assert final_values(sim) == initial_values(sim)
    assert world.broker_apis["onPrem"].shovel_parameters == {}

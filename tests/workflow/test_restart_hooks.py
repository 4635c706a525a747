"""Restart hooks are awaited: after each client step that sent one, the state machine's Wait/Choice
loop checks the SSM Run Command on every host. moto runs nothing and reports Success at once:
slow and failing hosts are simulated by the world (`restartHosts`)."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import World
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow

CHECKOUT, PAYMENTS, FULFILMENT = "i-0a1b2c3d4e5f60718", "i-0b1c2d3e4f5a60718", "i-0c1d2e3f4a5b60718"
LOOP = ["Check Client Restart", "Clients Restarted?", "Wait For Client Restart"]


def with_hooks(plan: dict[str, Any], *, consumers: bool = True, **timing: int) -> dict[str, Any]:
    plan["producers"]["restartHook"] = {
        "commands": ["systemctl restart order-producers"],
        "instanceIds": [CHECKOUT, PAYMENTS],
        **timing,
    }
    if consumers:
        plan["consumers"]["restartHook"] = {
            "commands": ["systemctl restart order-consumers"],
            "instanceIds": [FULFILMENT],
        }
    return plan


def hosts(outcomes: dict[str, Any]) -> World:
    return World.from_document({"restartHosts": outcomes})


def after(states: list[str], step: str) -> list[str]:
    """The states entered after the last entry of `step`, up to the next step's first state."""
    start = len(states) - 1 - states[::-1].index(step)
    return states[start + 1 :]


def test_simulated_slow_host_is_waited_for_after_each_client_step(
    ordered_plan: dict[str, Any],
) -> None:
    """One producer host takes 25 s (simulated) to restart: the run waits for it, checking every
    10 s, before the drain starts; the consumers' hook is checked before the fence."""
    sim = run(with_hooks(ordered_plan), world=hosts({PAYMENTS: 25}))
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    states = entered(sim)
    assert after(states, "Repoint Producers")[:14] == [
        "All Producers Moved?",
        *LOOP,
        *LOOP,
        *LOOP,
        "Check Client Restart",
        "Clients Restarted?",
        "After Client Restart",
        "Check Drain",
    ]
    assert after(states, "Repoint Consumers")[:5] == [
        "All Consumers Moved?",
        "Check Client Restart",
        "Clients Restarted?",
        "After Client Restart",
        "Check Fence",
    ]
    checks = task_results(sim, "Check Client Restart")
    assert [c["done"] for c in checks] == [False, False, False, True, True]
    assert checks[0]["pending"] == [f"{PAYMENTS} (InProgress)"]
    assert [c["checks"] for c in checks] == [1, 2, 3, 4, 1]  # a new wait for the consumers
    assert checks[3]["hosts"] == 2 and checks[3]["succeeded"] == 2
    assert checks[4]["commands"][0]["group"] == "consumers"
    # The command asks SSM to give up at the hook's timeout, as the workflow does.
    (producers,) = [c for c in checks[0]["commands"] if c["group"] == "producers"]
    assert producers["hosts"] == 2


def test_simulated_failed_host_rolls_back_and_is_named(ordered_plan: dict[str, Any]) -> None:
    sim = run(with_hooks(ordered_plan), world=hosts({PAYMENTS: "Failed"}))
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "RestartHookFailed"
    cause = execution["cause"]
    assert cause.startswith(
        "Rolled back after Check Client Restart failed (RestartHookFailed): restart hook of "
        "producers after Repoint Producers (command "
    )
    assert f"failed on 1 of 2 host(s): {PAYMENTS} (Failed)" in cause
    states = entered(sim)
    assert "Check Drain" not in states and "Repoint Consumers" not in states
    assert final_values(sim) == initial_values(sim)
    # The rollback restarted the producers too, and that host failed again: reported, and the
    # rollback went on to the end.
    assert "RESTART HOOKS FAILED: RestartHookFailed: restart hook of producers after Roll Back" in (
        cause
    )
    (message,) = sim.report["notificationMessages"]
    assert "RESTART HOOKS THAT DID NOT SUCCEED" in message and f"{PAYMENTS} (Failed)" in message
    assert sim.report["notifications"] == ["[mq-cutover] orders-2026-12-01: rolled back"]


def test_simulated_host_that_never_finishes_times_out_and_rolls_back(
    ordered_plan: dict[str, Any],
) -> None:
    plan = with_hooks(ordered_plan, consumers=False, timeoutSeconds=60, pollIntervalSeconds=10)
    sim = run(plan, world=hosts({CHECKOUT: "never"}))
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "RestartHookFailed"
    assert (
        "restart hook of producers after Repoint Producers did not finish within 60 s"
        in (execution["cause"])
    )
    assert (
        f"(1 of 2 host(s) succeeded); still running: {CHECKOUT} (InProgress)"
        in (execution["cause"])
    )
    states = entered(sim)
    # Checks at 0, 10, ..., 60 s: the seventh finds the deadline passed.
    first_rollback = states.index("Roll Back")
    assert states[:first_rollback].count("Check Client Restart") == 7
    assert states[:first_rollback].count("Wait For Client Restart") == 6
    assert final_values(sim) == initial_values(sim)


def test_unordered_each_producer_restarts_before_the_next_moves(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["producers"]["restartHook"] = {
        "commands": ["systemctl restart collector"],
        "instanceIds": [CHECKOUT],
    }
    sim = run(unordered_plan, world=hosts({CHECKOUT: 15}))
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    states = entered(sim)
    iteration = [
        "Repoint Producer",
        "Producer Restart?",
        "Check Producer Restart",
        "Producer Restarted?",
        "Wait For Producer Restart",
        "Check Producer Restart",
        "Producer Restarted?",
        "Wait For Producer Restart",
        "Check Producer Restart",
        "Producer Restarted?",
        "Producer Moved",
    ]
    first = states.index("Repoint Producer")
    assert states[first : first + 3 * len(iteration)] == iteration * 3
    producers = task_results(sim, "Repoint Producers One By One")
    assert producers == [{"producersMoved": 3}]
    # The consumers' hook (widen, narrow) is awaited by the shared loop.
    assert states.count("Check Client Restart") == 2


def test_unordered_failed_producer_host_rolls_back(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["producers"]["restartHook"] = {
        "commands": ["systemctl restart collector"],
        "instanceIds": [CHECKOUT, PAYMENTS],
    }
    sim = run(unordered_plan, world=hosts({CHECKOUT: "Undeliverable"}))
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "RestartHookFailed"
    assert execution["cause"].startswith(
        "Rolled back after Repoint Producers One By One failed (RestartHookFailed): restart "
        "hook of producers after Repoint Producer"
    )
    assert f"{CHECKOUT} (Undeliverable)" in execution["cause"]
    assert entered(sim).count("Repoint Producer") == 1  # the next producer never moved
    assert final_values(sim) == initial_values(sim)


def test_simulated_restart_failure_during_the_rollback_is_reported_and_the_rollback_goes_on(
    ordered_plan: dict[str, Any],
) -> None:
    """Hosts restart fine going forward; the consumer host fails once the rollback starts."""
    world = hosts({})

    def break_on_rollback(emulator: Emulator) -> None:
        def hook(function: str, _event: dict[str, Any]) -> None:
            if function == "RollbackFunction":
                world.restart_hosts[FULFILMENT] = "Failed"

        emulator.hooks.append(hook)

    sim = run(
        with_hooks(ordered_plan),
        world=world,
        approve="reject:stopOnPrem",
        before_start=break_on_rollback,
    )
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "Rejected"
    assert final_values(sim) == initial_values(sim)  # every parameter back
    actions = [step["action"] for step in task_results(sim, "Roll Back")]
    assert actions == ["drain", "producers-back", "drain", "consumers-back", "done"]
    assert "Notify Rollback Failed" not in entered(sim)
    cause = execution["cause"]
    assert "RESTART HOOKS FAILED: RestartHookFailed: restart hook of consumers after Roll Back" in (
        cause
    )
    assert f"{FULFILMENT} (Failed)" in cause
    assert "restart hook of producers" not in cause  # they restarted fine
    (message,) = sim.report["notificationMessages"]
    assert f"{FULFILMENT} (Failed)" in message


def test_a_retried_step_waits_for_the_restart_its_lost_response_had_sent(
    unordered_plan: dict[str, Any],
) -> None:
    """Widen Consumers ran and sent the consumers' restart hook, then its response was lost
    (simulated): the retry changes nothing, sends no second command, and the run waits for the
    one sent."""
    counted: list[int] = []

    def widen_commands(emulator: Emulator, _arn: str) -> None:
        comments = [c["Comment"] for c in emulator.client("ssm").list_commands()["Commands"]]
        counted.append(comments.count("mq-cutover telemetry-2026-12-01: widen-consumers"))

    sim = run(unordered_plan, fail_at=["Widen Consumers:transient"], after_run=widen_commands)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    (widened,) = task_results(sim, "Widen Consumers")  # the lost one never reached the state
    assert widened["changed"] == [] and widened["restartCommandId"]
    first_check = task_results(sim, "Check Client Restart")[0]
    assert [c["commandId"] for c in first_check["commands"]] == [widened["restartCommandId"]]
    assert counted == [1]

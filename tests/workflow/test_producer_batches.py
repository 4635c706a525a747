"""Mode unordered with producers.batchSize: the `Repoint Producers One By One` Map moves one
batch of producers per iteration (written one after another, then one restart hook for the
batch, waited for before the next batch), offline on the real state machine."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover_cli import operate
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import World
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow

CHECKOUT = "i-0a1b2c3d4e5f60718"
PRODUCERS = [f"/mq-cutover/telemetry/collector-{i}/broker-url" for i in range(7)]
MIGRATION = "telemetry-2026-12-01"


def batched(plan: dict[str, Any], size: int = 3, hook: bool = False) -> dict[str, Any]:
    plan["producers"]["parameters"] = list(PRODUCERS)
    plan["producers"]["batchSize"] = size
    if hook:
        plan["producers"]["restartHook"] = {
            "commands": ["systemctl restart collector"],
            "instanceIds": [CHECKOUT],
        }
    return plan


def map_iterations(sim: Any) -> int:
    return sum(1 for e in sim.history if e["type"] == "MapIterationStarted")


def producer_calls(emulator: Emulator) -> list[dict[str, Any]]:
    return [
        payload
        for name, payload in emulator.invocations
        if name == "RepointClientsFunction" and payload.get("step") == "producers"
    ]


def test_seven_producers_move_in_batches_of_three(unordered_plan: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}

    def inspect(emulator: Emulator, arn: str) -> None:
        seen["calls"] = producer_calls(emulator)
        record = operate.Record.read(emulator.client("stepfunctions"), arn)
        seen["where"] = record.where_clients_are()
        seen["moves"] = record.client_moves()

    plan = batched(unordered_plan)
    assert plan["migrationId"] == MIGRATION
    sim = run(plan, after_run=inspect)
    report = sim.report
    assert report["execution"]["status"] == "SUCCEEDED", report["execution"]
    # Three iterations (3, 3, 1 producers), one Lambda call each.
    assert map_iterations(sim) == 3
    assert entered(sim).count("Repoint Producer") == 3
    calls = task_results(sim, "Repoint Producer")
    assert [c["changed"] for c in calls] == [PRODUCERS[0:3], PRODUCERS[3:6], PRODUCERS[6:7]]
    assert [(c["start"], c["next"], c["done"]) for c in calls] == [
        (0, 3, True),
        (3, 6, True),
        (6, 7, True),
    ]
    assert [(c["parameterIndex"], c["parameterCount"]) for c in seen["calls"]] == [
        (0, 3),
        (3, 3),
        (6, 3),
    ]
    assert task_results(sim, "Repoint Producers One By One") == [{"producersMoved": 7}]
    # Every producer on Amazon MQ, written once by this migration, labelled for rollback.
    endpoint = report["execution"]["output"]["broker"]["clientUrl"]
    for name in PRODUCERS:
        history = report["parameters"][name]["history"]
        assert [h["value"] for h in history] == [unordered_plan["onPrem"]["url"], endpoint]
        assert history[0]["labels"] == [f"pre-{MIGRATION}"]
        assert history[1]["labels"] == [f"cutover-{MIGRATION}"]
    # mq-cutover status/report: every producer moved, named from the batches' results.
    assert seen["where"]["producers"] == dict.fromkeys(PRODUCERS, "amazonMq")
    batches = [m["names"] for m in seen["moves"] if m["state"] == "Repoint Producer"]
    assert batches == [PRODUCERS[0:3], PRODUCERS[3:6], PRODUCERS[6:7]]


def test_one_restart_per_batch_and_the_next_batch_waits_for_it(
    unordered_plan: dict[str, Any],
) -> None:
    """The producer host takes 15 s (simulated) to restart, checked every 10 s: each batch's
    one command is waited for before the next batch's first write."""
    commands: list[dict[str, Any]] = []

    def read_commands(emulator: Emulator, _arn: str) -> None:
        ssm = emulator.client("ssm")
        for page in ssm.get_paginator("list_commands").paginate():
            commands.extend(page["Commands"])

    sim = run(
        batched(unordered_plan, hook=True),
        world=World.from_document({"restartHosts": {CHECKOUT: 15}}),
        after_run=read_commands,
    )
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
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
    states = entered(sim)
    first = states.index("Repoint Producer")
    assert states[first : first + 3 * len(iteration)] == iteration * 3
    calls = task_results(sim, "Repoint Producer")
    ids = [c["restartCommandId"] for c in calls]
    assert len(set(ids)) == 3 and None not in ids
    checks = task_results(sim, "Check Producer Restart")
    assert [c["restartCheck"]["done"] for c in checks] == [False, False, True] * 3
    # The producers' command was sent three times, once per batch, to the producer host.
    sent = [c for c in commands if c["Comment"] == f"mq-cutover {MIGRATION}: producers"]
    assert sorted(c["CommandId"] for c in sent) == sorted(ids)
    assert all(c["InstanceIds"] == [CHECKOUT] for c in sent)
    assert sim.report["execution"]["output"]["broker"]["clientUrl"] in set(
        final_values(sim).values()
    )


def test_a_failed_batch_restart_stops_before_the_next_batch_and_rolls_back(
    unordered_plan: dict[str, Any],
) -> None:
    sim = run(
        batched(unordered_plan, hook=True),
        world=World.from_document({"restartHosts": {CHECKOUT: "Failed"}}),
    )
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "RestartHookFailed"
    assert execution["cause"].startswith(
        "Rolled back after Repoint Producers One By One failed (RestartHookFailed): restart "
        "hook of producers after Repoint Producer"
    )
    assert entered(sim).count("Repoint Producer") == 1  # the second batch never moved
    assert final_values(sim) == initial_values(sim)
    for name in PRODUCERS[3:]:
        assert len(sim.report["parameters"][name]["history"]) == 1, name  # never written


def test_failure_after_two_batches_rolls_back_exactly_the_moved_producers(
    unordered_plan: dict[str, Any],
) -> None:
    """The third batch's call fails (a simulated error no retry cures): the two batches that
    moved (six producers) go back, the seventh was never written."""

    def fail_third_batch(emulator: Emulator) -> None:
        def hook(function: str, event: dict[str, Any]) -> None:
            if function == "RepointClientsFunction" and event.get("parameterIndex") == 6:
                raise RuntimeError("simulated failure of the third batch")

        emulator.hooks.append(hook)

    sim = run(batched(unordered_plan), before_start=fail_third_batch)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED", execution
    assert execution["cause"].startswith(
        "Rolled back after Repoint Producers One By One failed (RuntimeError)"
    )
    assert entered(sim).count("Repoint Producer") == 3
    assert final_values(sim) == initial_values(sim)
    parameters = sim.report["parameters"]
    for name in PRODUCERS[:6]:
        history = parameters[name]["history"]
        assert len(history) == 3, name  # on-prem, Amazon MQ, on-prem again
        assert history[-1]["labels"] == [f"rollback-{MIGRATION}"], name
        assert history[-1]["value"] == history[0]["value"]
    assert len(parameters[PRODUCERS[6]]["history"]) == 1  # never moved, never restored
    restored = [
        name for step in task_results(sim, "Roll Back") for name in step.get("restored") or []
    ]
    assert [n for n in restored if n in PRODUCERS] == list(reversed(PRODUCERS[:6]))


def test_a_batch_resumes_when_the_call_runs_out_of_time(unordered_plan: dict[str, Any]) -> None:
    """Simulated: each Lambda call has 29.999 s, less than the 30 s a client step keeps in
    reserve, so it writes the one producer it always writes and stops (whatever the machine's
    speed). A batch of four then takes four calls; only the one that finishes the batch sends
    the restart hook (one command per batch), and nothing is written twice."""
    plan = batched(unordered_plan, size=4, hook=True)
    commands: list[dict[str, Any]] = []

    def short_time(emulator: Emulator) -> None:
        emulator.lambda_timeout_ms = 29_999

    def read_commands(emulator: Emulator, _arn: str) -> None:
        for page in emulator.client("ssm").get_paginator("list_commands").paginate():
            commands.extend(page["Commands"])

    sim = run(
        plan,
        before_start=short_time,
        after_run=read_commands,
    )
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    assert map_iterations(sim) == 2
    calls = task_results(sim, "Repoint Producer")
    assert len(calls) == 7  # one producer a call: batches of 4 and 3
    assert sum(c["changedCount"] for c in calls) == 7
    # Each call went on where the one before it stopped (batches of four from 0 and 4).
    assert [c["start"] for c in calls] == [0] + [c["next"] for c in calls[:-1]]
    assert [c["start"] for c in calls if c["start"] in (0, 4)] == [0, 4]
    for call in calls:
        assert call["done"] == (call["next"] in (4, 7))
        # A call that leaves the batch unfinished sends no restart and says when it wrote.
        assert (call["restartCommandId"] is None) == (not call["done"])
        if not call["done"]:
            assert call["lastWrite"]
    sent = [c for c in commands if c["Comment"] == f"mq-cutover {MIGRATION}: producers"]
    assert len(sent) == 2
    assert {len(p["history"]) for n, p in sim.report["parameters"].items() if n in PRODUCERS} == {2}


def test_a_lost_response_of_a_batch_call_sends_no_second_restart(
    unordered_plan: dict[str, Any],
) -> None:
    """The first batch's call writes its three producers and sends the restart, then its response
    is lost (simulated HTTP 500): the retry finds them written and the command already sent."""
    commands: list[dict[str, Any]] = []

    def read_commands(emulator: Emulator, _arn: str) -> None:
        for page in emulator.client("ssm").get_paginator("list_commands").paginate():
            commands.extend(page["Commands"])

    sim = run(
        batched(unordered_plan, hook=True),
        fail_at=["Repoint Producer:transient"],
        after_run=read_commands,
    )
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    calls = task_results(sim, "Repoint Producer")
    assert [c["changedCount"] for c in calls] == [0, 3, 1]  # the retry found batch 1 written
    assert calls[0]["unchanged"] == PRODUCERS[0:3]
    sent = [c for c in commands if c["Comment"] == f"mq-cutover {MIGRATION}: producers"]
    assert sorted(c["CommandId"] for c in sent) == sorted(c["restartCommandId"] for c in calls)
    assert len(sent) == 3
    assert {len(p["history"]) for n, p in sim.report["parameters"].items() if n in PRODUCERS} == {2}

"""RabbitMQ, mode unordered: the rollback's first call removes the shovels, and removing them
leaves no trace on the broker. When that call's response is lost (the state machine retries it
with the memo it had), the retry finds no shovel: Amazon MQ must still be drained before
consumers come back, from what the state machine recorded when Start Shovels ran."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover.plan import parse_plan
from mq_cutover_cli.faults import LambdaServiceError
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import World, default_world
from tests.conftest import load_event
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow

# What the shovels moved to Amazon MQ while consumers were still on-prem (simulated): more than
# consumers there take in a minute (1,000 a queue), so the rollback's drain reads it.
STRANDED = {"invoices.created": 4000, "invoices.paid": 2500}

# A rollback that takes shovels to have run before any consumer moved: consumers go to Amazon
# MQ to empty it and come back once it is drained.
EMPTIED_THROUGH_CONSUMERS = [
    ("remove-shovels", None),
    ("consumers-to-amazon-mq", None),
    ("drain", "amazonMq"),
    ("consumers-back", None),
    ("done", None),
]


class SimulatedLambdaTimeout(Exception):
    """A Lambda that ran out of time (on AWS: Sandbox.Timedout): not retried."""


def _shovels_strand(world: World, *, then_time_out: bool) -> Any:
    """Simulated: once Start Shovels' shovels run, they have moved STRANDED to Amazon MQ, where
    no consumer is yet (the world's shovels move messages only once no consumer is left
    on-prem). With `then_time_out`, the function then times out (not retried)."""

    def install(emulator: Emulator) -> None:
        module = emulator.handlers["ShovelsFunction"]
        real = module.shovel_step

        def step(*args: Any, **kwargs: Any) -> dict[str, Any]:
            result: dict[str, Any] = real(*args, **kwargs)
            if result["action"] == "start":
                for queue, messages in STRANDED.items():
                    world.amazon_mq[queue] = [float(messages), float(messages)]
                if then_time_out:
                    raise SimulatedLambdaTimeout("simulated: Task timed out after 330 seconds")
            return result

        module.shovel_step = step
        emulator.cleanups.append(lambda: setattr(module, "shovel_step", real))

    return install


def _lose_the_removal_response(lost: list[dict[str, Any]]) -> Any:
    """Simulated: the Roll Back call that removed the shovels ran to the end, then Lambda lost
    its response (HTTP 500): the state machine retries it with the memo it had."""

    def install(emulator: Emulator) -> None:
        def lose(name: str, event: dict[str, Any], result: Any) -> None:
            if name == "RollbackFunction" and result["action"] == "remove-shovels" and not lost:
                lost.append(result)
                raise LambdaServiceError("ServiceException", "simulated: response lost")

        emulator.after_hooks.append(lose)

    return install


def _memos_given(sim: Any) -> list[dict[str, Any]]:
    """The memo each Roll Back call was given (its scheduled input), retries included."""
    memos = []
    for event in sim.history:
        details = event.get("taskScheduledEventDetails")
        if details:
            payload = json.loads(details["parameters"]).get("Payload", {})
            if "memo" in payload and "cursor" in payload:
                memos.append(payload["memo"])
    return memos


def _failures(sim: Any, state: str) -> list[tuple[str, str]]:
    """(error, cause) of each failed call of `state`, retries included."""
    failed: list[tuple[str, str]] = []
    current = None
    for event in sim.history:
        if "stateEnteredEventDetails" in event:
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] in ("TaskFailed", "LambdaFunctionFailed") and current == state:
            details = event.get("taskFailedEventDetails") or {}
            failed.append((details.get("error", event["type"]), details.get("cause", "")))
    return failed


def _installs(*steps: Any) -> Any:
    def install(emulator: Emulator) -> None:
        for step in steps:
            step(emulator)

    return install


@pytest.mark.parametrize(
    ("failed_at", "recorded", "error"),
    [
        # Start Shovels succeeded (every shovel ran), Move Consumers First failed.
        ("Move Consumers First", "shovelsRan", "SimulatedPermanentFault"),
        # Start Shovels itself failed, after its shovels ran.
        ("Start Shovels", "shovelsStarted", "SimulatedLambdaTimeout"),
    ],
)
def test_a_lost_removal_of_shovels_that_ran_still_drains_amazon_mq(
    failed_at: str, recorded: str, error: str
) -> None:
    plan = load_event("plan-rabbitmq-unordered.json")
    world = default_world(parse_plan(plan))
    lost: list[dict[str, Any]] = []
    sim = run(
        plan,
        world=world,
        before_start=_installs(
            _shovels_strand(world, then_time_out=failed_at == "Start Shovels"),
            _lose_the_removal_response(lost),
        ),
        fail_at=["Repoint Consumers"] if failed_at == "Move Consumers First" else [],
    )
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", error), execution
    assert execution["cause"].startswith(f"Rolled back after {failed_at} failed")
    # The lost call removed both shovels, which had run; its retry found none.
    [removal] = lost
    assert (removal["shovels"]["count"], removal["shovels"]["ran"]) == (2, 2)
    assert [error for error, _ in _failures(sim, "Roll Back")] == ["Lambda.ServiceException"]
    memos = _memos_given(sim)
    assert memos[0] == memos[1] == {"drained": [], recorded: True}  # the try, its retry
    steps = task_results(sim, "Roll Back")
    assert (steps[0]["shovels"]["count"], steps[0]["shovels"]["ran"]) == (0, 0)
    assert steps[0]["memo"]["shovelled"] and steps[0]["memo"]["producersMoved"]
    # Consumers go to Amazon MQ to empty it, and come back only once it is drained (without
    # the state machine's record: remove-shovels, done, and the messages stay there).
    assert [(s["action"], s["side"]) for s in steps] == EMPTIED_THROUGH_CONSUMERS
    assert steps[1]["movedCount"] == len(plan["consumers"]["parameters"])
    states = entered(sim)
    last_drain = len(states) - 1 - states[::-1].index("Check Rollback Drain")
    assert last_drain < states.index("Notify Rolled Back")
    drains = task_results(sim, "Check Rollback Drain")
    assert all(d["side"] == "amazonMq" for d in drains)
    assert 0 < drains[0]["initialMessagesLeft"] <= sum(STRANDED.values())
    assert {q["queue"] for q in drains[0]["initialQueuesWithMessages"]} <= set(STRANDED)
    assert drains[-1]["done"] and drains[-1]["drained"] and drains[-1]["messagesLeft"] == 0
    assert steps[-1]["brokers"]["amazonMq"]["messagesLeft"] == 0
    assert "left on Amazon MQ: 0" in execution["cause"]
    assert all(world.amazon_mq[queue][0] == 0 for queue in STRANDED)
    assert final_values(sim) == initial_values(sim)
    assert world.broker_apis["onPrem"].shovel_parameters == {}
    assert sim.report["notifications"] == [f"[mq-cutover] {plan['migrationId']}: rolled back"]


def test_a_lost_removal_of_shovels_that_never_connected_is_taken_to_have_run() -> None:
    """The conservative side: Start Shovels failed (no shovel could reach Amazon MQ), so some
    may have been defined; the removal's response is lost and its retry finds none, which
    cannot be told from none defined: consumers go to Amazon MQ (empty) and come back. Had the
    response arrived, the removal would have shown they never connected (test_shovels)."""
    plan = load_event("plan-rabbitmq-unordered.json")
    world = default_world(parse_plan(plan))
    lost: list[dict[str, Any]] = []

    def unreachable(emulator: Emulator) -> None:
        world.broker_apis["onPrem"].shovel_peers.clear()  # no route to Amazon MQ

    sim = run(
        plan, world=world, before_start=_installs(unreachable, _lose_the_removal_response(lost))
    )
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "ShovelFailed")
    [removal] = lost
    assert (removal["shovels"]["count"], removal["shovels"]["ran"]) == (2, 0)
    assert not removal["memo"].get("shovelled")  # what the lost response knew
    assert _memos_given(sim)[:2] == [{"drained": [], "shovelsStarted": True}] * 2
    steps = task_results(sim, "Roll Back")
    assert [(s["action"], s["side"]) for s in steps] == EMPTIED_THROUGH_CONSUMERS
    assert task_results(sim, "Check Rollback Drain")[0]["initialMessagesLeft"] == 0
    assert final_values(sim) == initial_values(sim)
    assert world.broker_apis["onPrem"].shovel_parameters == {}


@pytest.mark.parametrize("attempt", ["first", "retry"])
def test_a_start_refused_before_defining_any_shovel_records_none(attempt: str) -> None:
    """Start Shovels' first attempt refuses before defining any shovel (the on-prem broker lacks
    the shovel plugins): the state machine records nothing, so a rollback does not take
    shovels to have run. The same refusal on a retry (the first attempt defined the shovels,
    then its response was lost) records that shovels may have been defined."""
    plan = load_event("plan-rabbitmq-unordered.json")
    world = default_world(parse_plan(plan))

    def no_plugin(emulator: Emulator) -> None:
        world.broker_apis["onPrem"].shovel_plugin = False

    def plugin_lost_after_the_first_attempt(emulator: Emulator) -> None:
        on_prem = world.broker_apis["onPrem"]

        def lose(name: str, event: dict[str, Any], result: Any) -> None:
            if name == "ShovelsFunction" and event["action"] == "start" and on_prem.shovel_plugin:
                assert result["count"] == 2  # defined, running
                on_prem.shovel_plugin = False  # disabled meanwhile (simulated)
                raise LambdaServiceError("ServiceException", "simulated: response lost")

        emulator.after_hooks.append(lose)

    install = no_plugin if attempt == "first" else plugin_lost_after_the_first_attempt
    sim = run(plan, world=world, before_start=install)
    failures = _failures(sim, "Start Shovels")
    error, cause = failures[-1]
    assert error == "ShovelFailed" and "the on-prem broker cannot run the shovels" in cause
    assert len(failures) == (1 if attempt == "first" else 2)
    recorded = {} if attempt == "first" else {"shovelsStarted": True}
    assert _memos_given(sim)[0] == {"drained": [], **recorded}
    assert "Move Consumers First" not in entered(sim)
    # the rollback lists and removes shovels on a broker without the plugin: none, it ends
    assert "Notify Rolled Back" in entered(sim) and "Rollback Failed" not in entered(sim)
    assert final_values(sim) == initial_values(sim)

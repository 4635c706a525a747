"""`mq-cutover simulate` rehearses every valid plan offline: nobody deciding ends at the gate's
timeout in simulated time (and the state machine's own timeout path runs), and a plan the
simulator cannot rehearse is refused in one line, at once. (The 1,000-queue, 1,000-parameter
plan is in test_scale.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli.cli import main
from mq_cutover_cli.simulate import CannotSimulate, Simulation, summary_lines
from tests.workflow.conftest import entered, final_values, initial_values, run

pytestmark = pytest.mark.workflow


def _timed_out(sim: Simulation) -> list[str]:
    """The states whose task timed out (TaskTimedOut: States.Timeout), in order."""
    state = ""
    found = []
    for event in sim.history:
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        if event["type"] == "TaskTimedOut":
            assert event["taskTimedOutEventDetails"]["error"] == "States.Timeout"
            found.append(state)
    return found


def test_nobody_deciding_ends_at_the_cutover_gates_timeout_and_rolls_back(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["approvals"]["timeoutMinutes"] = 240
    sim = run(ordered_plan, approve="none")
    report = sim.report
    states = entered(sim)
    gate = states.index("Approve Cutover")
    # The gate's task timed out (no decision), and the Catch for States.Timeout rolled back.
    assert _timed_out(sim) == ["Approve Cutover"]
    assert states[gate + 1 :] == [
        "Roll Back",
        "Rollback Next?",
        "Notify Rolled Back",
        "Rolled Back",
    ]
    assert report["gateTimeouts"] == [{"state": "Approve Cutover", "minutes": 240}]
    execution = report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "ApprovalTimedOut"
    assert "Nobody decided gate cutover within 240 minutes" in execution["cause"]
    # 240 minutes passed on the simulated clock (plus the broker's creation), not the wall's.
    assert 240 * 60 <= report["simulatedSeconds"] < 250 * 60
    # The approvers were asked, and nobody answered; nothing moved.
    assert {m["to"] for m in report["approvalEmails"]} == {"ana", "bea", "cy"}
    assert report["approverActions"] == []
    assert final_values(sim) == initial_values(sim)
    assert report["notifications"][-1].endswith(": rolled back")
    assert (
        "  Approve Cutover: nobody decided; the gate timed out after 240 min (simulated time)"
        in summary_lines(report)
    )


def test_nobody_confirming_the_stop_rolls_every_moved_parameter_back(
    ordered_plan: dict[str, Any],
) -> None:
    """A later gate: producers and consumers have moved and the broker drained when the
    stopOnPrem gate times out; the rollback puts every parameter back."""
    ordered_plan["approvals"] = {"gates": ["stopOnPrem"], "timeoutMinutes": 30}
    sim = run(ordered_plan, approve="none", stack_parameters={"RequiredGates": "stopOnPrem"})
    states = entered(sim)
    assert _timed_out(sim) == ["Approve Stop On-Prem"]
    assert "Check Drain" in states and "Stop On-Prem" not in states
    assert states[-2:] == ["Notify Rolled Back", "Rolled Back"]
    assert sim.report["gateTimeouts"] == [{"state": "Approve Stop On-Prem", "minutes": 30}]
    assert sim.report["execution"]["error"] == "ApprovalTimedOut"
    # Every parameter moved to Amazon MQ and back: three versions, the original value last.
    assert final_values(sim) == initial_values(sim)
    assert {len(p["history"]) for p in sim.report["parameters"].values()} == {3}


def _simulate_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: dict[str, Any]
) -> tuple[int, str, str]:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code = main(["simulate", "--plan", str(path), "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_adopted_broker_cannot_be_rehearsed_and_simulate_says_so_in_one_line(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ordered_plan["target"] = {"adoptBrokerId": "b-1234abcd-56ef-78ab-90cd-ef1234567890"}
    code, out, err = _simulate_cli(tmp_path, capsys, ordered_plan)
    assert code == 2 and out == ""
    assert err == (
        "mq-cutover: cannot simulate this plan: target.adoptBrokerId: "
        "b-1234abcd-56ef-78ab-90cd-ef1234567890 is a broker in your account; the simulator "
        "only has the brokers it creates (rehearse with target.create)\n"
    )


def test_a_queue_pattern_without_simulated_queues_is_refused_in_one_line(
    ordered_plan: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.*", "ActiveMQ.DLQ"]
    code, out, err = _simulate_cli(tmp_path, capsys, ordered_plan)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines() == [
        "mq-cutover: cannot simulate this plan: onPrem.queues: no simulated queue matches "
        "orders.* (a pattern names no queue by itself): give --world with the queues it "
        "should match"
    ]


def test_a_run_that_does_not_end_is_stopped_with_where_it_was(
    ordered_plan: dict[str, Any],
) -> None:
    with pytest.raises(CannotSimulate) as stopped:
        Simulation(plan_document=ordered_plan, timeout_seconds=0.5).run()
    message = str(stopped.value)
    assert message.startswith("the run did not end within 0.5 s of real time (still in ")
    assert "\n" not in message

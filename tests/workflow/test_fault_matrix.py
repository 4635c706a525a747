"""The fault matrix: at every step that changes something, in both modes, a transient fault
is retried with nothing done twice, and a permanent one ends in a known, reported state:
rolled back before the point of no return, a person asked after it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import load_event
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow

STEPS = {
    "ordered": ["Provision Broker", "Repoint Producers", "Repoint Consumers", "Stop On-Prem"],
    "unordered": [
        "Provision Broker",
        "Widen Consumers",
        "Repoint Producer",
        "Narrow Consumers",
        "Stop On-Prem",
    ],
}
CELLS = [(mode, step) for mode, steps in STEPS.items() for step in steps]
PLANS = {"ordered": "plan-ordered.json", "unordered": "plan-unordered.json"}
RETRIED_AS = {"transient": "Lambda.ServiceException", "throttle": "AwsThrottled"}


def failed_tasks(sim: Any) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in sim.history if e["type"] == "TaskFailed"]


def expected_versions(mode: str, plan: dict[str, Any]) -> dict[str, int]:
    """How many versions each parameter has after one clean run (original + each change)."""
    consumers = 3 if mode == "unordered" else 2  # unordered: widened, then narrowed
    return {
        **{n: 2 for n in plan["producers"]["parameters"]},
        **{n: consumers for n in plan["consumers"]["parameters"]},
    }


@pytest.mark.parametrize("kind", ["transient", "throttle"])
@pytest.mark.parametrize(("mode", "step"), CELLS)
def test_a_passing_fault_is_retried_and_nothing_is_done_twice(
    mode: str, step: str, kind: str
) -> None:
    plan = load_event(PLANS[mode])
    sim = run(plan, fail_at=[f"{step}:{kind}"])
    report = sim.report
    assert report["execution"]["status"] == "SUCCEEDED", report["execution"]
    assert RETRIED_AS[kind] in failed_tasks(sim)  # the fault happened and was retried
    versions = {n: len(p["history"]) for n, p in report["parameters"].items()}
    assert versions == expected_versions(mode, plan)
    assert len(report["brokersCreated"]) == 1
    client_url = report["execution"]["output"]["broker"]["clientUrl"]
    assert all(client_url in value for value in final_values(sim).values())
    stops = task_results(sim, "Stop On-Prem")
    assert len({s["commandId"] for s in stops}) == 1  # one stop command, however many tries


@pytest.mark.parametrize(("mode", "step"), CELLS)
def test_a_permanent_fault_ends_in_a_known_state(mode: str, step: str) -> None:
    plan = load_event(PLANS[mode])
    sim = run(plan, fail_at=[f"{step}:permanent"])
    report = sim.report
    execution = report["execution"]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SimulatedPermanentFault"
    states = entered(sim)
    notes = report["notifications"]
    if step == "Stop On-Prem":
        # Past the point of no return: no rollback; every client stays on Amazon MQ.
        assert "Roll Back" not in states
        assert execution["cause"].startswith("Past the point of no return, nothing rolled back")
        client_url = task_results(sim, "Resolve Endpoints")[0]["clientUrl"]
        assert all(client_url in value for value in final_values(sim).values())
        assert notes == [f"[mq-cutover] {plan['migrationId']}: on-prem stop failed, act by hand"]
        return
    assert states[-4:] == [
        "Roll Back",
        "Rollback Next?",
        "Notify Rolled Back",
        "Rolled Back",
    ]
    assert final_values(sim) == initial_values(sim)  # every parameter back
    cause = execution["cause"]
    # A producer's step runs inside the Map: the Map is the state that failed.
    failed = "Repoint Producers One By One" if step == "Repoint Producer" else step
    assert cause.startswith(f"Rolled back after {failed} failed (SimulatedPermanentFault)")
    assert f"simulated permanent fault in {step}" in cause
    if step == "Provision Broker":
        assert report["brokersCreated"] == [] and "broker" not in cause.split("|")[-1]
    else:
        (broker,) = report["brokersCreated"]  # kept, never deleted, and reported
        assert f"broker {broker['brokerId']} kept" in cause
    assert notes == [f"[mq-cutover] {plan['migrationId']}: rolled back"]
    steps = task_results(sim, "Roll Back")
    assert steps[-1]["finished"]
    changed = [n for n, p in report["parameters"].items() if len(p["history"]) > 1]
    assert sorted(r for step in steps for r in step["restored"]) == sorted(changed)
    assert json.dumps([c for step in steps for c in step["conflicts"]]) == "[]"

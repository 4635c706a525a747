"""Hundreds of client parameters in one run, with SSM throttling and a Lambda whose time runs
out: the step is called again until the group is done, nothing is written twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover_cli.faults import throttle_ssm_puts
from mq_cutover_cli.harness import Emulator
from tests.workflow.conftest import run, task_results

pytestmark = pytest.mark.workflow
# Scale, not people: these plans have no gate, on a stack that requires none.
NO_GATES = {"RequiredGates": ""}


def test_500_parameters_with_throttling_and_short_lambda_time(ordered_plan: dict[str, Any]) -> None:
    producers = [f"/mq-cutover/fleet/producer-{i:03d}/broker-url" for i in range(300)]
    consumers = [f"/mq-cutover/fleet/consumer-{i:03d}/broker-url" for i in range(200)]
    ordered_plan["producers"]["parameters"] = producers
    ordered_plan["consumers"]["parameters"] = consumers
    ordered_plan["approvals"] = {"gates": []}
    throttles: list[list[int]] = []

    def slow_and_throttled(emulator: Emulator) -> None:
        # Simulated: each Lambda call has 33 s of which 30 s are kept in reserve, so it can
        # do about three seconds of work; and SSM throttles every 40th PutParameter.
        emulator.lambda_timeout_ms = 33_000
        throttles.append(throttle_ssm_puts(emulator, 40))

    sim = run(ordered_plan, before_start=slow_and_throttled, stack_parameters=NO_GATES)
    report = sim.report
    assert report["execution"]["status"] == "SUCCEEDED", report["execution"]
    calls = task_results(sim, "Repoint Producers")
    assert len(calls) > 1 and calls[-1]["done"] and not calls[0]["done"]
    assert sum(len(c["changed"]) for c in calls) == 300  # each producer changed exactly once
    assert sum(len(c["changed"]) for c in task_results(sim, "Repoint Consumers")) == 200
    assert len(throttles[0]) >= 10  # SSM did throttle, and botocore absorbed it
    client_url = report["execution"]["output"]["broker"]["clientUrl"]
    assert {p["final"] for p in report["parameters"].values()} == {client_url}
    assert {len(p["history"]) for p in report["parameters"].values()} == {2}
    # The state stays small: summaries, never per-parameter series, travel between states.
    biggest = max(len(json.dumps(e, default=str)) for e in sim.history)
    assert biggest < 256 * 1024


def test_1000_queues_and_1000_parameters_in_one_execution(ordered_plan: dict[str, Any]) -> None:
    """Every payload but the execution input (the plan itself) stays under 64 KB: the Lambdas
    get the plan packed, the state carries summaries. moto's GetMetricData is answered from an
    index here (fast_metrics, checked equal to moto's) so 3,000 queries a reading stay quick."""
    from mq_cutover.plan import parse_plan
    from mq_cutover_cli.fast_metrics import enable
    from mq_cutover_cli.world import default_world

    queues = [f"app.queue-{i:04d}" for i in range(1000)]
    ordered_plan["onPrem"]["queues"] = queues
    ordered_plan["producers"]["parameters"] = [
        f"/mq-cutover/fleet/producer-{i:04d}/broker-url" for i in range(500)
    ]
    ordered_plan["consumers"]["parameters"] = [
        f"/mq-cutover/fleet/consumer-{i:04d}/broker-url" for i in range(500)
    ]
    ordered_plan["approvals"] = {"gates": []}
    world = default_world(parse_plan(ordered_plan))
    world.queues[-1].messages = 1500  # one queue takes 90 s to drain
    sim = run(ordered_plan, world=world, before_start=enable, stack_parameters=NO_GATES)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    assert {len(p["history"]) for p in sim.report["parameters"].values()} == {2}
    drains = task_results(sim, "Check Drain")
    assert drains[-1]["drained"] and drains[-1]["watchedQueues"] == 1000
    # The slow queue held the first readings back.
    assert drains[-1]["readings"] > drains[-1]["consecutiveEmpty"]
    sizes = []
    for event in sim.history:
        if event["type"] == "ExecutionStarted":
            continue
        for details in (v for k, v in event.items() if k.endswith("EventDetails")):
            for key in ("input", "output", "parameters"):
                if isinstance(details.get(key), str):
                    sizes.append(len(details[key].encode()))
    assert len(json.dumps(ordered_plan)) > 60_000  # the input itself is about as big ...
    assert max(sizes) < 64 * 1024  # ... and nothing after it comes near

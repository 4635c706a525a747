"""Hundreds of client parameters in one run, with SSM throttling and a Lambda whose time runs
out: the step is called again until the group is done, nothing is written twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover_cli.faults import throttle_ssm_puts
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import World
from tests.workflow.conftest import NOT_STARTED, entered, run, task_results

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
    assert sum(c["changedCount"] for c in calls) == 300  # each producer changed exactly once
    assert sum(c["changedCount"] for c in task_results(sim, "Repoint Consumers")) == 200
    # Each call names at most 50 of the parameters it handled (the state carries it) and
    # says which: its group's [start:next], one call after the other.
    assert all(len(c["changed"]) <= 50 for c in calls)
    assert [c["start"] for c in calls] == [0] + [c["next"] for c in calls[:-1]]
    assert len(throttles[0]) >= 10  # SSM did throttle, and botocore absorbed it
    client_url = report["execution"]["output"]["broker"]["clientUrl"]
    assert {p["final"] for p in report["parameters"].values()} == {client_url}
    assert {len(p["history"]) for p in report["parameters"].values()} == {2}
    # The state stays small: summaries, never per-parameter series, travel between states.
    biggest = max(len(json.dumps(e, default=str)) for e in sim.history)
    assert biggest < 256 * 1024


def test_1000_queues_by_pattern_and_1000_parameters_rehearse_offline() -> None:
    """The documented scale, as `mq-cutover simulate` runs it (events/plan-scale-1000.json and
    its world): 1,000 queues found by one pattern, 1,000 client parameters, the stack's gates.
    It used to end in States.Timeout at Check Drain (moto's ListMetrics and GetMetricData took
    longer than the state's 330 s of real time); the simulator now reads metrics from an index
    (fast_metrics). Every payload but the execution input (the plan) stays under 64 KB."""
    from tests.conftest import ROOT

    plan_text = (ROOT / "events" / "plan-scale-1000.json").read_text()
    world = World.from_file(ROOT / "events" / "plan-scale-1000-world.json")
    world.queues[-1].messages = 4_500  # one queue takes 4.5 minutes to drain, the others 3
    values: dict[str, str] = {}

    def read_ssm(emulator: Emulator, _arn: str) -> None:
        ssm = emulator.client("ssm")
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path="/mq-cutover/fleet", Recursive=True
        ):
            values.update({p["Name"]: p["Value"] for p in page["Parameters"]})

    sim = run(plan_text, world=world, after_run=read_ssm)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    client_url = sim.report["execution"]["output"]["broker"]["clientUrl"]
    assert len(values) == 1000 and set(values.values()) == {client_url}
    assert {len(p["history"]) for p in sim.report["parameters"].values()} == {2}
    drains = task_results(sim, "Check Drain")
    assert drains[-1]["drained"] and drains[-1]["watchedQueues"] == 1000
    # Every queue had its backlog at the first reading; the slow one held the last ones back.
    assert drains[0]["initialQueuesWithMessages"][0]["queue"] == "app.queue-0999"
    assert drains[-1]["readings"] > drains[-1]["consecutiveEmpty"]
    # Within the history budget, far from Step Functions' 25,000 events.
    assert len(sim.history) < 2_000
    sizes = []
    for event in sim.history:
        if event["type"] == "ExecutionStarted":
            continue
        for details in (v for k, v in event.items() if k.endswith("EventDetails")):
            for key in ("input", "output", "parameters"):
                if isinstance(details.get(key), str):
                    sizes.append(len(details[key].encode()))
    assert len(plan_text) > 50_000  # the input itself is about as big ...
    assert max(sizes) < 64 * 1024  # ... and nothing after it comes near


def test_more_queues_than_amazon_mq_metrics_cover_stop_at_validate_plan(
    ordered_plan: dict[str, Any],
) -> None:
    """1,001 listed queues read from Amazon MQ's own metrics (AWS/AmazonMQ covers an ActiveMQ
    broker's first 1,000 destinations): a rollback's drain of Amazon MQ could never finish, so
    the run is refused at its first state, naming target.metrics, before any change."""
    ordered_plan["onPrem"]["queues"] = [f"app.queue-{i:04d}" for i in range(1001)]
    sim = run(ordered_plan)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "PlanInvalid"
    assert "target.metrics: the plan lists 1001 queues" in execution["cause"]
    assert "only the first 1000 destinations" in execution["cause"]
    assert entered(sim) == NOT_STARTED
    assert sim.report["brokersCreated"] == [] and sim.report["approvalEmails"] == []
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())


def test_over_the_quota_a_bridge_namespace_lets_placement_and_the_rollback_drain_finish(
    unordered_plan: dict[str, Any],
) -> None:
    """The same 1,001 queues read from a bridge's namespace (a second metrics bridge on the
    Amazon MQ broker: the simulated one publishes every queue there, with the `Broker`
    dimension the workflow adds): the placement check sees a consumer on every queue on both
    brokers, and a rollback at the stop gate drains Amazon MQ on every queue."""
    unordered_plan["onPrem"]["queues"] = [f"app.queue-{i:04d}" for i in range(1001)]
    unordered_plan["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
    world = World.from_document({"amazonMqEnqueuePerMinute": 3000})
    sim = run(unordered_plan, approve="reject:stopOnPrem", world=world, stack_parameters=NO_GATES)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "Rejected", execution
    placement = [d for d in task_results(sim, "Check Placement") if d["done"]]
    assert placement and placement[-1]["watchedQueues"] == 1001
    done = [d for d in task_results(sim, "Check Rollback Drain") if d["done"]]
    (drain,) = [d for d in done if d["side"] == "amazonMq"]
    assert drain["watchedQueues"] == 1001 and drain["missingCount"] == 0
    assert drain["initialMessagesLeft"] > 0 and drain["messagesLeft"] == 0
    assert entered(sim)[-1] == "Rolled Back"

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

    sim = run(ordered_plan, before_start=slow_and_throttled)
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

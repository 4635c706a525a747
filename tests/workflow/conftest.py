"""Workflow tests: the real ASL file under moto, the real handlers in-process (see
cli/mq_cutover_cli/harness.py). Helpers to read an execution's history."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover_cli.simulate import Simulation

pytestmark = pytest.mark.workflow


def run(plan: Any, **kwargs: Any) -> Simulation:
    simulation = Simulation(plan_document=plan, **kwargs)
    simulation.run()
    return simulation


def entered(simulation: Simulation) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in simulation.history
        if "stateEnteredEventDetails" in e
    ]


def task_results(simulation: Simulation, state: str) -> list[dict[str, Any]]:
    """The Lambda payloads a state returned, in order (Map iterations included)."""
    return simulation.task_results(state)


def final_values(simulation: Simulation) -> dict[str, str]:
    return {name: info["final"] for name, info in simulation.report["parameters"].items()}


def initial_values(simulation: Simulation) -> dict[str, str]:
    return {name: info["initial"] for name, info in simulation.report["parameters"].items()}

"""Workflow tests: the real ASL file under moto, the real handlers in-process (see
cli/mq_cutover_cli/harness.py). Helpers to read an execution's history.

Every JSONata expression a workflow test makes the emulator evaluate is evaluated again with the
reference JavaScript JSONata (npm `jsonata`, pinned in package.json) when the test ends; any
difference fails that test (see cli/mq_cutover_cli/jsonata_reference.py for what counts as a
difference). Without node or the npm package the check fails: `make setup-node`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli import harness, jsonata_reference
from mq_cutover_cli.simulate import Simulation

pytestmark = pytest.mark.workflow

# One per process (each xdist worker has its own): an expression checked once in this process
# is not sent to node again.
_JSONATA = jsonata_reference.Recorder()
_DIFFERENCES_DIR = Path(__file__).resolve().parents[2] / "build" / "jsonata-differences"


@pytest.fixture(autouse=True)
def _jsonata_matches_reference(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """After the test: its new expressions, evaluated by node in one batch, must give what the
    emulator computed (or both must fail)."""
    monkeypatch.setattr(harness, "jsonata_recorder", _JSONATA)
    yield
    monkeypatch.setattr(harness, "jsonata_recorder", None)
    unavailable = None
    try:
        differences = _JSONATA.check()
    except jsonata_reference.ReferenceUnavailable as exc:
        unavailable, differences = str(exc), []
    if unavailable is not None:  # failed outside the except: one line, no chained traceback
        pytest.fail(f"JSONata reference check: {unavailable}", pytrace=False)
    if differences:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        saved = _DIFFERENCES_DIR / f"{name}-{worker}.json"
        jsonata_reference.save(differences, saved)
        pytest.fail(jsonata_reference.report(differences, saved), pytrace=False)


def run(plan: Any, **kwargs: Any) -> Simulation:
    simulation = Simulation(plan_document=plan, **kwargs)
    simulation.run()
    return simulation


# The states a run refused at Validate Plan enters: nothing after it changes anything.
NOT_STARTED = [
    "Validate Plan",
    "Describe Failure",
    "Route Failure",
    "Notify Not Started",
    "Not Started",
]


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

"""Every event the real state machine sent a handler, and every result a handler returned to it,
in runs that take every path (ordered with restart hooks, unordered, a rejection with its
rollback), is valid for that handler's models (mq_cutover.contracts)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover.contracts import EVENT_MODELS, RESULT_MODELS
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import World
from tests.workflow.conftest import run

pytestmark = pytest.mark.workflow


FORWARD = {
    "ValidatePlanFunction",
    "TakeLeaseFunction",
    "ProvisionBrokerFunction",
    "CheckBrokerFunction",
    "ResolveEndpointsFunction",
    "RequestApprovalFunction",
    "RepointClientsFunction",
    "CheckDrainFunction",
}
HOST = "i-0a1b2c3d4e5f60718"


def with_restart_hooks(plan: dict[str, Any]) -> dict[str, Any]:
    for group in ("producers", "consumers"):
        plan[group]["restartHook"] = {"commands": ["systemctl restart app"], "instanceIds": [HOST]}
    return plan


@pytest.mark.parametrize(
    ("plan_name", "approve", "reached"),
    [
        (
            "ordered_plan",
            "auto",
            FORWARD | {"CheckRestartFunction", "StopOnPremFunction", "CheckOnPremStopFunction"},
        ),
        ("unordered_plan", "reject:stopOnPrem", FORWARD | {"RollbackFunction"}),
    ],
)
def test_every_event_sent_and_result_returned_fits_its_model(
    plan_name: str, approve: str, reached: set[str], request: pytest.FixtureRequest
) -> None:
    plan: dict[str, Any] = request.getfixturevalue(plan_name)
    world = None
    if plan_name == "ordered_plan":  # one slow host: Check Restart returns "not yet", then done
        plan, world = with_restart_hooks(plan), World.from_document({"restartHosts": {HOST: 25}})
    sent: list[tuple[str, dict[str, Any]]] = []
    returned: list[tuple[str, Any]] = []

    def record(emulator: Emulator) -> None:
        emulator.after_hooks.append(lambda name, _event, result: returned.append((name, result)))

    def keep(emulator: Emulator, _arn: str) -> None:
        sent.extend(emulator.invocations)

    run(plan, world=world, approve=approve, before_start=record, after_run=keep)
    called = {name for name, _ in sent if name in EVENT_MODELS}
    assert reached <= called, sorted(reached - called)
    for name, event in sent:
        if name in EVENT_MODELS:
            EVENT_MODELS[name].model_validate(event)
    answered = {name for name, _ in returned if name in RESULT_MODELS}
    assert reached <= answered, sorted(reached - answered)
    for name, result in returned:
        if name in RESULT_MODELS:
            # Valid, and already in the model's own form: what the state machine got (JSON) is
            # exactly what the model dumps, key for key.
            typed = RESULT_MODELS[name].model_validate(result)
            assert json.loads(json.dumps(result)) == typed.dump(), name

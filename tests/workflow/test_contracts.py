"""Every event the real state machine sent a handler, in runs that take every path (ordered,
unordered, a rejection with its rollback), is valid for that handler's model."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.contracts import EVENT_MODELS
from mq_cutover_cli.harness import Emulator
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


@pytest.mark.parametrize(
    ("plan_name", "approve", "reached"),
    [
        ("ordered_plan", "auto", FORWARD | {"StopOnPremFunction", "CheckOnPremStopFunction"}),
        ("unordered_plan", "reject:stopOnPrem", FORWARD | {"RollbackFunction"}),
    ],
)
def test_every_event_sent_fits_its_model(
    plan_name: str, approve: str, reached: set[str], request: pytest.FixtureRequest
) -> None:
    plan: dict[str, Any] = request.getfixturevalue(plan_name)
    sent: list[tuple[str, dict[str, Any]]] = []

    def keep(emulator: Emulator, _arn: str) -> None:
        sent.extend(emulator.invocations)

    run(plan, approve=approve, after_run=keep)
    called = {name for name, _ in sent if name in EVENT_MODELS}
    assert reached <= called, sorted(reached - called)
    for name, event in sent:
        if name in EVENT_MODELS:
            EVENT_MODELS[name].model_validate(event)

"""What each Lambda handler receives from the state machine: one typed model per handler.

Handlers parse their event with Powertools' parser (`@event_parser(model=...)`), so a payload the
ASL builds wrongly (a missing, misspelt or unexpected field) fails at the handler's door with the
field's name, not later as a KeyError. `tests/unit/test_contracts.py` checks every Lambda Task
state's `Payload` against its handler's model, so the ASL and the handlers cannot drift apart.

Field names are the ASL's (camelCase aliases). The plan arrives packed (`mq_cutover.plan.pack`)
except at Validate Plan, which gets the execution input as it was given.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# A packed plan (`mq_cutover.plan.pack`) or, from tests and sample events, the plan document.
PackedPlan = str | dict[str, Any]


class _Event(BaseModel):
    # hide_input_in_errors: a refusal names the field, never echoes the event (its task token).
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    migration_id: str


class ValidatePlanEvent(BaseModel):
    """The execution input, unchecked (Validate Plan is what checks it, field by field)."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, hide_input_in_errors=True
    )

    plan: Any = None
    execution_name: str | None = None
    state_machine_arn: str | None = None  # its own runs are not "another run" (preflight)


class TakeLeaseEvent(_Event):
    execution_arn: str


class ProvisionBrokerEvent(_Event):
    execution_arn: str
    plan: PackedPlan


class BrokerEvent(_Event):
    """Check Broker and Resolve Endpoints."""

    plan: PackedPlan
    broker_id: str


class RequestApprovalEvent(_Event):
    plan: PackedPlan
    gate: str
    # Never shown: not in a repr, not in a log line, not in an error message.
    task_token: str = Field(repr=False)
    broker: dict[str, Any] | None = None
    drain: dict[str, Any] | None = None


class RepointClientsEvent(_Event):
    execution_arn: str
    plan: PackedPlan
    step: str
    broker: dict[str, Any]
    start: int | None = Field(default=None, alias="from")
    parameter_index: int | None = None
    parameter: str | None = None


class CheckDrainEvent(_Event):
    """Check Drain, Check Placement, Check Fence and Check Rollback Drain."""

    plan: PackedPlan
    previous: dict[str, Any] | None = None
    purpose: str | None = None
    side: str | None = None
    metric_brokers: list[str] | None = None
    started_at: str | None = None
    producers_quiet: bool | None = None


class CheckRestartEvent(_Event):
    plan: PackedPlan
    commands: list[dict[str, Any]]
    previous: dict[str, Any] | None = None
    step: str | None = None


class StopOnPremEvent(_Event):
    execution_arn: str
    plan: PackedPlan


class CheckOnPremStopEvent(_Event):
    stop: dict[str, Any]


class RollbackEvent(_Event):
    execution_arn: str
    plan: PackedPlan
    broker: dict[str, Any] | None = None
    cursor: Any = None
    failure: Any = None
    memo: dict[str, Any] | None = None
    started_at: str | None = None


# The template's function resource -> the model its handler parses.
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "ValidatePlanFunction": ValidatePlanEvent,
    "TakeLeaseFunction": TakeLeaseEvent,
    "ProvisionBrokerFunction": ProvisionBrokerEvent,
    "CheckBrokerFunction": BrokerEvent,
    "ResolveEndpointsFunction": BrokerEvent,
    "RequestApprovalFunction": RequestApprovalEvent,
    "RepointClientsFunction": RepointClientsEvent,
    "CheckDrainFunction": CheckDrainEvent,
    "CheckRestartFunction": CheckRestartEvent,
    "StopOnPremFunction": StopOnPremEvent,
    "CheckOnPremStopFunction": CheckOnPremStopEvent,
    "RollbackFunction": RollbackEvent,
}

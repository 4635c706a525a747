"""What each Lambda handler receives from the state machine, and what it returns to it: one typed
model per handler's event (`EVENT_MODELS`) and per result (`RESULT_MODELS`).

Handlers parse their event with Powertools' parser (`@event_parser(model=...)`), so a payload the
ASL builds wrongly (a missing, misspelt or unexpected field) fails at the handler's door with the
field's name, not later as a KeyError. `tests/unit/test_contracts.py` checks every Lambda Task
state's `Payload` against its handler's model, so the ASL and the handlers cannot drift apart.

Field names are the ASL's (camelCase aliases). The plan arrives packed (`mq_cutover.plan.pack`)
except at Validate Plan, which gets the execution input as it was given.

Each handler returns `Model.model_validate(result).dump()`: the logic's dict, checked against the
model and dumped with the same keys (only those the logic set). The unit test checks every
`$states.result.Payload.<field>` the ASL reads, and every field it reads from a variable that
holds a whole result (`$broker.brokerId`), is a field of that function's result model; the
workflow test validates every result real runs returned.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mq_cutover.plan import StopMethod

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


class CopyTopologyEvent(_Event):
    """Copy Topology: the broker as Check Broker / Resolve Endpoints know it, and whether the
    cutover gate will show the result (when it will not, a difference fails the step)."""

    execution_arn: str
    plan: PackedPlan
    broker_id: str
    engine: str
    gated: bool


class ShovelsEvent(_Event):
    """Start Shovels, Mark Shovel Baseline, Verify Shovels, Remove Shovels (RabbitMQ, mode
    unordered)."""

    execution_arn: str
    plan: PackedPlan
    action: str
    broker_id: str
    endpoint: str  # the Amazon MQ AMQP endpoint the clients were given
    baseline: dict[str, Any] | None = None  # Mark Shovel Baseline's, for Verify Shovels


class RequestApprovalEvent(_Event):
    plan: PackedPlan
    gate: str
    # Never shown: not in a repr, not in a log line, not in an error message.
    task_token: str = Field(repr=False)
    broker: dict[str, Any] | None = None
    drain: dict[str, Any] | None = None
    topology: dict[str, Any] | None = None  # Copy Topology's result, shown on the cutover gate


class RepointClientsEvent(_Event):
    execution_arn: str
    plan: PackedPlan
    step: str
    broker: dict[str, Any]
    start: int | None = Field(default=None, alias="from")
    parameter_index: int | None = None
    # A batch (mode unordered, producers.batchSize): the group's parameters
    # [parameterIndex, parameterIndex + parameterCount); `from` resumes inside it.
    parameter_count: int | None = Field(default=None, ge=1)
    # When an earlier call of the batch last wrote a parameter (its result's lastWrite).
    written_before: AwareDatetime | None = None
    parameter: str | None = None


class CheckDrainEvent(_Event):
    """Check Drain, Check Placement, Check Fence and Check Rollback Drain."""

    plan: PackedPlan
    previous: dict[str, Any] | None = None
    purpose: str | None = None
    side: str | None = None
    metric_brokers: list[str] | None = None
    # The Amazon MQ broker: its management API is read when target.metrics.source is managementApi
    broker_id: str | None = None
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
    "CopyTopologyFunction": CopyTopologyEvent,
    "ShovelsFunction": ShovelsEvent,
    "RequestApprovalFunction": RequestApprovalEvent,
    "RepointClientsFunction": RepointClientsEvent,
    "CheckDrainFunction": CheckDrainEvent,
    "CheckRestartFunction": CheckRestartEvent,
    "StopOnPremFunction": StopOnPremEvent,
    "CheckOnPremStopFunction": CheckOnPremStopEvent,
    "RollbackFunction": RollbackEvent,
}


class _Result(BaseModel):
    """A handler's result: every key it may hold is a field (a new key fails the handler, with
    the key's name and never the values)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    def dump(self) -> dict[str, Any]:
        """The JSON the state machine gets: the ASL's names, only the keys the logic set (an
        optional field it left out stays out, one it set to null stays null)."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


class _OpenResult(_Result):
    """A large result that grows with the product (a drain reading, a rollback action): the
    fields the state machine reads are typed, any other key is carried as it is."""

    model_config = ConfigDict(extra="allow")


class ValidatePlanResult(_Result):
    summary: dict[str, Any]  # the plan without its long lists (`mq_cutover.plan.summary`)
    packed: str


class TakeLeaseResult(_Result):
    migration_id: str
    execution_arn: str
    since: str | None
    took_over_from: str | None  # the execution whose lease this one took (it had ended)
    holder_status: str | None = None  # that execution's status, when it took over


class ProvisionBrokerResult(_Result):
    broker_id: str
    broker_arn: str
    engine: str
    created: bool


class BrokerStateResult(_Result):
    broker_id: str
    state: str


class EndpointsResult(_Result):
    broker_id: str
    broker_name: str
    metric_brokers: list[str]
    engine: str
    protocol: str
    endpoints: list[str]
    client_url: str


class TopologyResult(_Result):
    """What Copy Topology did and found (`mq_cutover.topology`): both brokers compared after
    the copy. Lists are cut to a few entries; the counts say how many there were."""

    engine: str
    matches: bool
    summary: str
    counts: dict[str, int]
    differences: list[str]
    difference_count: int
    changes: list[str] = Field(default_factory=list)  # what was transformed on the way
    change_count: int = 0
    refused: list[str] = Field(default_factory=list)  # what is not copied, and why
    refused_count: int = 0
    # ActiveMQ: a configuration revision applies when the broker reboots. `awaitingReboot`:
    # one is associated and not yet applied (the state machine waits for the broker, then
    # calls Copy Topology again); `rebootStarted`: this call started the reboot.
    awaiting_reboot: bool = False
    reboot_started: bool = False
    revision_written: bool = False
    configuration_id: str | None = None
    revision: int | None = None
    configuration_bytes: int | None = None
    not_on_prem: list[str] = Field(default_factory=list)  # kept from the base revision
    not_on_prem_count: int = 0
    advisory_topics_skipped: int = 0
    authorization: str | None = None  # what was (not) copied of the authorization entries


class ShovelsResult(_OpenResult):
    """A shovel step (`mq_cutover.shovel_steps`): what the state machine reads is typed
    (`verified` after a verification); the step's counts are carried as they are. Never the
    shovels' destination URI (it holds a password)."""

    action: str
    verified: bool | None = None
    summary: str | None = None
    baseline: dict[str, Any] | None = None  # Mark Shovel Baseline
    clients_left: dict[str, int] | None = None  # consumers still on-prem then (not shovels)


class ApprovalResult(_Result):
    """Request Approval's own result (the state machine waits for the gate's decision, which
    the approval API sends with the task token; this is only logged)."""

    approval_id: str
    gate: str
    expires_at: str
    approvers: list[str]


class ConflictingParameter(_Result):
    name: str
    reason: str


class RepointClientsResult(_Result):
    """The names are the first `parameters.NAMES_SHOWN` of each list; the counts are whole."""

    step: str
    changed: list[str]
    unchanged: list[str]
    conflicts: list[ConflictingParameter]
    changed_count: int
    unchanged_count: int
    conflicts_count: int
    start: int  # the group's parameters [start:next] were handled (or the one asked for)
    restart_command_id: str | None
    next: int
    done: bool
    remaining: int
    last_write: str | None = None  # a batch not done yet: when this call last wrote (ISO 8601)


class DrainReading(_OpenResult):
    """Check Drain's summary (`mq_cutover.drain.fold`): the condition's state and what the
    state machine and the approval email read; the rest of the reading is carried as it is."""

    purpose: str
    side: str
    done: bool
    timed_out: bool
    messages_left: int
    initial_messages_left: int
    initial_queues_with_messages: list[Any]
    queues_with_messages: list[Any]
    never_drain: list[Any]
    drained: bool | None = None  # not for placement
    counts: dict[str, Any] | None = None  # the fence's final count reconciliation
    consecutive_empty: int
    required_empty: int
    polls: int
    extensions_left: int


class RestartCommand(_Result):
    group: str
    command_id: str
    status: str
    hosts: int


class RestartCheckResult(_Result):
    done: bool
    started_at: str
    deadline_at: str
    checks: int
    poll_interval_seconds: int
    hosts: int
    succeeded: int
    pending_count: int
    pending: list[str]
    commands: list[RestartCommand]


class StopOnPremResult(_Result):
    method: StopMethod
    command_id: str | None = None  # ssmCommand
    instance_ids: list[str] | None = None  # ec2Stop


class OnPremStopResult(StopOnPremResult):
    """The stop as it was started, with how far it got."""

    done: bool
    status: str | None = None  # the SSM command's
    completed: int | None = None
    targets: int | None = None
    instances: dict[str, str] | None = None  # each instance's EC2 state


class RollbackResult(_OpenResult):
    """One rollback action (`mq_cutover.rollback.roll_back_step`); `brokers` and `counts` are
    added when it finished."""

    action: str
    side: str | None
    purpose: str | None
    wait: str | None
    finished: bool
    restored: list[str]  # the first `parameters.NAMES_SHOWN` names; the counts are whole
    conflicts: list[dict[str, Any]]
    moved: list[str]
    restored_count: int
    conflicts_count: int
    moved_count: int
    restart_command_ids: dict[str, str]
    memo: dict[str, Any]
    cursor: dict[str, Any]
    brokers: dict[str, Any] | None = None
    counts: dict[str, Any] | None = None


# The template's function resource -> the model of what its handler returns.
RESULT_MODELS: dict[str, type[_Result]] = {
    "ValidatePlanFunction": ValidatePlanResult,
    "TakeLeaseFunction": TakeLeaseResult,
    "ProvisionBrokerFunction": ProvisionBrokerResult,
    "CheckBrokerFunction": BrokerStateResult,
    "ResolveEndpointsFunction": EndpointsResult,
    "CopyTopologyFunction": TopologyResult,
    "ShovelsFunction": ShovelsResult,
    "RequestApprovalFunction": ApprovalResult,
    "RepointClientsFunction": RepointClientsResult,
    "CheckDrainFunction": DrainReading,
    "CheckRestartFunction": RestartCheckResult,
    "StopOnPremFunction": StopOnPremResult,
    "CheckOnPremStopFunction": OnPremStopResult,
    "RollbackFunction": RollbackResult,
}

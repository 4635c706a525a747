"""One execution of the real state machine in the emulator, to drive step by step (tests, the
simulator): the world set up, the execution started under the migration id, and helpers to wait
for a gate, read its email, call the approval API, and wait for the end."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback_task,
)

from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover_cli.approval_http import ApprovalApiClient
from mq_cutover_cli.faults import Fault
from mq_cutover_cli.faults import parse as parse_fault
from mq_cutover_cli.harness import DEFAULT_APPROVAL_API_URL, DEFAULT_APPROVERS, Emulator, SimClock
from mq_cutover_cli.world import World, default_world

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
LINK = re.compile(r"(https?://\S+/approvals/[A-Za-z0-9_.-]+)\?decision=(approve|reject|extend)")


def document_of(plan: Any) -> Any:
    if not isinstance(plan, str):
        return plan
    try:
        return json.loads(plan)
    except json.JSONDecodeError:
        return None


def execution_name(plan: Any) -> str:
    """The migration id when it can be an execution name, else a throwaway one (the plan will
    fail validation and say why)."""
    document = document_of(plan)
    candidate = document.get("migrationId") if isinstance(document, dict) else None
    if (
        isinstance(candidate, str)
        and 0 < len(candidate) <= 80
        and all(c.isalnum() or c in "-_" for c in candidate)
    ):
        return candidate
    return f"invalid-plan-{uuid.uuid4().hex[:8]}"


@dataclass
class ApprovalEmail:
    subject: str
    message: str
    gate: str
    approve_link: str
    reject_link: str
    extend_link: str | None = None  # only on a timeout gate that may be extended
    to: str = ""  # the approver whose inbox it reached

    @classmethod
    def read(cls, mail: dict[str, str]) -> ApprovalEmail:
        """The gate and the links of an approval email, as a person reads them."""
        links = {d: url for url, d in LINK.findall(mail["message"])}
        gate = mail["subject"].rsplit("approve ", 1)[-1].rstrip("?")
        return cls(
            mail["subject"],
            mail["message"],
            gate,
            links["approve"],
            links["reject"],
            links.get("extend"),
            mail.get("to", ""),
        )

    @property
    def approval_id(self) -> str:
        """The gate's id in the link (every approver's link of one gate shares it)."""
        return self.approve_link.rsplit("/", 1)[-1].split(".", 1)[0]

    @property
    def approver(self) -> str:
        """The approver the link was issued to (as signed in the link)."""
        return self.approve_link.rsplit("/", 1)[-1].split(".")[1]


@dataclass
class LiveRun:
    emulator: Emulator
    arn: str
    plan: MigrationPlan | None
    world: World
    initial: dict[str, str]
    gate_timeouts: list[dict[str, Any]] = field(default_factory=list)  # gates_time_out=True
    api: ApprovalApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = ApprovalApiClient(self.emulator)

    def status(self) -> dict[str, Any]:
        return self.emulator.status(self.arn)

    def entered(self) -> list[str]:
        return self.emulator.states_entered(self.arn)

    def approval_emails(self, to: str | None = None) -> list[ApprovalEmail]:
        """Approval emails in every approver's inbox, or in one's (`to`)."""
        return [ApprovalEmail.read(mail) for mail in self.emulator.inbox("ApprovalTopic", to)]

    def wait_until(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"{what}: not within {timeout}s (status {self.status()['status']})")

    def wait_for_gate(self, gate: str, nth: int = 1, approver: str = "ana") -> ApprovalEmail:
        """The nth approval email of `gate` in `approver`'s inbox, once the run is waiting at
        it."""

        def email() -> ApprovalEmail | None:
            found = [e for e in self.approval_emails(approver) if e.gate == gate]
            return found[nth - 1] if len(found) >= nth else None

        return self.wait_until(f"approval email for {gate}", email)  # type: ignore[no-any-return]

    def wait_until_done(self, timeout: float = 60.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            status = self.status()
            return status if status["status"] in TERMINAL else None

        return self.wait_until("the end of the execution", done, timeout)  # type: ignore[no-any-return]

    def parameter_values(self) -> dict[str, str]:
        ssm = self.emulator.client("ssm")
        return {n: ssm.get_parameter(Name=n)["Parameter"]["Value"] for n in self.world.parameters}


@dataclass
class GateTimeouts:
    """Nobody decides (`simulate --approve none`): each gate times out at once, on simulated
    time. When a gate's task starts waiting for its task token (its Lambda has sent the emails
    and stored the gate), the simulated clock moves on by the gate's whole TimeoutSeconds and
    the wait ends with no decision: moto raises the same timeout as when a real wait runs out,
    so the history shows the gate's TaskTimedOut (States.Timeout), then whatever the state
    machine does with it, at the simulated times they would have on AWS.

    Patched (a moto 5.2.5 internal): `StateTaskServiceCallback._wait_for_task_token_timeout`."""

    emulator: Emulator
    timed_out: list[dict[str, Any]] = field(default_factory=list)  # {"state", "seconds"}

    def install(self) -> None:
        gates = self

        def no_decision(
            state: callback_task.StateTaskServiceCallback, timeout_seconds: float, _: Any
        ) -> None:
            gates.emulator.clock.advance(timeout_seconds)
            gates.timed_out.append({"state": state.name, "seconds": timeout_seconds})
            return None

        patch = mock.patch.object(
            callback_task.StateTaskServiceCallback, "_wait_for_task_token_timeout", no_decision
        )
        patch.start()
        self.emulator.cleanups.append(patch.stop)


@contextmanager
def live_run(
    plan: Any,
    world: World | None = None,
    *,
    pace_seconds: float = 0.0,
    approval_timeout_scale: float = 1.0,
    approval_api_url: str = DEFAULT_APPROVAL_API_URL,
    before_start: Callable[[Emulator], None] | None = None,
    log_level: str = "INFO",
    fail_at: list[str] | None = None,
    real_time: bool = False,
    stack_parameters: dict[str, str] | None = None,
    approvers: tuple[tuple[str, str, str | None], ...] = DEFAULT_APPROVERS,
    gates_time_out: bool = False,
) -> Iterator[LiveRun]:
    """`gates_time_out`: nobody will decide; each gate times out at once on simulated time
    (`GateTimeouts`), and `LiveRun.gate_timeouts` lists them."""
    faults = [Fault(*parse_fault(spec)) for spec in fail_at or []]
    try:
        parsed: MigrationPlan | None = parse_plan(plan)
    except PlanInvalid:
        parsed = None
    if world is None:
        world = default_world(parsed) if parsed else World.from_raw_plan(document_of(plan))
    if parsed is not None:
        world.fill_defaults(parsed)
    emulator = Emulator(
        SimClock(real_seconds_per_wait=pace_seconds),
        approval_api_url=approval_api_url,
        approval_timeout_scale=approval_timeout_scale,
        log_level=log_level,
        real_time=real_time,
        stack_parameters=stack_parameters,
        approvers=approvers,
    )
    with emulator.running():
        gate_timeouts = GateTimeouts(emulator)
        if gates_time_out:
            gate_timeouts.install()
        world.install(emulator, parsed)
        for fault in faults:
            fault.install(emulator)
        if before_start:
            before_start(emulator)
        ssm = emulator.client("ssm")
        initial = {n: ssm.get_parameter(Name=n)["Parameter"]["Value"] for n in world.parameters}
        text = plan if isinstance(plan, str) else json.dumps(plan)
        arn = emulator.start(text, name=execution_name(plan))
        try:
            yield LiveRun(emulator, arn, parsed, world, initial, gate_timeouts.timed_out)
        finally:
            _drive_to_an_end(emulator, arn)


def _drive_to_an_end(emulator: Emulator, arn: str, timeout: float = 60.0) -> None:
    """A run left running would go on in the background and write into the next emulator's
    (global) moto backends. moto cannot stop a run blocked on a task token, so open tokens are
    failed, and the run is stopped, until it has ended."""
    sfn = emulator.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while emulator.status(arn)["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"execution {arn} would not end")
        emulator.fail_open_tokens()
        # (AttributeError: moto cannot stop a run whose worker has not started yet; try again)
        with contextlib.suppress(sfn.exceptions.ClientError, AttributeError):
            sfn.stop_execution(executionArn=arn, error="HarnessTeardown")
        time.sleep(0.05)

"""`mq-cutover start | status | report`: run a migration on a deployed stack, follow it, and keep
its record.

Everything is read from what AWS already keeps: the stack's outputs, the execution and its
history (each step's input and output), the plan it was started with (its input, or the plan that
input names in the stack's plan bucket or Parameter Store), the decision API for an open gate's
votes, and the client parameters' versions in Parameter Store. Nothing here reads a task token or
the approvals table, and nothing imports the simulator.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import ClientError

from mq_cutover import clock
from mq_cutover.errors import MigrationError
from mq_cutover.gate_facts import GATE_TITLES, SIDE_NAMES
from mq_cutover.parameters import pre_label
from mq_cutover.plan_store import (
    S3_SCHEME,
    PlanReference,
    is_reference,
    load_document,
    parse_reference_document,
    plan_key,
)
from mq_cutover.redaction import redact_text
from mq_cutover.validation import ATTEMPT_SEPARATOR
from mq_cutover_cli.decide import shown, stack_output, stack_outputs

STATE_MACHINE_OUTPUT = "StateMachineArn"
SCHEDULE_ROLE_OUTPUT = "CutoverScheduleRoleArn"
DECISION_API_OUTPUT = "DecisionApiUrl"
PLAN_BUCKET_OUTPUT = "PlanBucketName"
# Step Functions takes an execution input of at most 256 KiB: a plan larger than this goes to
# the stack's plan bucket and the run starts with {"planRef": ...} (so does every schedule, and
# any plan with --by-reference); the margin leaves room for the JSON around it.
INLINE_START_LIMIT = 200 * 1024
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# The steps that read a broker's queues (functions/check_drain): their outputs are the readings.
DRAIN_CHECKS = ("Check Drain", "Check Fence", "Check Placement", "Check Rollback Drain")
# The steps that move client parameters, and what each does to the group it moves.
CLIENT_STEPS = {
    "producers": ("producers", "amazonMq"),
    "consumers": ("consumers", "amazonMq"),
    "widen-consumers": ("consumers", "widened"),
    "narrow-consumers": ("consumers", "amazonMq"),
}
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
# A person's abort (mq-cutover abort), as the run meets it: the step that stops for it fails
# with this error, its cause "aborted by NAME (PRINCIPAL): REASON" (mq_cutover.lease.abort_text).
ABORT_ERROR = "AbortRequested"
_ABORTED_BY = re.compile(
    r"aborted by (?P<name>.*?) \((?P<principal>arn:[^)]*)\): (?P<reason>.*)\Z", re.DOTALL
)
# The on-prem stop begins in these steps: from then on an abort is refused. A step that failed
# with one of these errors did not pass it (an abort came first, or another run holds the lease).
POINT_OF_NO_RETURN_STEPS = ("Stop On-Prem", "Confirm On-Prem Stopped")
_NOT_PASSED = (ABORT_ERROR, "LeaseLost")
ROLLBACK_STEP = "Roll Back"
ROLLBACK_ENDS = {"Rolled Back": "rolled back", "Rollback Failed": "rollback failed"}
CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, clear: `--watch` redraws in place


class OperateError(Exception):
    """The command cannot do what was asked; the message is the one line the user sees."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# --- small readers ------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ") if moment else "?"


def _when(value: Any) -> datetime | None:
    """A timestamp from boto3 (datetime) or a step's output (ISO text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = int(max(0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _payload(output: Any) -> Any:
    """A Lambda task's result without the invoke envelope ({"StatusCode", "Payload"})."""
    document = _json(output)
    if isinstance(document, dict) and "Payload" in document and "StatusCode" in document:
        return document["Payload"]
    return document


def console_link(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def read_plan(path: str) -> tuple[str, dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OperateError(f"--plan: cannot read {path}: {exc.strerror or exc}") from exc
    document = _json(text)
    if not isinstance(document, dict):
        raise OperateError(f"--plan: {path} is not a JSON object (a migration plan)")
    return text, document


def _migration_id(document: dict[str, Any]) -> str:
    candidate = document.get("migrationId")
    if not isinstance(candidate, str) or not _NAME.fullmatch(candidate):
        raise OperateError(
            "migrationId: must be 1-80 letters, digits, '-' or '_' (it names the execution)"
        )
    return candidate


def execution_arn_of(state_machine_arn: str, name: str) -> str:
    head, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


# --- finding a migration's execution ------------------------------------------------------
def find_execution(sfn: Any, state_machine_arn: str, migration_id: str) -> dict[str, Any] | None:
    """The latest attempt of a migration: the execution named after it, or `<id>--<n>`."""
    attempt = re.compile(rf"{re.escape(migration_id)}(--\d+)?")
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        found += [e for e in page.get("executions", []) if attempt.fullmatch(str(e["name"]))]
    if not found:
        return None
    return max(found, key=lambda e: _when(e["startDate"]) or datetime.min.replace(tzinfo=UTC))


def history_of(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events += page.get("events", [])
    return events


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def error_message(cause: Any) -> str:
    """A task failure's cause as a person reads it: a Lambda error's cause is JSON
    ({"errorMessage", "errorType", ...}); a gate failed by the approval API gives the text."""
    document = _json(cause)
    if isinstance(document, dict) and isinstance(document.get("errorMessage"), str):
        return str(document["errorMessage"])
    return str(cause or "")


# --- what the history says ----------------------------------------------------------------
@dataclass
class Step:
    name: str
    kind: str
    entered: datetime | None
    exited: datetime | None = None
    failed: str | None = None  # the error of a task that failed in this step
    output: Any = None  # the step's result (Lambda payload or the gate's answer)
    gate: str | None = None  # a gate's name, when the step waits for a person
    scheduled_resource: str = ""

    @property
    def seconds(self) -> float | None:
        if self.entered is None:
            return None
        end = self.exited or datetime.now(UTC)
        return (end - self.entered).total_seconds()


@dataclass
class Record:
    """An execution read from its description and history."""

    execution: dict[str, Any]
    events: list[dict[str, Any]]
    plan: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    plan_ref: str | None = None  # where the plan was, when the run was started by reference
    plan_problem: str | None = None  # why that plan could not be read back

    @classmethod
    def read(
        cls,
        sfn: Any,
        execution_arn: str,
        plan_reader: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Record:
        """`plan_reader`: reads the plan an input `{"planRef": ...}` names (without it, such
        a run's plan is unknown)."""
        execution = dict(sfn.describe_execution(executionArn=execution_arn))
        events = history_of(sfn, execution_arn)
        plan = _json(execution.get("input"))
        plan_ref, problem = None, None
        if is_reference(plan):
            plan_ref = str(plan.get("planRef"))
            if plan.get("versionId"):
                plan_ref += f" (version {plan['versionId']})"
            try:
                if plan_reader is None:
                    raise MigrationError("no reader for a plan by reference")
                plan = plan_reader(plan)
            except MigrationError as exc:
                plan, problem = {}, str(exc)
        record = cls(execution, events, plan if isinstance(plan, dict) else {})
        record.plan_ref, record.plan_problem = plan_ref, problem
        record.steps = _steps(events)
        stopped = _when(execution.get("stopDate"))
        if stopped is not None:  # a Fail state, or a stopped run, has no exit event
            for step in record.steps:
                step.exited = step.exited or stopped
        return record

    @property
    def status(self) -> str:
        return str(self.execution.get("status", "?"))

    @property
    def migration_id(self) -> str:
        return str(self.plan.get("migrationId") or self.execution.get("name", "?"))

    def drain_readings(self) -> list[dict[str, Any]]:
        """The queue readings the history holds, oldest first: each check's last reading
        (state, side, purpose, time, messages left, queues with messages)."""
        readings = []
        for step in self.steps:
            output = step.output
            if step.name not in DRAIN_CHECKS or not isinstance(output, dict):
                continue
            readings.append(
                {
                    "state": step.name,
                    "side": str(output.get("side") or "onPrem"),
                    "purpose": output.get("purpose"),
                    "at": output.get("checkedAt") or _iso(step.exited),
                    "messagesLeft": output.get("messagesLeft"),
                    "watchedQueues": output.get("watchedQueues"),
                    "queuesWithMessages": output.get("queuesWithMessages") or [],
                    "queuesWithMessagesCount": output.get("queuesWithMessagesCount", 0),
                    "missingCount": output.get("missingCount", 0),
                    "staleCount": output.get("staleCount", 0),
                    "consecutiveEmpty": output.get("consecutiveEmpty"),
                    "requiredEmpty": output.get("requiredEmpty"),
                    "deadlineAt": output.get("deadlineAt"),
                }
            )
        return readings

    def latest_readings(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for reading in self.drain_readings():
            latest[reading["side"]] = reading
        return latest

    def open_gate(self) -> Step | None:
        if self.status != "RUNNING":
            return None
        for step in reversed(self.steps):
            if step.exited is None:
                return step if step.gate else None
        return None

    def current(self) -> Step | None:
        for step in reversed(self.steps):
            if step.exited is None:
                return step
        return self.steps[-1] if self.steps else None

    def approvals(self) -> list[dict[str, Any]]:
        """Every gate the run opened and what became of it (who, when, why)."""
        found = []
        for step in self.steps:
            if not step.gate:
                continue
            entry: dict[str, Any] = {
                "gate": step.gate,
                "state": step.name,
                "title": GATE_TITLES.get(step.gate, step.gate),
                "openedAt": _iso(step.entered),
                "decidedAt": _iso(step.exited),
                "waitedSeconds": round(step.seconds or 0) if step.exited else None,
            }
            answer = step.output if isinstance(step.output, dict) else {}
            if step.exited is None:
                entry["outcome"] = "open"
            elif step.failed:
                error, _, cause = step.failed.partition(": ")
                entry["outcome"] = {
                    "Rejected": "rejected",
                    "States.Timeout": "timed out",
                    ABORT_ERROR: "aborted",
                }.get(error, error or "failed")
                entry["detail"] = cause
                by = re.search(r" rejected by (.*?)(?::|\s\(no reason given\)|$)", cause)
                aborted = _ABORTED_BY.match(error_message(cause))
                entry["by"] = by.group(1) if by else aborted.group("name") if aborted else None
            elif answer.get("extend"):
                entry.update(outcome="extended", by=answer.get("by"), comment=answer.get("comment"))
                entry["extendMinutes"] = answer.get("extendMinutes")
            else:
                outcome = "approved" if answer.get("approved") else "answered"
                entry.update(outcome=outcome, by=answer.get("by"), comment=answer.get("comment"))
            found.append(entry)
        return found

    def client_moves(self) -> list[dict[str, Any]]:
        """Each client step's parameters, in order: (state, step, changed/restored names)."""
        moves: list[dict[str, Any]] = []
        for step in self.steps:
            output = step.output
            if not isinstance(output, dict) or step.exited is None:
                continue
            if step.name == "Roll Back":
                names = list(output.get("restored") or [])
                if int(output.get("restoredCount") or 0) > len(names):
                    # A long list is cut to its first names in the state: every parameter the
                    # plan lists that was not left in conflict went back.
                    kept = {str(c.get("name")) for c in output.get("conflicts") or []}
                    names = [n for n in self._plan_parameters() if n not in kept]
                if names:
                    moves.append({"state": step.name, "step": "rollback", "names": names})
                continue
            kind = output.get("step") or ("producers" if step.name == "Repoint Producer" else None)
            if kind in CLIENT_STEPS and ("changed" in output or "unchanged" in output):
                names = [*(output.get("changed") or []), *(output.get("unchanged") or [])]
                handled = int(output.get("changedCount") or 0) + int(
                    output.get("unchangedCount") or 0
                )
                if handled > len(names) and isinstance(output.get("start"), int):
                    # Cut to the first names in the state: the call handled its group's
                    # parameters [start:next].
                    group = (self.plan.get(CLIENT_STEPS[kind][0]) or {}).get("parameters") or []
                    names = [str(n) for n in group[output["start"] : output["start"] + handled]]
                moves.append(
                    {
                        "state": step.name,
                        "step": kind,
                        "names": names,
                        "changed": list(output.get("changed") or []),
                        "at": _iso(step.exited),
                    }
                )
        return moves

    def _plan_parameters(self) -> list[str]:
        return [
            str(n)
            for group in ("producers", "consumers")
            for n in (self.plan.get(group) or {}).get("parameters") or []
        ]

    def where_clients_are(self) -> dict[str, dict[str, str]]:
        """Each plan parameter's place as far as the run's steps say: onPrem, widened or
        amazonMq (by group)."""
        groups: dict[str, dict[str, str]] = {}
        for group in ("producers", "consumers"):
            names = (self.plan.get(group) or {}).get("parameters") or []
            groups[group] = {str(n): "onPrem" for n in names if isinstance(n, str)}
        for move in self.client_moves():
            for name in move["names"]:
                for group, places in groups.items():
                    if name not in places:
                        continue
                    if move["step"] == "rollback":
                        places[name] = "onPrem"
                    elif CLIENT_STEPS[move["step"]][0] == group:
                        places[name] = CLIENT_STEPS[move["step"]][1]
        return groups

    def abort(self) -> dict[str, Any] | None:
        """A person's abort, once the run met it (the first step that failed with
        AbortRequested): who, their IAM principal, why, when and in which step. An abort the run
        has not met yet is on the lease item only: it shows at the run's next step or reading."""
        state = ""
        for event in self.events:
            details = _details(event)
            if str(event["type"]).endswith("StateEntered"):
                state = str(details.get("name") or "")
            if event["type"] != "TaskFailed" or details.get("error") != ABORT_ERROR:
                continue
            text = error_message(details.get("cause"))
            said = _ABORTED_BY.match(text)
            return {
                "by": said.group("name") if said else None,
                "principal": said.group("principal") if said else None,
                "reason": said.group("reason") if said else text,
                "at": _iso(_when(event.get("timestamp"))),
                "state": state,
                "text": text,
            }
        return None

    def point_of_no_return(self) -> dict[str, Any] | None:
        """When the on-prem stop began (an abort is refused from then on), or None."""
        for step in self.steps:
            if step.name not in POINT_OF_NO_RETURN_STEPS:
                continue
            if step.failed and step.failed.partition(":")[0] in _NOT_PASSED:
                continue
            return {"state": step.name, "at": _iso(step.entered)}
        return None

    def rollback(self) -> dict[str, Any] | None:
        """The rollback, once it began: when, after which failure (the state, error and cause
        the Roll Back step was given), and whether it ended (rolled back, rollback failed)."""
        began: Step | None = None
        failure: dict[str, Any] = {}
        entered = False
        for event in self.events:
            kind, details = str(event["type"]), _details(event)
            if kind.endswith("StateEntered"):
                entered = details.get("name") == ROLLBACK_STEP and began is None
                if entered:
                    began = next((s for s in self.steps if s.name == ROLLBACK_STEP), None)
            elif kind == "TaskScheduled" and entered:
                entered = False
                parameters = _json(details.get("parameters")) or {}
                payload = parameters.get("Payload") if isinstance(parameters, dict) else None
                if isinstance(payload, dict) and isinstance(payload.get("failure"), dict):
                    failure = payload["failure"]
        if began is None:
            return None
        ended = next((s for s in self.steps if s.name in ROLLBACK_ENDS), None)
        return {
            "at": _iso(began.entered),
            "afterState": failure.get("state"),
            "error": failure.get("error"),
            "cause": error_message(failure.get("cause")),
            "outcome": ROLLBACK_ENDS[ended.name] if ended else "rolling back",
            "endedAt": _iso(ended.entered) if ended else None,
        }

    def counts(self) -> dict[str, Any] | None:
        """The reconciliation of message counts since the run began (the fence's or the
        rollback's): the newest the run produced."""
        found = None
        for step in self.steps:
            if isinstance(step.output, dict) and isinstance(step.output.get("counts"), dict):
                found = step.output["counts"]
        output = _json(self.execution.get("output"))
        if isinstance(output, dict) and isinstance(output.get("counts"), dict):
            found = output["counts"]
        return found


def _steps(events: list[dict[str, Any]]) -> list[Step]:
    """States entered and exited (Choice and Pass states are decisions, not steps)."""
    steps: list[Step] = []
    open_steps: dict[str, Step] = {}
    last: Step | None = None
    for event in events:
        kind = str(event["type"])
        details = _details(event)
        at = _when(event.get("timestamp"))
        if kind.endswith("StateEntered"):
            state = kind[: -len("StateEntered")]
            if state in ("Choice", "Pass"):
                continue
            step = Step(str(details.get("name", "?")), state, at)
            steps.append(step)
            open_steps[step.name] = step
            last = step
        elif kind.endswith("StateExited"):
            ended = open_steps.pop(str(details.get("name", "?")), None)
            if ended is not None:
                ended.exited = at
                if ended.output is None and not ended.failed:
                    ended.output = _payload(details.get("output"))
        elif kind == "TaskScheduled" and last is not None:
            last.scheduled_resource = str(details.get("resource", ""))
            if "waitForTaskToken" in last.scheduled_resource:
                # Only the gate's name is read from the request: it also holds the token.
                parameters = _json(details.get("parameters")) or {}
                payload = parameters.get("Payload") if isinstance(parameters, dict) else None
                gate = payload.get("gate") if isinstance(payload, dict) else None
                last.gate = str(gate) if gate else last.name
        elif kind == "TaskSucceeded" and last is not None:
            last.output = _payload(details.get("output"))
        elif kind in ("TaskFailed", "TaskTimedOut") and last is not None:
            error = str(details.get("error") or ("States.Timeout" if "TimedOut" in kind else ""))
            last.failed = f"{error}: {details.get('cause') or ''}".rstrip(": ")
        elif kind == "MapIterationStarted":
            continue
    return steps


# --- start ----------------------------------------------------------------------------------
def _preflight(session: Any, stack: str, document: dict[str, Any]) -> bool:
    from mq_cutover_cli import preflight_cmd

    checks = preflight_cmd.checks_for(session, stack, document)
    failed = [check for check in checks if not check.ok and not check.transient]
    unanswered = [check for check in checks if check.transient]
    if failed or unanswered:
        preflight_cmd.print_checks(checks)
        why = (
            f"{len(failed)} of {len(checks)} checks failed"
            if failed
            else f"AWS did not answer {len(unanswered)} of {len(checks)} checks (run start again)"
        )
        print(f"mq-cutover: preflight: {why}; nothing was started", file=sys.stderr)
        return False
    print(f"preflight: {len(checks)} checks passed")
    return True


def _existing(sfn: Any, state_machine_arn: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(sfn.describe_execution(executionArn=execution_arn_of(state_machine_arn, name)))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


def _refuse_existing(existing: dict[str, Any], name: str) -> OperateError:
    return OperateError(
        f"migration {name} was already started ({existing.get('status')}, "
        f"{_iso(_when(existing.get('startDate')))}): an execution name is used once; "
        f"see `mq-cutover status {name}`; start its next attempt with --retry once it has "
        "ended without success, or give the plan a new migrationId",
        status=1,
    )


def start(args: argparse.Namespace, session: Any, transport: Any = None) -> int:
    try:
        return _start(args, session)
    except OperateError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return exc.status


def _next_attempt(sfn: Any, state_machine: str, migration_id: str) -> str:
    """--retry: `<migrationId>--<n+1>` after an attempt that ended without success (failed,
    rolled back, aborted, timed out). A running or successful migration is not retried."""
    latest = find_execution(sfn, state_machine, migration_id)
    if latest is None:
        raise OperateError(
            f"--retry: migration {migration_id} was never started: start it without --retry",
            status=1,
        )
    latest_name, status = str(latest["name"]), str(latest.get("status"))
    if status in ("RUNNING", "PENDING_REDRIVE"):
        raise OperateError(
            f"--retry: {latest_name} is still {status}: follow it with `mq-cutover status "
            f"{migration_id}`, or ask for its rollback with `mq-cutover abort`",
            status=1,
        )
    if status == "SUCCEEDED":
        raise OperateError(f"--retry: {latest_name} succeeded: there is nothing to retry", status=1)
    number = re.fullmatch(rf"{re.escape(migration_id)}{ATTEMPT_SEPARATOR}(\d+)", latest_name)
    return f"{migration_id}{ATTEMPT_SEPARATOR}{int(number.group(1)) + 1 if number else 2}"


def _start(args: argparse.Namespace, session: Any) -> int:
    text, document = read_plan(args.plan)
    schedule_at = _schedule_time(args.at, args.time_zone) if args.at else None
    outputs = stack_outputs(session.client("cloudformation"), args.stack)
    state_machine = stack_output(outputs, STATE_MACHINE_OUTPUT, args.stack)
    role = stack_output(outputs, SCHEDULE_ROLE_OUTPUT, args.stack) if schedule_at else ""
    sfn = session.client("stepfunctions")
    name = ""
    if isinstance(document.get("migrationId"), str) and _NAME.fullmatch(document["migrationId"]):
        migration_id = document["migrationId"]
        if getattr(args, "retry", False):
            name = _next_attempt(sfn, state_machine, migration_id)
        else:
            # Read-only, and a clearer answer than the preflight's: this migration ran already.
            existing = _existing(sfn, state_machine, migration_id)
            if existing is not None:
                raise _refuse_existing(existing, migration_id)
    name = name or _migration_id(document)
    schedule = schedule_name(args.stack, name) if schedule_at else ""
    size = len(text.encode())
    by_reference = (
        schedule_at is not None or getattr(args, "by_reference", False) or size > INLINE_START_LIMIT
    )
    bucket = _plan_bucket(outputs, args.stack, size) if by_reference else ""
    if not _preflight(session, args.stack, document):
        return 1
    start_input = text
    if by_reference:
        reference = upload_plan(session.client("s3"), bucket, _migration_id(document), text)
        start_input = json.dumps(reference.document())
        print(f"plan: {reference} ({size:,} bytes; the run starts with a reference to it)")
    if schedule_at is not None:
        schedule_input = _schedule_input(state_machine, name, start_input)
        return _schedule(
            session, args, state_machine, role, (name, schedule), schedule_input, schedule_at
        )
    try:
        arn = str(
            sfn.start_execution(stateMachineArn=state_machine, name=name, input=start_input)[
                "executionArn"
            ]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise _refuse_existing(_existing(sfn, state_machine, name) or {}, name) from exc
        raise
    print(f"started {name}")
    print(f"  execution: {arn}")
    print(f"  console:   {console_link(arn)}")
    print(f"  follow it: mq-cutover status {name} --stack {args.stack} --watch")
    return 0


def _schedule_time(at: str, zone_name: str) -> datetime:
    """--at as an aware time in --time-zone; refused when it is not in the future."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OperateError(f"--time-zone: {zone_name!r} is not an IANA time zone") from exc
    try:
        moment = datetime.fromisoformat(at)
    except ValueError as exc:
        raise OperateError(f"--at: {at!r} is not a time like 2026-12-01T02:00:00") from exc
    moment = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    now = clock.utcnow().astimezone(zone)
    if moment <= now:
        raise OperateError(
            f"--at: {moment.strftime('%Y-%m-%dT%H:%M:%S')} {zone_name} is in the past "
            f"(it is {now.strftime('%Y-%m-%dT%H:%M:%S')} there)"
        )
    return moment.replace(microsecond=0)


SCHEDULE_NAME_LIMIT = 64  # EventBridge Scheduler's limit on a schedule's name


def schedule_name(stack: str, migration_id: str) -> str:
    """`<stack name>.<migration id>`: the operator policy may create only schedules named after
    its own stack (a stack name holds no ".", so no other stack's prefix matches). Refused,
    before anything is created, when it would be longer than Scheduler allows."""
    stack_name = stack.split("/")[1] if stack.startswith("arn:") and "/" in stack else stack
    name = f"{stack_name}.{migration_id}"
    if len(name) > SCHEDULE_NAME_LIMIT:
        raise OperateError(
            f"migrationId: the schedule's name {name} would be {len(name)} characters, the "
            f"limit is {SCHEDULE_NAME_LIMIT} (<stack name>.<migrationId>): shorten the "
            "migrationId, or start the run at the time without --at"
        )
    return name


def _schedule_input(state_machine: str, name: str, start_input: str) -> str:
    """What the schedule passes to StartExecution: the run's input is a reference to the plan,
    so the schedule's input is a few hundred bytes whatever the plan's size."""
    return json.dumps({"StateMachineArn": state_machine, "Name": name, "Input": start_input})


def _plan_bucket(outputs: dict[str, str], stack: str, size: int) -> str:
    """The stack's plan bucket, or why a plan cannot go by reference to this stack."""
    bucket = outputs.get(PLAN_BUCKET_OUTPUT, "")
    if bucket:
        return bucket
    raise OperateError(
        f"stack {stack} has no {PLAN_BUCKET_OUTPUT} output (a plan by reference: --at, "
        f"--by-reference, or a plan over {INLINE_START_LIMIT // 1024} KiB; this one is "
        f"{size:,} bytes): deploy this version of the template"
    )


def upload_plan(s3: Any, bucket: str, migration_id: str, text: str) -> PlanReference:
    """The plan, as written, at plans/<migrationId>/<sha256>.json in the stack's bucket: the
    same plan gives the same key, and Validate Plan checks the content against it."""
    body = text.encode()
    key = plan_key(migration_id, body)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise OperateError(
            f"--plan: could not upload to {S3_SCHEME}{bucket}/{key}: "
            f"{error.get('Code', 'Error')} ({redact_text(str(error.get('Message', '')))[:200]}); "
            "nothing was started",
            status=1,
        ) from exc
    return PlanReference("s3", bucket=bucket, key=key)


def plan_reader(
    session: Any, outputs: dict[str, str]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Reads the plan a run's input names, with the caller's credentials (`status`, `report`)."""

    def read(document: dict[str, Any]) -> dict[str, Any]:
        reference = parse_reference_document(document, bucket=outputs.get(PLAN_BUCKET_OUTPUT, ""))
        return load_document(reference, s3=session.client("s3"), ssm=session.client("ssm"))

    return read


def _schedule(
    session: Any,
    args: argparse.Namespace,
    state_machine: str,
    role: str,
    names: tuple[str, str],
    schedule_input: str,
    at: datetime,
) -> int:
    name, schedule = names  # the migration's, the schedule's
    partition = state_machine.split(":")[1]
    local = at.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        session.client("scheduler").create_schedule(
            Name=schedule,
            Description=f"mq-cutover: start migration {name} (mq-cutover start --at)",
            ScheduleExpression=f"at({local})",
            ScheduleExpressionTimezone=args.time_zone,
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            State="ENABLED",
            Target={
                "Arn": f"arn:{partition}:scheduler:::aws-sdk:sfn:startExecution",
                "RoleArn": role,
                "Input": schedule_input,
                # Retrying is safe: the same execution name cannot start a second run.
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3},
            },
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConflictException":
            raise OperateError(
                f"a schedule {schedule} already exists: delete it first "
                f"(aws scheduler delete-schedule --name {schedule})",
                status=1,
            ) from exc
        raise
    print(f"scheduled {name} at {local} {args.time_zone} ({_iso(at)})")
    print(f"  schedule:  {schedule} (one-time; deleted after it runs)")
    print(
        f"  preflight again before the window: mq-cutover preflight --plan {args.plan} "
        f"--stack {args.stack}"
    )
    return 0


# --- status ---------------------------------------------------------------------------------
def _record_of(args: argparse.Namespace, session: Any) -> Record:
    outputs = stack_outputs(session.client("cloudformation"), args.stack)
    state_machine = stack_output(outputs, STATE_MACHINE_OUTPUT, args.stack)
    sfn = session.client("stepfunctions")
    found = find_execution(sfn, state_machine, args.migration_id)
    if found is None:
        raise OperateError(
            f"no migration {shown(args.migration_id)} on stack {args.stack}", status=1
        )
    return Record.read(sfn, str(found["executionArn"]), plan_reader(session, outputs))


def _gate_votes(
    session: Any, stack: str, migration_id: str, gate: str, transport: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """The open gate's record from the decision API (votes, quorum, expiry), or why not."""
    from mq_cutover_cli.api import DecisionApi, DecisionApiError, region_of, urllib_transport
    from mq_cutover_cli.decide import StackOutputMissing

    try:
        url = stack_output(
            stack_outputs(session.client("cloudformation"), stack), DECISION_API_OUTPUT, stack
        )
        credentials = session.get_credentials()
        if credentials is None:
            return None, "no AWS credentials to sign the decision API request"
        region = region_of(url) or session.region_name

        def whoami() -> str:
            return str(session.client("sts").get_caller_identity()["Arn"])

        api = DecisionApi(url, credentials, region, transport or urllib_transport, whoami)
        answer = api.get(migration_id)
    except (DecisionApiError, StackOutputMissing, ClientError, OSError) as exc:
        return None, str(exc)
    gates = [g for g in answer.body.get("pending") or [] if isinstance(g, dict)]
    for entry in gates:
        if entry.get("gate") == gate:
            return entry, None
    return None, f"the decision API lists no open {gate} gate (answer {answer.status})"


def status_lines(
    record: Record,
    gate_info: dict[str, Any] | None = None,
    gate_problem: str | None = None,
    stack: str | None = None,
) -> list[str]:
    now = datetime.now(UTC)
    execution = record.execution
    started = _when(execution.get("startDate"))
    stopped = _when(execution.get("stopDate"))
    took = ((stopped or now) - started).total_seconds() if started else None
    mode = record.plan.get("mode", "?")
    lines = [
        f"{shown(record.migration_id)} ({shown(mode)}): {record.status}"
        + (f" after {duration(took)}" if stopped else f" for {duration(took)}"),
        f"  execution: {execution.get('executionArn')}",
        f"  console:   {console_link(str(execution.get('executionArn')))}",
    ]
    if record.plan_ref:
        lines.append(
            f"  plan:      {shown(record.plan_ref)}"
            + (f" (not readable: {shown(record.plan_problem)})" if record.plan_problem else "")
        )
    current = record.current()
    if record.status == "RUNNING" and current is not None:
        lines.append(
            f"  step:      {current.name} (since {_clock(current.entered)}, "
            f"{duration(current.seconds)})"
        )
    elif stopped:
        cause = execution.get("cause") or execution.get("error")
        lines.append(f"  ended:     {_iso(stopped)}" + (f": {shown(cause)}" if cause else ""))
    lines += abort_lines(record, stack)
    lines += _broker_lines(record)
    lines += _gate_lines(record, gate_info, gate_problem)
    lines += _parameter_lines(record)
    lines.append("  last events:")
    lines += [f"    {line}" for line in _last_events(record.events)]
    return lines


def abort_lines(record: Record, stack: str | None = None) -> list[str]:
    """A person's abort (who, why, when, where the run met it), the rollback (since when, after
    what, how it ended), or whether an abort is still possible, all from the history."""
    lines = []
    abort = record.abort()
    if abort is not None:
        who = f"{abort['by']} ({abort['principal']})" if abort["by"] else "a person"
        lines.append(
            f"  abort:     asked by {shown(who)}, met at {_clock(_when(abort['at']))} in "
            f"{shown(abort['state'] or '?')}: {shown(abort['reason'])}"
        )
    rollback = record.rollback()
    if rollback is not None:
        since = _clock(_when(rollback["at"]))
        after = f"after {shown(rollback['afterState'] or '?')} failed ({rollback['error'] or '?'})"
        if rollback["outcome"] == "rolling back":
            lines.append(f"  rollback:  rolling back since {since}, {after}")
        else:
            lines.append(
                f"  rollback:  {rollback['outcome']} at {_clock(_when(rollback['endedAt']))} "
                f"(began {since}, {after})"
            )
    passed = record.point_of_no_return()
    if passed is not None and rollback is None:
        lines.append(
            f"  abort:     no longer possible: past the point of no return since "
            f"{_clock(_when(passed['at']))} ({shown(passed['state'])} began)"
        )
    elif record.status == "RUNNING" and abort is None and rollback is None:
        where = f" --stack {shlex.quote(stack)}" if stack else ""
        lines.append(
            "  abort:     possible until the on-prem stop begins: mq-cutover abort "
            f"{shlex.quote(record.migration_id)}{where} --reason TEXT"
        )
    return lines


def _broker_lines(record: Record) -> list[str]:
    latest = record.latest_readings()
    if not latest:
        return ["  brokers:   no queue reading yet"]
    lines = []
    for side in ("onPrem", "amazonMq"):
        reading = latest.get(side)
        if reading is None:
            continue
        left = reading["messagesLeft"]
        unknown = reading["missingCount"] or reading["staleCount"]
        amount = f"{left:,}" if isinstance(left, int) else "?"
        head = (
            f"  {SIDE_NAMES[side]}: {amount} messages left in "
            f"{reading['queuesWithMessagesCount']} of {reading['watchedQueues']} queues "
            f"({reading['state']}, reading at {_clock(_when(reading['at']))}"
        )
        if reading["requiredEmpty"]:
            head += f", {reading['consecutiveEmpty']}/{reading['requiredEmpty']} empty readings"
        lines.append(head + ")")
        if unknown:
            lines.append(
                f"    {reading['missingCount']} queues without data, {reading['staleCount']} "
                "stale (unknown, not zero)"
            )
        queues = [q for q in reading["queuesWithMessages"] if isinstance(q, dict)]
        width = max((len(shown(q.get("queue", ""))) for q in queues), default=0)
        for queue in queues:
            in_flight = queue.get("inFlight") or 0
            lines.append(
                f"    {shown(queue.get('queue', '?')).ljust(width)}  {queue.get('messages', 0):>9,}"
                + (f"  ({in_flight:,} in flight)" if in_flight else "")
            )
        more = reading["queuesWithMessagesCount"] - len(queues)
        if more > 0:
            lines.append(f"    ... and {more} more queues with messages")
    return lines


def _gate_lines(
    record: Record, gate_info: dict[str, Any] | None, gate_problem: str | None
) -> list[str]:
    step = record.open_gate()
    if step is None:
        return ["  gate:      none open"]
    gate = step.gate or "?"
    lines = [
        f"  gate:      {shown(gate)} open since {_clock(step.entered)} ({duration(step.seconds)})"
        f": {GATE_TITLES.get(gate, gate)}"
    ]
    if gate_info is None:
        lines.append(
            f"    votes not shown: {shown(gate_problem or 'the decision API was not asked')}"
        )
        return lines
    quorum = gate_info.get("quorum") or 1
    approvals = gate_info.get("approvals") or 0
    lines.append(
        f"    {approvals} of {quorum} approval{'s' if quorum != 1 else ''}; expires "
        f"{shown(gate_info.get('expiresAt', '?'))}"
    )
    for vote in gate_info.get("votes") or []:
        if isinstance(vote, dict):
            lines.append(
                f"    vote: {shown(vote.get('name') or vote.get('approver', '?'))} "
                f"{shown(vote.get('decision', '?'))} at {shown(vote.get('at', '?'))}"
                + (f" via {shown(vote['source'])}" if vote.get("source") else "")
            )
    return lines


def parameter_progress(record: Record) -> tuple[int, int, dict[str, dict[str, int]]]:
    """(moved to Amazon MQ, all, {group: {place: count}})."""
    places = record.where_clients_are()
    total = sum(len(group) for group in places.values())
    moved = sum(1 for group in places.values() for place in group.values() if place == "amazonMq")
    summary = {
        group: {
            place: sum(1 for p in names.values() if p == place) for place in set(names.values())
        }
        for group, names in places.items()
    }
    return moved, total, summary


def _parameter_lines(record: Record) -> list[str]:
    moved, total, summary = parameter_progress(record)
    parts = []
    for group in ("producers", "consumers"):
        counts = summary.get(group, {})
        size = sum(counts.values())
        part = f"{group} {counts.get('amazonMq', 0)} of {size}"
        if counts.get("widened"):
            part += f", {counts['widened']} widened"
        parts.append(part)
    return [f"  parameters: {moved} of {total} moved to Amazon MQ ({'; '.join(parts)})"]


def _last_events(events: list[dict[str, Any]], count: int = 8) -> list[str]:
    shown_events = []
    state = ""  # a task's own events do not name their state: the last one entered does
    for event in events:
        kind = str(event["type"])
        details = _details(event)
        if kind.endswith("StateEntered"):
            state = str(details.get("name") or "")
        if kind.startswith(("Choice", "Pass")) or kind in (
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "MapIterationStarted",
            "MapIterationSucceeded",
        ):
            continue
        what = str(details.get("name") or (state if kind.startswith("Task") else ""))
        if kind in ("TaskFailed", "ExecutionFailed", "TaskTimedOut"):
            cause = error_message(details.get("cause"))[:120]  # a Lambda error: its message
            what = f"{state + ': ' if kind != 'ExecutionFailed' else ''}"
            what += f"{details.get('error', '')} {cause}".strip()
        shown_events.append(
            f"{_clock(_when(event.get('timestamp')))}  {kind}"
            + (f"  {shown(what)}" if what else "")
        )
    return shown_events[-count:]


def status(args: argparse.Namespace, session: Any, transport: Any = None) -> int:
    try:
        while True:
            record = _record_of(args, session)
            gate = record.open_gate()
            info, problem = (None, None)
            if gate is not None:
                info, problem = _gate_votes(
                    session, args.stack, record.migration_id, gate.gate or "", transport
                )
            text = "\n".join(status_lines(record, info, problem, args.stack))
            if args.watch:
                print(CLEAR_SCREEN + text, flush=True)
            else:
                print(text)
            if not args.watch or record.status in TERMINAL:
                return 0
            pause(max(0.5, float(args.interval)))
    except OperateError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 0


# `--watch` waits with this (a test replaces it with a step of the run it follows).
pause: Callable[[float], None] = time.sleep


# --- report ---------------------------------------------------------------------------------
def _parameter_history(ssm: Any, name: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Name": name, "WithDecryption": False, "MaxResults": 50}
    while True:
        page = ssm.get_parameter_history(**kwargs)
        versions += page.get("Parameters", [])
        if not page.get("NextToken"):
            return sorted(versions, key=lambda v: int(v["Version"]))
        kwargs["NextToken"] = page["NextToken"]


def _value(version: dict[str, Any]) -> str:
    if version.get("Type") == "SecureString":
        return "(SecureString: value not shown)"
    return redact_text(str(version.get("Value", "")))


def parameter_changes(ssm: Any, record: Record) -> tuple[list[dict[str, Any]], list[str]]:
    """Every version this run wrote into a client parameter, from Parameter Store's history:
    the versions after the one labelled `pre-<migrationId>` (the value before the run), up to
    the end of the run. Each is matched, in order, to the step that reported it."""
    label = pre_label(record.migration_id)
    stopped = _when(record.execution.get("stopDate"))
    steps_by_name: dict[str, list[str]] = {}
    for move in record.client_moves():
        for name in move.get("changed", move["names"]):
            steps_by_name.setdefault(name, []).append(move["state"])
    changes: list[dict[str, Any]] = []
    problems: list[str] = []
    for group in ("producers", "consumers"):
        for name in (record.plan.get(group) or {}).get("parameters") or []:
            try:
                versions = _parameter_history(ssm, str(name))
            except ClientError as exc:
                error = exc.response.get("Error", {})
                problems.append(f"{name}: {error.get('Code')}: {error.get('Message')}")
                continue
            before = next((v for v in versions if label in (v.get("Labels") or [])), None)
            if before is None:
                continue  # never changed by this migration
            previous = before
            states = steps_by_name.get(str(name), [])
            for version in versions:
                if int(version["Version"]) <= int(before["Version"]):
                    continue
                at = _when(version.get("LastModifiedDate"))
                if stopped is not None and at is not None and at > stopped:
                    break
                changes.append(
                    {
                        "parameter": str(name),
                        "group": group,
                        "version": int(version["Version"]),
                        "from": _value(previous),
                        "to": _value(version),
                        "at": _iso(at),
                        "by": version.get("LastModifiedUser"),
                        "step": states.pop(0) if states else None,
                    }
                )
                previous = version
    changes.sort(key=lambda c: (c["at"] or "", c["parameter"]))
    return changes, problems


def chart_series(record: Record) -> dict[str, list[dict[str, Any]]]:
    """Messages left on each broker over time: each check's last reading and, for each wait
    (a side, a purpose, its start), its first reading (the history keeps it with every later
    summary: `initialMessagesLeft` at `startedAt`)."""
    series: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, Any, Any]] = set()
    for step in record.steps:
        output = step.output
        if step.name not in DRAIN_CHECKS or not isinstance(output, dict):
            continue
        side = str(output.get("side") or "onPrem")
        points = series.setdefault(side, [])
        wait = (side, output.get("purpose"), output.get("startedAt"))
        if wait not in seen and output.get("startedAt"):
            seen.add(wait)
            if output.get("startedAt") != output.get("checkedAt"):
                points.append(
                    {
                        "at": output.get("startedAt"),
                        "messagesLeft": output.get("initialMessagesLeft"),
                        "state": step.name,
                        "reading": "first",
                    }
                )
        points.append(
            {
                "at": output.get("checkedAt") or _iso(step.exited),
                "messagesLeft": output.get("messagesLeft"),
                "state": step.name,
                "reading": "last",
            }
        )
    for points in series.values():
        points.sort(key=lambda p: str(p["at"]))
    return series


def build_report(record: Record, ssm: Any) -> dict[str, Any]:
    execution = record.execution
    started = _when(execution.get("startDate"))
    stopped = _when(execution.get("stopDate"))
    changes, problems = parameter_changes(ssm, record)
    moved, total, _ = parameter_progress(record)
    series = chart_series(record)
    latest = record.latest_readings()
    return {
        "migrationId": record.migration_id,
        "mode": record.plan.get("mode"),
        "planRef": record.plan_ref,
        "planProblem": record.plan_problem,
        "execution": {
            "arn": execution.get("executionArn"),
            "name": execution.get("name"),
            "status": record.status,
            "startedAt": _iso(started),
            "stoppedAt": _iso(stopped),
            "seconds": round((stopped - started).total_seconds()) if started and stopped else None,
            "error": execution.get("error"),
            "cause": execution.get("cause"),
            "console": console_link(str(execution.get("executionArn"))),
        },
        "timeline": [
            {
                "state": step.name,
                "type": step.kind,
                "enteredAt": _iso(step.entered),
                "exitedAt": _iso(step.exited),
                "seconds": round(step.seconds, 3)
                if step.exited and step.seconds is not None
                else None,
                **({"failed": step.failed} if step.failed else {}),
            }
            for step in record.steps
        ],
        "approvals": record.approvals(),
        "parameters": {"moved": moved, "total": total},
        "parameterChanges": changes,
        "parameterProblems": problems,
        "messagesLeft": {
            side: {
                "at": reading["at"],
                "messagesLeft": reading["messagesLeft"],
                "queues": reading["queuesWithMessages"],
            }
            for side, reading in latest.items()
        },
        "drainReadings": series,
        "counts": record.counts(),
    }


def summary_lines(report_: dict[str, Any]) -> list[str]:
    execution = report_["execution"]
    lines = [
        f"report of {shown(report_['migrationId'])} ({shown(report_.get('mode') or '?')}): "
        f"{execution['status']}"
        + (f" in {duration(execution['seconds'])}" if execution["seconds"] is not None else ""),
        f"  steps:      {len(report_['timeline'])} (from {execution['startedAt']} to "
        f"{execution['stoppedAt'] or 'now'})",
    ]
    for approval in report_["approvals"]:
        by = f" by {shown(approval['by'])}" if approval.get("by") else ""
        lines.append(
            f"  approval:   {shown(approval['gate'])} {approval['outcome']}{by} at "
            f"{approval['decidedAt'] or '-'}"
        )
    lines.append(
        f"  parameters: {len(report_['parameterChanges'])} changes; "
        f"{report_['parameters']['moved']} of {report_['parameters']['total']} on Amazon MQ "
        "at the end"
    )
    for problem in report_["parameterProblems"]:
        lines.append(f"    not read: {shown(problem)}")
    counts = report_.get("counts") or {}
    for side in ("onPrem", "amazonMq"):
        figures = counts.get(side)
        if isinstance(figures, dict):
            lines.append(
                f"  {SIDE_NAMES[side]}: at start {figures.get('atStart')}, enqueued "
                f"{figures.get('enqueued')}, consumed {figures.get('dequeued')}, left "
                f"{figures.get('left')}"
                + (
                    f"; {figures.get('flaggedCount')} queues do not add up"
                    if figures.get("flaggedCount")
                    else ""
                )
            )
    if not counts:
        lines.append("  counts:     none (the run never reached the fence or a rollback's end)")
    return lines


def report(args: argparse.Namespace, session: Any, transport: Any = None) -> int:
    try:
        record = _record_of(args, session)
    except OperateError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return exc.status
    document = build_report(record, session.client("ssm"))
    for line in summary_lines(document):
        print(line)
    try:
        if args.json_path:
            _write(args.json_path, json.dumps(document, indent=2, default=str) + "\n")
            print(f"  json: {args.json_path}")
        if args.html_path:
            from mq_cutover_cli.report_page import render

            _write(args.html_path, render(document))
            print(f"  html: {args.html_path}")
    except OSError as exc:
        print(f"mq-cutover: cannot write the report: {exc}", file=sys.stderr)
        return 2
    return 0


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def timed(values: Iterable[tuple[str, Any]]) -> list[tuple[datetime, Any]]:
    """(time, value) pairs with a readable time, in time order (the chart's points)."""
    points = [(moment, value) for at, value in values if (moment := _when(at)) is not None]
    return sorted(points, key=lambda point: point[0])

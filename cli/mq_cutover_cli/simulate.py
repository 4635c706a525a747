"""Run a migration plan offline: the real state machine, the real handlers, a simulated world.

Used by `mq-cutover simulate`, the demo and the workflow tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mq_cutover.drain import is_ignored
from mq_cutover.errors import PlanInvalid
from mq_cutover.parameters import own_label, pre_label
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover_cli import fast_metrics
from mq_cutover_cli.approval_http import ApprovalApiClient
from mq_cutover_cli.harness import DEFAULT_APPROVERS, Emulator
from mq_cutover_cli.live import TERMINAL, ApprovalEmail, document_of, live_run
from mq_cutover_cli.world import World, default_world


class CannotSimulate(Exception):
    """The plan cannot be rehearsed offline (the message says why, in one line)."""


def cannot_simulate(plan_document: Any, world: World | None) -> str | None:
    """Why this plan cannot be rehearsed offline, found before anything runs (None: it can).
    A plan that fails validation *can*: the run shows Validate Plan refusing it."""
    try:
        plan = parse_plan(document_of(plan_document))
    except PlanInvalid:
        return None
    if plan.target.adopt_broker_id is not None:
        return (
            f"target.adoptBrokerId: {plan.target.adopt_broker_id} is a broker in your account; "
            "the simulator only has the brokers it creates (rehearse with target.create)"
        )
    world = world or default_world(plan)
    patterns = [q for q in plan.on_prem.queues if any(char in q for char in "*?[")]
    names = [q.name for q in world.queues]
    if patterns and not any(is_ignored(name, patterns) for name in names):
        return (
            f"onPrem.queues: no simulated queue matches {', '.join(patterns)} (a pattern names "
            "no queue by itself): give --world with the queues it should match"
        )
    return None


@dataclass
class Approver:
    """The simulated approvers: each reads the approval emails in their own inbox, opens their
    link (GET: the page), then presses a button (POST), as a person would; one after another
    until the gate is decided (a quorum of N takes N of them).

    policy: "auto" approves every gate; "reject:GATE" rejects that gate and approves the others;
    "extend:GATE" asks to wait longer at that gate while it may, then approves; "none" never
    decides (the gate times out).
    """

    emulator: Emulator
    policy: str = "auto"
    decided: list[dict[str, Any]] = field(default_factory=list)
    _read: int = 0
    _closed: set[str] = field(default_factory=set)

    def service(self) -> list[dict[str, Any]]:
        if self.policy == "none":
            return []
        api = ApprovalApiClient(self.emulator)
        emails = self.emulator.inbox("ApprovalTopic")
        acted = []
        for mail in emails[self._read :]:
            self._read += 1
            email = ApprovalEmail.read(mail)
            if email.approval_id in self._closed:
                continue  # decided already: the others leave their email unanswered
            gate = email.gate
            decision = "approve"
            link = email.approve_link
            if self.policy == f"reject:{gate}":
                decision, link = "reject", email.reject_link
            elif self.policy == f"extend:{gate}" and email.extend_link:
                decision, link = "extend", email.extend_link
            page = api.get(f"{link}?decision={decision}")
            form = {"decision": decision, "comment": f"{decision} (offline simulator)"}
            response = api.post(link, form)
            if response["statusCode"] != 200 or "Vote recorded" not in str(response["body"]):
                self._closed.add(email.approval_id)
            entry = {
                "gate": gate,
                "approver": email.to,
                "decision": decision,
                "pageStatus": page["statusCode"],
                "postStatus": response["statusCode"],
            }
            self.decided.append(entry)
            acted.append(entry)
        return acted


Printer = Callable[[str], None]


SIDES = {"onPrem": "on-prem", "amazonMq": "on Amazon MQ"}


def _drain_line(output: dict[str, Any]) -> str:
    where = SIDES.get(str(output.get("side")), "on-prem")
    purpose = output.get("purpose", "drain")
    label = {"placement": "placement: ", "fence": "fence: "}.get(purpose, "")
    head = f"messages left {where}: {output.get('messagesLeft')}"
    if purpose == "placement":
        head = (
            "a consumer on each broker for every queue"
            if not output.get("unplacedCount")
            else f"{output['unplacedCount']} queue(s) without a consumer on each broker"
        )
    line = (
        f"{label}{head} "
        f"(empty readings {output.get('consecutiveEmpty')}/{output.get('requiredEmpty')}, "
        f"reading {output.get('readings')}, call {output.get('polls')}, "
        f"deadline {output.get('deadlineAt')})"
    )
    if output.get("missingCount"):
        line += f", no data for {output['missingCount']} queue(s): {output.get('missing')}"
    if output.get("staleCount"):
        stale = ", ".join(f"{q['queue']} ({q['ageSeconds']} s old)" for q in output["stale"])
        line += f", stale data: {stale}"
    if output.get("stillReceivingCount"):
        receiving = ", ".join(q["queue"] for q in output["stillReceiving"])
        line += f", STILL RECEIVING on-prem: {receiving}"
    if output.get("neverDrainCount"):
        never = ", ".join(f"{q['queue']} ({q['messages']})" for q in output["neverDrain"])
        line += f", WILL NEVER DRAIN (no consumer {where}): {never}"
    if output.get("unplacedCount"):
        unplaced = ", ".join(
            f"{q['queue']} (on-prem {q.get('onPrem')}, Amazon MQ {q.get('amazonMq')})"
            for q in output["unplaced"]
        )
        line += f", consumers not on both brokers: {unplaced}"
    if output.get("connectedCount"):
        connected = ", ".join(f"{q['queue']} ({q['consumers']})" for q in output["connected"])
        line += f", consumers STILL CONNECTED on-prem: {connected}"
    if output.get("ignoredCount"):
        ignored = ", ".join(f"{q['queue']}={q['messages']}" for q in output.get("ignored", []))
        line += f", ignored: {ignored}"
    return line


def _rollback_line(output: dict[str, Any]) -> str:
    action = output["action"]
    if action == "drain":
        return f"rollback: drain {SIDES.get(str(output.get('side')), output.get('side'))} first"
    if action == "done":
        brokers = output.get("brokers") or {}
        left = ", ".join(
            f"{SIDES.get(side, side)} {info.get('messagesLeft', 'unknown')}"
            for side, info in brokers.items()
        )
        return f"rollback finished; messages left: {left}"
    moved = output.get("restored") or output.get("moved") or []
    line = f"rollback: {action}: {len(moved)} parameter(s)"
    if output.get("conflicts"):
        line += (
            f", left alone (changed by someone else): {[c['name'] for c in output['conflicts']]}"
        )
    return line


@dataclass
class Simulation:
    """One offline run and everything a report needs."""

    plan_document: Any
    world: World | None = None
    approve: str = "auto"
    printer: Printer | None = None
    pace_seconds: float = 0.0
    timeout_seconds: float = 600.0
    approval_timeout_scale: float = 1.0
    fail_at: list[str] = field(default_factory=list)
    before_start: Callable[[Emulator], None] | None = None
    after_run: Callable[[Emulator, str], None] | None = None
    # The simulated stack's parameters (e.g. {"RequiredGates": ""} for a stack that lets a plan
    # run without gates: rehearsals, benchmarks).
    stack_parameters: dict[str, str] | None = None
    approvers: tuple[tuple[str, str, str | None], ...] = DEFAULT_APPROVERS
    # The simulated CloudWatch answers GetMetricData and ListMetrics from an index (moto scans
    # every datapoint: minutes per reading at 1,000 queues); `fast_metrics` checks it equal.
    fast_metric_reads: bool = True
    # "s3" or "ssm": the run starts with {"planRef": ...}, the plan put in the simulated
    # stack's plan bucket (or under its plan parameter prefix) first, as an operator would.
    plan_reference: str | None = None
    # Real seconds between looks at the run (its status, the approvers' mail). Each look is a
    # few API calls on the GIL the workflow's own thread needs: the benchmark's long simulated
    # drains look once a second (a gate then waits up to a second of real time, not simulated).
    follow_seconds: float = 0.1
    report: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def task_results(self, state: str) -> list[Any]:
        """What a state returned, in order (a Lambda task's Payload; Map iterations included)."""
        results = []
        for event in self.history:
            details = event.get("stateExitedEventDetails")
            if details and details["name"] == state:
                output = json.loads(details.get("output") or "null")
                if isinstance(output, dict) and "Payload" in output:
                    results.append(output["Payload"])
                elif output is not None:
                    results.append(output)
        return results

    def _say(self, emulator: Emulator, text: str, when: datetime | None = None) -> None:
        if self.printer:
            moment = emulator.clock.at(when) if when else emulator.clock.now()
            self.printer(f"[{moment.strftime('%H:%M:%S')} sim] {text}")

    def _before_start(self, emulator: Emulator) -> None:
        if self.fast_metric_reads:
            fast_metrics.enable(emulator)
        emulator.plan_reference = self.plan_reference
        if self.before_start:
            self.before_start(emulator)

    def run(self) -> dict[str, Any]:
        """The run's report; CannotSimulate (one line) if it cannot be rehearsed."""
        problem = cannot_simulate(self.plan_document, self.world)
        if problem:
            raise CannotSimulate(problem)
        with live_run(
            self.plan_document,
            self.world,
            pace_seconds=self.pace_seconds,
            approval_timeout_scale=self.approval_timeout_scale,
            before_start=self._before_start,
            fail_at=self.fail_at,
            stack_parameters=self.stack_parameters,
            approvers=self.approvers,
            gates_time_out=self.approve == "none",
        ) as run:
            emulator = run.emulator
            started = emulator.clock.now()
            self._say(emulator, f"started execution {run.status()['name']}")
            approver = Approver(emulator, self.approve)
            status = self._follow(emulator, run.arn, approver)
            self.history = emulator.history(run.arn)
            self.report = self._build_report(
                emulator, run.world, run.plan, run.arn, status, approver, run.initial
            )
            self.report["simulatedSeconds"] = int((emulator.clock.now() - started).total_seconds())
            self.report["gateTimeouts"] = [
                {"state": gate["state"], "minutes": round(gate["seconds"] / 60, 1)}
                for gate in run.gate_timeouts
            ]
            if self.after_run:
                self.after_run(emulator, run.arn)
        return self.report

    def _follow(self, emulator: Emulator, arn: str, approver: Approver) -> dict[str, Any]:
        seen = 0
        entered: dict[int, str] = {}
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            if self.printer:  # the whole history is fetched each time: only when narrating
                events = emulator.history(arn)
                for event in events[seen:]:
                    self._narrate(emulator, event, entered)
                seen = len(events)
            for entry in approver.service():
                self._say(
                    emulator,
                    f"approver {entry['approver']} opened their link and chose "
                    f"{entry['decision']} for gate {entry['gate']} (HTTP {entry['postStatus']})",
                )
            status = emulator.status(arn)
            if status["status"] in TERMINAL:
                if self.printer:
                    for event in emulator.history(arn)[seen:]:
                        self._narrate(emulator, event, entered)
                return status
            if time.monotonic() > deadline:
                states = emulator.states_entered(arn)
                raise CannotSimulate(
                    f"the run did not end within {self.timeout_seconds:g} s of real time (still "
                    f"in {states[-1] if states else 'its first state'} after "
                    f"{len(states)} states)"
                )
            time.sleep(self.follow_seconds)

    def _narrate(self, emulator: Emulator, event: dict[str, Any], entered: dict[int, str]) -> None:
        kind = event["type"]
        when = event.get("timestamp")

        def say(text: str) -> None:
            self._say(emulator, text, when)

        if "stateEnteredEventDetails" in event:
            name = event["stateEnteredEventDetails"]["name"]
            entered[event["id"]] = name
            if name.startswith(("Approve ", "Confirm ")):
                say(f"-> {name}: waiting for approval (email sent)")
            else:
                say(f"-> {name}")
        elif kind == "TaskSucceeded":
            output = json.loads(event["taskSucceededEventDetails"].get("output") or "{}")
            payload = output.get("Payload") if isinstance(output, dict) else None
            if isinstance(payload, dict) and "messagesLeft" in payload:
                say("   " + _drain_line(payload))
            elif isinstance(payload, dict) and "changed" in payload and "step" in payload:
                say(f"   {payload['step']}: changed {payload['changed']}")
            elif isinstance(payload, dict) and "action" in payload and "memo" in payload:
                say("   " + _rollback_line(payload))
            elif isinstance(payload, dict) and "state" in payload and "brokerId" in payload:
                say(f"   broker {payload['brokerId']} is {payload['state']}")
        elif kind == "TaskFailed":
            details = event["taskFailedEventDetails"]
            say(f"   task failed: {details.get('error')}")
        elif kind == "ExecutionSucceeded":
            say("execution SUCCEEDED")
        elif kind == "ExecutionFailed":
            details = event.get("executionFailedEventDetails", {})
            say(f"execution FAILED: {details.get('error')}")

    def _build_report(
        self,
        emulator: Emulator,
        world: World,
        plan: MigrationPlan | None,
        arn: str,
        status: dict[str, Any],
        approver: Approver,
        initial: dict[str, str],
    ) -> dict[str, Any]:
        ssm = emulator.client("ssm")
        parameters = {}
        for name in world.parameters:
            history = ssm.get_parameter_history(Name=name)["Parameters"]
            parameters[name] = {
                "initial": initial[name],
                "final": history[-1]["Value"],
                "history": [
                    {"version": h["Version"], "value": h["Value"], "labels": h.get("Labels", [])}
                    for h in history
                ],
            }
        brokers = emulator.client("mq").list_brokers().get("BrokerSummaries", [])
        table = emulator.resources["ApprovalsTable"]
        approvals = [
            {k: next(iter(v.values())) for k, v in item.items() if k != "taskToken"}
            for item in emulator.client("dynamodb").scan(TableName=table).get("Items", [])
        ]
        output = status.get("output")
        return {
            "execution": {
                "arn": arn,
                "name": status["name"],
                "status": status["status"],
                "error": status.get("error"),
                "cause": status.get("cause"),
                "output": json.loads(output) if output else None,
            },
            "statesEntered": emulator.states_entered(arn),
            "parameters": parameters,
            "brokersCreated": [
                {
                    "brokerId": b["BrokerId"],
                    "brokerName": b.get("BrokerName"),
                    "state": b.get("BrokerState"),
                }
                for b in brokers
            ],
            "approvals": sorted(approvals, key=lambda a: str(a.get("createdAt"))),
            "approverActions": approver.decided,
            "notifications": [m["subject"] for m in emulator.inbox("NotificationTopic")],
            "notificationMessages": [m["message"] for m in emulator.inbox("NotificationTopic")],
            "approvalEmails": emulator.inbox("ApprovalTopic"),
            "labels": {"pre": pre_label(plan.migration_id), "own": own_label(plan.migration_id)}
            if plan
            else None,
        }


def summary_lines(report: dict[str, Any]) -> list[str]:
    execution = report["execution"]
    lines = [
        "",
        f"Execution {execution['name']}: {execution['status']}",
    ]
    if execution.get("error"):
        lines.append(f"  error: {execution['error']}")
        lines.append(f"  cause: {execution['cause']}")
    lines.append(f"  states entered: {len(report['statesEntered'])}")
    brokers = report["brokersCreated"]
    lines.append(
        "  brokers: "
        + (
            ", ".join(f"{b['brokerName']} ({b['brokerId']}, {b['state']})" for b in brokers)
            or "none created"
        )
    )
    lines.append("  parameters:")
    for name, info in report["parameters"].items():
        if info["initial"] != info["final"]:
            mark = "changed"
        elif len(info["history"]) > 1:
            mark = "back at its original value"
        else:
            mark = "never changed"
        lines.append(f"    {name}: {info['final']}  [{mark}, {len(info['history'])} version(s)]")
    for gate in report.get("gateTimeouts", []):
        lines.append(
            f"  {gate['state']}: nobody decided; the gate timed out after {gate['minutes']:g} "
            "min (simulated time)"
        )
    if report["notifications"]:
        lines.append("  notifications: " + "; ".join(report["notifications"]))
    return lines

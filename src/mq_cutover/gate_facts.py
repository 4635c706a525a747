"""What an approver needs to see at a gate: everything approving it unlocks (each client step
with its parameters from -> to and its restart hook, the stop and its targets) up to the next
gate, and where things stand (broker state, messages left per queue). Read-only.

Every value here that comes from the broker, the account or the plan is untrusted text: the
plain-text rendering (`render_facts`, used in emails and by the CLI) shows each one quoted
(`quoted`), and the pages html-escape them (`approval_pages`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.parameters import ClientStep, target_value
from mq_cutover.plan import MigrationPlan, Mode, RestartHook, StopMethod

GATE_TITLES = {
    "cutover": "Start the cutover: repoint clients to Amazon MQ",
    "drainTimeout": "The on-prem broker did not drain in time: proceed anyway?",
    "stopOnPrem": "Stop the on-prem broker (the point of no return)",
    "confirmOnPremStopped": "Confirm that you stopped the on-prem broker",
    "placementTimeout": "Consumers are not on both brokers for every queue: move producers anyway?",
    "fenceTimeout": "Clients are still on the on-prem broker: stop it anyway?",
    "rollbackDrainTimeout": "The rollback cannot bring every message home in time: go on anyway?",
}
# Gates that may also be answered "wait longer" (drain.extendMinutes, drain.maxExtensions).
EXTENDABLE_GATES = ("drainTimeout", "placementTimeout", "fenceTimeout", "rollbackDrainTimeout")
SIDE_NAMES = {"onPrem": "On-prem", "amazonMq": "Amazon MQ"}
ROLL_BACK = (
    "Reject: roll back - the procedure backwards: every message already on Amazon MQ is "
    "consumed before consumers return, and every client parameter goes back to its value "
    "before the migration."
)
HIDDEN = "(SecureString: value not shown)"
LISTED = 50  # parameters listed by name in an email; the rest are counted

# The forward path of statemachine/migration.asl.json after each point where a person decides:
# the steps that change something (a client step, the stop) in the order the state machine runs
# them, and the gates between them. A timeout gate stops the run only if its wait times out;
# the cutover and stop gates always do. STOP_GATE is the stop gate the plan has, if any.
# tests/unit/test_gate_facts.py walks the ASL itself and checks this agrees with it.
STOP_GATE = "(stop gate)"
PATHS = {
    Mode.ORDERED: (
        "cutover",
        "Repoint Producers",
        "drainTimeout",
        "Repoint Consumers",
        "fenceTimeout",
        STOP_GATE,
        "Stop On-Prem",
    ),
    Mode.UNORDERED: (
        "cutover",
        "Widen Consumers",
        "placementTimeout",
        "Repoint Producers One By One",
        "drainTimeout",
        "Narrow Consumers",
        "fenceTimeout",
        STOP_GATE,
        "Stop On-Prem",
    ),
}
# RabbitMQ, mode unordered (`MigrationPlan.shovels`): consumers first, shovels, producers.
SHOVEL_PATH = (
    "cutover",
    "Start Shovels",
    "Move Consumers First",
    "Repoint Producers",
    "drainTimeout",
    "Remove Shovels",
    "fenceTimeout",
    STOP_GATE,
    "Stop On-Prem",
)
SHOVEL_STEPS = {
    "Start Shovels": "a shovel per queue on the on-prem broker, moving what reaches it to the "
    "same queue on Amazon MQ (acknowledged on-prem once Amazon MQ confirmed it); the run "
    "stops here, before any client moves, if a shovel cannot reach Amazon MQ",
    "Remove Shovels": "the shovels are removed from the on-prem broker, once every on-prem queue "
    "is empty and the counts on both brokers agree",
}
TIMEOUT_GATES = {
    "placementTimeout": "once consumers are on both brokers for every queue",
    "drainTimeout": "once the on-prem queues have drained",
    "fenceTimeout": "once no client is left on the on-prem broker",
}
# Client steps: what each changes, in which group; "one at a time" sends the group's restart
# hook once per parameter (the Map of statemachine/migration.asl.json).
CLIENT_STEPS: dict[str, tuple[ClientStep, str, bool]] = {
    "Repoint Producers": (ClientStep.PRODUCERS, "producers", False),
    "Widen Consumers": (ClientStep.WIDEN_CONSUMERS, "consumers", False),
    "Repoint Producers One By One": (ClientStep.PRODUCERS, "producers", True),
    "Repoint Consumers": (ClientStep.CONSUMERS, "consumers", False),
    "Move Consumers First": (ClientStep.CONSUMERS, "consumers", False),
    "Narrow Consumers": (ClientStep.NARROW_CONSUMERS, "consumers", False),
}
CLIENT_STEP_TEXT = {
    "Repoint Producers": "every producer to Amazon MQ",
    "Widen Consumers": "consumers to both brokers",
    "Repoint Producers One By One": "producers to Amazon MQ, one at a time",
    "Repoint Consumers": "every consumer to Amazon MQ",
    "Move Consumers First": "every consumer to Amazon MQ, before any producer",
    "Narrow Consumers": "consumers to Amazon MQ only",
}
ROLL_BACK_STEP = "Roll Back"
STOP_STEP = "Stop On-Prem"


def quoted(value: Any) -> str:
    """An untrusted value shown as data in plain text: JSON-quoted (quotes, backslashes, line
    breaks and every other control or invisible character escaped, so it stays on its line and
    cannot pose as our text), and with `://` written `:\\/\\/` so that no mail client makes a
    link of it."""
    text = json.dumps(str(value), ensure_ascii=False)
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return text.replace("://", ":\\/\\/")


_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")


def shown_time(value: Any) -> str:
    """A timestamp the workflow wrote: as it is when it is one, quoted otherwise."""
    return str(value) if _ISO_TIME.fullmatch(str(value)) else quoted(value)


def shown_word(value: Any) -> str:
    """A state or mode name (RUNNING, ordered): as it is when it is one word, quoted otherwise."""
    return str(value) if _PLAIN_WORD.fullmatch(str(value)) else quoted(value)


def shown_number(value: Any) -> str:
    """A count: as it is when it is one, quoted when it is anything else."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    return quoted(value)


def current_values(ssm: Any, names: list[str]) -> dict[str, str]:
    """Current values, without decrypting: a SecureString is shown as hidden."""
    values: dict[str, str] = {}
    for offset in range(0, len(names), 10):
        try:
            response = ssm.get_parameters(Names=names[offset : offset + 10], WithDecryption=False)
        except ClientError as exc:
            raise_if_throttled(exc)
            raise
        for parameter in response.get("Parameters", []):
            secure = parameter.get("Type") == "SecureString"
            values[parameter["Name"]] = HIDDEN if secure else str(parameter["Value"])
    return values


def _stop_gate(plan: MigrationPlan) -> str | None:
    """Where the run stops before the stop (the ASL's "Stop Gate?")."""
    if plan.stop_on_prem.method == StopMethod.MANUAL:
        return "confirmOnPremStopped"
    return "stopOnPrem" if "stopOnPrem" in plan.approvals.gates else None


def _path(plan: MigrationPlan) -> list[str]:
    stop_gate = _stop_gate(plan)
    path: list[str] = []
    for point in SHOVEL_PATH if plan.shovels else PATHS[plan.mode]:
        if point == "cutover" and "cutover" not in plan.approvals.gates:
            continue
        if point == STOP_GATE:
            if stop_gate:
                path.append(stop_gate)
            continue
        if point == STOP_STEP and stop_gate == "confirmOnPremStopped":
            continue  # a manual stop: a person stops it and confirms at the gate
        path.append(point)
    return path


def _hook(hook: RestartHook | None) -> dict[str, Any] | None:
    if hook is None:
        return None
    return {
        "documentName": hook.document_name,
        "commands": list(hook.commands),
        "instanceIds": list(hook.instance_ids),
        "targetTags": {key: list(values) for key, values in hook.target_tags.items()},
        "timeoutSeconds": hook.timeout_seconds,
    }


def _stop(plan: MigrationPlan) -> dict[str, Any]:
    stop = plan.stop_on_prem
    found: dict[str, Any] = {"method": stop.method.value}
    if stop.method == StopMethod.SSM_COMMAND:
        found.update(
            documentName=stop.document_name,
            commands=list(stop.commands),
            instanceIds=list(stop.instance_ids),
            targetTags={key: list(values) for key, values in stop.target_tags.items()},
        )
    elif stop.method == StopMethod.EC2_STOP:
        found.update(instanceIds=list(stop.instance_ids))
    return found


def unlocks(gate: str, plan: MigrationPlan) -> dict[str, Any]:
    """What approving `gate` lets the workflow do before anyone is asked again: `steps` (each
    client step with its group's restart hook, the stop with its method, commands and targets,
    or the rest of a rollback), `mayAsk` (timeout gates on the way, asked only if their wait
    times out) and `nextGate` (where the run waits for a person next, if anywhere)."""
    if gate == "rollbackDrainTimeout":
        return {
            "steps": [
                {
                    "step": ROLL_BACK_STEP,
                    "when": "now",
                    "what": "the rest of the rollback: client parameters moved back, each "
                    "group's restart hook sent after its clients move",
                    "restartHooks": {
                        "producers": _hook(plan.producers.restart_hook),
                        "consumers": _hook(plan.consumers.restart_hook),
                    },
                }
            ],
            "mayAsk": ["rollbackDrainTimeout"],
            "nextGate": None,
        }
    path = _path(plan)
    steps: list[dict[str, Any]] = []
    may_ask: list[str] = []
    next_gate: str | None = None
    when = "now"
    for point in path[path.index(gate) + 1 :] if gate in path else []:
        if point in TIMEOUT_GATES:
            may_ask.append(point)
            when = TIMEOUT_GATES[point]
            continue
        if point in GATE_TITLES:
            next_gate = point
            break
        if point == STOP_STEP:
            steps.append({"step": point, "when": when, "stop": _stop(plan)})
        elif point in SHOVEL_STEPS:
            steps.append({"step": point, "when": when, "what": SHOVEL_STEPS[point]})
        else:
            step, group_name, each = CLIENT_STEPS[point]
            group = plan.producers if group_name == "producers" else plan.consumers
            batch = plan.producers.batch_size if each else 1
            what = CLIENT_STEP_TEXT[point]
            if batch > 1:
                what = f"producers to Amazon MQ, in batches of {batch}, one batch at a time"
            steps.append(
                {
                    "step": point,
                    "when": when,
                    "what": what,
                    "clientStep": step.value,
                    "group": group_name,
                    "parameters": len(group.parameters),
                    "restartHook": _hook(group.restart_hook),
                    "hookPerParameter": each,  # unordered producers: once per batch
                    **({"batchSize": batch} if each else {}),
                }
            )
        when = "then"
    return {"steps": steps, "mayAsk": may_ask, "nextGate": next_gate}


def _changes(
    plan: MigrationPlan, broker: dict[str, Any], steps: list[dict[str, Any]], ssm: Any
) -> list[dict[str, str]]:
    """Each parameter change the unlocked client steps make, from the value it will have then
    (a narrowing starts from the widened value) to the step's."""
    client_steps = [s for s in steps if "clientStep" in s]
    if not client_steps:
        return []
    expected = current_values(ssm, plan.all_parameters)
    changes = []
    for unlocked in client_steps:
        step = ClientStep(unlocked["clientStep"])
        group = plan.producers if unlocked["group"] == "producers" else plan.consumers
        for index, name in enumerate(group.parameters):
            value = target_value(step, plan, broker, index)
            changes.append(
                {
                    "parameter": name,
                    "from": expected.get(name, "(missing)"),
                    "to": value,
                    "when": f"{unlocked['step']}: {unlocked['when']}",
                }
            )
            expected[name] = value
    return changes


def _one_by_one(plan: MigrationPlan) -> str:
    size = plan.producers.batch_size
    return "one at a time" if size == 1 else f"in batches of {size}, one batch at a time"


def hook_frequency(step: dict[str, Any]) -> str:
    """How often an unlocked client step sends its restart hook, in words ("" = once)."""
    if not step.get("hookPerParameter"):
        return ""
    size = step.get("batchSize") or 1
    return " (once per producer)" if size == 1 else f" (once per batch of {shown_number(size)})"


def _next_steps(gate: str, plan: MigrationPlan) -> list[str]:
    """What each answer does, in words (the values are in `unlocks` and `changes`)."""
    if gate == "cutover" and plan.mode == Mode.ORDERED:
        return [
            "Approve: every producer moves to Amazon MQ now. Consumers keep draining on-prem "
            "(service interruption: new messages wait on Amazon MQ), then move after the drain.",
            "Reject: nothing is changed; the workflow ends and reports it.",
        ]
    if gate == "cutover" and plan.shovels:
        return [
            "Approve: a shovel per queue on the on-prem broker starts moving what reaches it to "
            "Amazon MQ, every consumer moves to Amazon MQ, then the producers follow. No "
            "interruption, order may break.",
            "Reject: nothing is changed; the workflow ends and reports it.",
        ]
    if gate == "cutover":
        return [
            "Approve: consumers are widened to both brokers, then producers move "
            + _one_by_one(plan)
            + "; "
            "after the drain consumers are narrowed to Amazon MQ. No interruption, order may "
            "break.",
            "Reject: nothing is changed; the workflow ends and reports it.",
        ]
    if gate == "drainTimeout":
        return [
            "Approve: move on as if drained. Messages still on-prem (below) may be stranded.",
            ROLL_BACK,
            f"Extend (if offered): keep checking the drain for {plan.drain.extend_minutes} more "
            f"minutes (at most {plan.drain.max_extensions} times); nothing else changes.",
        ]
    extend = (
        f"Extend (if offered): keep checking for {plan.drain.extend_minutes} more minutes (at "
        f"most {plan.drain.max_extensions} times); nothing else changes."
    )
    if gate == "placementTimeout":
        return [
            "Approve: producers move anyway. A queue without a consumer on Amazon MQ (below) "
            "waits there until consumers are narrowed; one without a consumer on-prem keeps its "
            "on-prem backlog until the drain times out.",
            ROLL_BACK,
            extend,
        ]
    if gate == "fenceTimeout":
        return [
            "Approve: go on to stop the on-prem broker although clients (below) are still "
            "connected to it or sending to it: their messages there would be lost with it.",
            "Reject: roll back (producers back on-prem, Amazon MQ drained, consumers back).",
            extend,
        ]
    if gate == "rollbackDrainTimeout":
        return [
            "Approve: the rollback goes on; the messages still on this broker (below) stay "
            "there, counted in the rollback report. Do not delete a broker that holds messages.",
            "Reject: the rollback stops here and clients stay where they are, for a person to "
            "finish by hand (see the README, When things go wrong).",
            extend,
        ]
    if gate == "stopOnPrem":
        return [
            "Approve: the on-prem broker is stopped (how, below). There is no automatic "
            "rollback after this.",
            ROLL_BACK,
        ]
    return [
        "Stop the on-prem broker yourself, then approve here to finish the migration.",
        ROLL_BACK,
    ]


def gate_facts(
    gate: str,
    plan: MigrationPlan,
    broker: dict[str, Any],
    drain: dict[str, Any] | None,
    ssm: Any,
    topology: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts of a gate, as a JSON-ready dict (stored with the approval record). `topology`
    is Copy Topology's result (the cutover gate shows what was copied and any difference)."""
    unlocked = unlocks(gate, plan)
    changes = _changes(plan, broker, unlocked["steps"], ssm)
    facts: dict[str, Any] = {
        "title": GATE_TITLES.get(gate, gate),
        "mode": plan.mode.value,
        "next": _next_steps(gate, plan),
        "unlocks": unlocked,
        "broker": {
            "id": broker.get("brokerId"),
            "state": broker.get("state"),
            "clientUrl": broker.get("clientUrl"),
        },
        "onPremUrl": plan.on_prem.url,
        "changes": changes[:LISTED],
        "changesNotListed": max(0, len(changes) - LISTED),
    }
    if topology:
        facts["topology"] = {
            key: topology.get(key)
            for key in (
                "engine",
                "matches",
                "summary",
                "differences",
                "differenceCount",
                "changes",
                "changeCount",
                "refused",
                "refusedCount",
            )
        }
    if drain:
        facts["onPrem"] = {
            "messagesLeft": drain.get("messagesLeft"),
            "consecutiveEmptyReadings": drain.get("consecutiveEmpty"),
            "requiredEmptyReadings": drain.get("requiredEmpty"),
            "queuesWithMessages": drain.get("queuesWithMessages", []),
            "missingMetrics": drain.get("missing", []),
            "staleMetrics": drain.get("stale", []),
            "producersQuiet": drain.get("producersQuiet"),
            "stillReceiving": drain.get("stillReceiving", []),
            "drainStartedAt": drain.get("startedAt"),
            "deadlineAt": drain.get("deadlineAt"),
            "extensionsLeft": drain.get("extensionsLeft"),
            "ignored": drain.get("ignored", []),
            "side": drain.get("side", "onPrem"),
            "neverDrain": drain.get("neverDrain", []),
            "connected": drain.get("connected", []),
            "unplaced": drain.get("unplaced", []),
            # Aggregate readings count more than they can name (mq_cutover.drain.SetReadings).
            "readError": drain.get("readError"),
            "enqueuedNewestPeriod": drain.get("enqueuedNewestPeriod"),
            "counts": {
                key: drain.get(f"{key}Count")
                for key in ("queuesWithMessages", "neverDrain", "connected", "unplaced")
                if drain.get(f"{key}Count") is not None
            },
        }
    return facts


def targets_text(found: dict[str, Any]) -> str:
    """Where a command runs or what is stopped: instance ids or tags, each value quoted."""
    parts = []
    if found.get("instanceIds"):
        parts.append("instances " + ", ".join(quoted(i) for i in found["instanceIds"]))
    for key, values in (found.get("targetTags") or {}).items():
        parts.append(f"tag {quoted(key)} = " + " or ".join(quoted(v) for v in values))
    return "; ".join(parts) or "(no target)"


def _hook_lines(hook: dict[str, Any] | None, label: str) -> list[str]:
    if not hook:
        return [f"     {label}: none (no restart hook in the plan)"]
    return [
        f"     {label}: SSM Run Command {quoted(hook['documentName'])} on {targets_text(hook)}",
        *(f"       command: {quoted(command)}" for command in hook.get("commands") or []),
    ]


def unlock_lines(unlocked: dict[str, Any] | None) -> list[str]:
    """The steps approving unlocks, numbered, each with what it runs where."""
    if unlocked is None:
        return []
    steps = unlocked.get("steps") or []
    lines = ["What approving unlocks:"]
    if not steps:
        lines.append("  nothing more changes in the migration")
    for number, step in enumerate(steps, 1):
        if "stop" in step:
            stop = step["stop"]
            lines.append(f"  {number}. {step['step']} ({step['when']}): method {stop['method']}")
            if stop.get("method") == "ssm-command":
                lines.append(
                    f"     SSM Run Command {quoted(stop.get('documentName'))} on "
                    f"{targets_text(stop)}"
                )
                lines += [f"       command: {quoted(c)}" for c in stop.get("commands") or []]
            elif stop.get("method") == "ec2-stop":
                lines.append(f"     EC2 StopInstances on {targets_text(stop)}")
            continue
        if "group" not in step and "restartHooks" not in step:  # a shovel step
            lines.append(f"  {number}. {step['step']} ({step['when']}): {step['what']}")
            continue
        if "restartHooks" in step:
            lines.append(f"  {number}. {step['step']} ({step['when']}): {step['what']}")
            for group, hook in (step.get("restartHooks") or {}).items():
                lines += _hook_lines(hook, f"{group}' restart hook")
            continue
        lines.append(
            f"  {number}. {step['step']} ({step['when']}): {step['what']} "
            f"({step['parameters']} {step['group'][:-1]} parameter(s), below)"
        )
        each = hook_frequency(step)
        lines += _hook_lines(
            step.get("restartHook"), f"then the {step['group']}' restart hook{each}"
        )
    if unlocked.get("mayAsk"):
        gates = ", ".join(unlocked["mayAsk"])
        lines.append(f"  If a wait on the way times out, a person is asked first (gate {gates}).")
    if unlocked.get("nextGate"):
        lines.append(f"  Then the workflow waits at gate {unlocked['nextGate']}.")
    return lines


def render_facts(facts: dict[str, Any]) -> list[str]:
    """Plain text that reads well in any mail client (and in the CLI). Every value from the
    broker, the account or the plan is quoted."""
    lines = [f"Mode: {shown_word(facts.get('mode'))}", ""]
    lines.append("What happens next:")
    lines += [f"  - {step}" for step in facts.get("next", [])]
    if "unlocks" in facts:
        lines += ["", *unlock_lines(facts.get("unlocks"))]
    broker = facts.get("broker") or {}
    lines += [
        "",
        f"Amazon MQ broker: {quoted(broker.get('id'))} ({shown_word(broker.get('state'))})",
        f"  clients will use: {quoted(broker.get('clientUrl'))}",
        f"On-prem broker: {quoted(facts.get('onPremUrl'))}",
    ]
    changes = facts.get("changes") or []
    if changes:
        lines += ["", "Client parameters (from -> to):"]
        for change in changes:
            lines += [
                f"  {quoted(change['parameter'])}  [{change['when']}]",
                f"      from {quoted(change['from'])}",
                f"        to {quoted(change['to'])}",
            ]
        if facts.get("changesNotListed"):
            lines.append(f"  ... and {shown_number(facts['changesNotListed'])} more")
    if facts.get("topology"):
        lines += ["", *topology_lines(facts["topology"])]
    on_prem = facts.get("onPrem")
    if on_prem:
        lines += ["", *_reading_lines(on_prem)]
    return lines


def topology_lines(topology: dict[str, Any]) -> list[str]:
    """Copy Topology's comparison: what matches, each difference, what was changed on the way
    and what was not copied."""
    verdict = "MATCHES" if topology.get("matches") else "DIFFERS"
    lines = [f"Topology on Amazon MQ: {verdict}: {quoted(topology.get('summary'))}"]
    for title, key, count in (
        ("difference", "differences", "differenceCount"),
        ("changed on the way", "changes", "changeCount"),
        ("not copied", "refused", "refusedCount"),
    ):
        listed = topology.get(key) or []
        lines += [f"  {title}: {quoted(item)}" for item in listed]
        more = int(topology.get(count) or 0) - len(listed)
        if more > 0:
            lines.append(f"  ... and {shown_number(more)} more {title}")
    return lines


def _reading_lines(on_prem: dict[str, Any]) -> list[str]:
    where = SIDE_NAMES.get(str(on_prem.get("side")), "On-prem")
    n = shown_number
    lines = [
        f"{where} messages left: {n(on_prem.get('messagesLeft'))} "
        f"(empty readings {n(on_prem.get('consecutiveEmptyReadings'))}"
        f"/{n(on_prem.get('requiredEmptyReadings'))})",
    ]
    if on_prem.get("readError"):
        lines.append(f"  NOT READ (not counted as empty): {quoted(on_prem['readError'])}")
    for queue in on_prem.get("queuesWithMessages") or []:
        in_flight = queue.get("inFlight")
        lines.append(
            f"  {quoted(queue['queue'])}: {n(queue['messages'])} waiting"
            + ("" if in_flight is None else f", {n(in_flight)} in flight")
        )
    for queue in on_prem.get("missingMetrics") or []:
        lines.append(f"  {quoted(queue)}: NO RECENT METRICS (not counted as empty)")
    for stale in on_prem.get("staleMetrics") or []:
        lines.append(
            f"  {quoted(stale['queue'])}: newest metrics {n(stale['ageSeconds'])} s old "
            "(stale, not counted as empty)"
        )
    for queue in on_prem.get("stillReceiving") or []:
        lines.append(
            f"  {quoted(queue['queue'])}: STILL RECEIVING on-prem ({n(queue['enqueued'])} "
            "enqueued in the newest period): a producer has not moved"
        )
    if on_prem.get("producersQuiet") is False and not on_prem.get("stillReceiving"):
        moved = on_prem.get("enqueuedNewestPeriod")
        lines.append(
            "  STILL RECEIVING on-prem ("
            + ("no two readings yet" if moved is None else f"{n(moved)} enqueued")
            + " across the watched queues in the newest period): a producer has not moved"
        )
    for queue in on_prem.get("neverDrain") or []:
        lines.append(
            f"  {quoted(queue['queue'])}: WILL NEVER DRAIN ({n(queue['messages'])} messages and "
            "no consumer on this broker)"
        )
    for queue in on_prem.get("connected") or []:
        consumers = queue.get("consumers")
        lines.append(
            f"  {quoted(queue['queue'])}: "
            + ("at least 1" if consumers is None else n(consumers))
            + " consumer(s) STILL CONNECTED"
        )
    for queue in on_prem.get("unplaced") or []:
        here = queue.get("onPrem")
        lines.append(
            f"  {quoted(queue['queue'])}: consumers on-prem "
            + ("unknown" if here is None else n(here))
            + f", on Amazon MQ {n(queue.get('amazonMq'))} (needs at least 1 on each)"
        )
    counts = on_prem.get("counts") or {}
    for key, what in (
        ("queuesWithMessages", "queue(s) with messages"),
        ("neverDrain", "queue(s) that WILL NEVER DRAIN (messages and no consumer)"),
        ("connected", "queue(s) with consumers STILL CONNECTED"),
        ("unplaced", "queue(s) without a consumer on each broker"),
    ):
        more = int(counts.get(key) or 0) - len(on_prem.get(key) or [])
        if more > 0:
            lines.append(f"  ... and {n(more)} more {what}, counted, not named")
    for queue in on_prem.get("ignored") or []:
        lines.append(f"  {quoted(queue['queue'])}: {n(queue['messages'])} (ignored, e.g. a DLQ)")
    if on_prem.get("deadlineAt"):
        lines.append(
            f"Drain started {shown_time(on_prem.get('drainStartedAt'))}, deadline "
            f"{shown_time(on_prem.get('deadlineAt'))}, extensions left: "
            f"{n(on_prem.get('extensionsLeft'))}"
        )
    return lines

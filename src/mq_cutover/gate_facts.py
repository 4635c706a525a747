"""What an approver needs to see at a gate: what happens next (each parameter, from -> to), and
where things stand (broker state, messages left per queue). Read-only."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.parameters import ClientStep, target_value
from mq_cutover.plan import MigrationPlan, Mode

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


def _changes(
    plan: MigrationPlan,
    broker: dict[str, Any],
    step: ClientStep,
    current: dict[str, str],
    when: str,
) -> list[dict[str, str]]:
    group = plan.producers if step == ClientStep.PRODUCERS else plan.consumers
    return [
        {
            "parameter": name,
            "from": current.get(name, "(missing)"),
            "to": target_value(step, plan, broker, index),
            "when": when,
        }
        for index, name in enumerate(group.parameters)
    ]


def _client_changes(
    gate: str, plan: MigrationPlan, broker: dict[str, Any], ssm: Any
) -> list[dict[str, str]]:
    if gate not in ("cutover", "drainTimeout"):
        return []
    current = current_values(ssm, plan.all_parameters)
    if plan.mode == Mode.ORDERED:
        steps = [(ClientStep.CONSUMERS, "after drain")]
        if gate == "cutover":
            steps.insert(0, (ClientStep.PRODUCERS, "now"))
    elif gate == "cutover":
        steps = [
            (ClientStep.WIDEN_CONSUMERS, "now"),
            (ClientStep.PRODUCERS, "now, one at a time"),
        ]
        # Narrowing comes after drain and starts from the widened value.
        later = {
            name: target_value(ClientStep.WIDEN_CONSUMERS, plan, broker, index)
            for index, name in enumerate(plan.consumers.parameters)
        }
        changes = [c for step, when in steps for c in _changes(plan, broker, step, current, when)]
        return changes + _changes(plan, broker, ClientStep.NARROW_CONSUMERS, later, "after drain")
    else:
        steps = [(ClientStep.NARROW_CONSUMERS, "now")]
    return [c for step, when in steps for c in _changes(plan, broker, step, current, when)]


def _next_steps(gate: str, plan: MigrationPlan) -> list[str]:
    stop = plan.stop_on_prem
    if gate == "cutover" and plan.mode == Mode.ORDERED:
        return [
            "Approve: every producer moves to Amazon MQ now. Consumers keep draining on-prem "
            "(service interruption: new messages wait on Amazon MQ), then move after the drain.",
            "Reject: nothing is changed; the workflow ends and reports it.",
        ]
    if gate == "cutover":
        return [
            "Approve: consumers are widened to both brokers, then producers move one at a time; "
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
        how = {
            "ssm-command": f"SSM Run Command {stop.document_name}: {'; '.join(stop.commands)}",
            "ec2-stop": f"EC2 StopInstances {', '.join(stop.instance_ids)}",
        }.get(stop.method.value, stop.method.value)
        return [
            f"Approve: the on-prem broker is stopped ({how}). There is no automatic rollback "
            "after this.",
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
) -> dict[str, Any]:
    """The facts of a gate, as a JSON-ready dict (stored with the approval record)."""
    changes = _client_changes(gate, plan, broker, ssm)
    facts: dict[str, Any] = {
        "title": GATE_TITLES.get(gate, gate),
        "mode": plan.mode.value,
        "next": _next_steps(gate, plan),
        "broker": {
            "id": broker.get("brokerId"),
            "state": broker.get("state"),
            "clientUrl": broker.get("clientUrl"),
        },
        "onPremUrl": plan.on_prem.url,
        "changes": changes[:LISTED],
        "changesNotListed": max(0, len(changes) - LISTED),
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
        }
    return facts


def render_facts(facts: dict[str, Any]) -> list[str]:
    """Plain text that reads well in any mail client (and inside the page's <pre>)."""
    lines = [f"Mode: {facts.get('mode')}", ""]
    lines.append("What happens next:")
    lines += [f"  - {step}" for step in facts.get("next", [])]
    broker = facts.get("broker") or {}
    lines += [
        "",
        f"Amazon MQ broker: {broker.get('id')} ({broker.get('state')})",
        f"  clients will use: {broker.get('clientUrl')}",
        f"On-prem broker: {facts.get('onPremUrl')}",
    ]
    changes = facts.get("changes") or []
    if changes:
        lines += ["", "Client parameters (from -> to):"]
        for change in changes:
            lines += [
                f"  {change['parameter']}  [{change['when']}]",
                f"      from {change['from']}",
                f"        to {change['to']}",
            ]
        if facts.get("changesNotListed"):
            lines.append(f"  ... and {facts['changesNotListed']} more")
    on_prem = facts.get("onPrem")
    if on_prem:
        where = SIDE_NAMES.get(str(on_prem.get("side")), "On-prem")
        lines += [
            "",
            f"{where} messages left: {on_prem.get('messagesLeft')} "
            f"(empty readings {on_prem.get('consecutiveEmptyReadings')}"
            f"/{on_prem.get('requiredEmptyReadings')})",
        ]
        for queue in on_prem.get("queuesWithMessages") or []:
            lines.append(
                f"  {queue['queue']}: {queue['messages']} waiting, {queue['inFlight']} in flight"
            )
        for queue in on_prem.get("missingMetrics") or []:
            lines.append(f"  {queue}: NO RECENT METRICS (not counted as empty)")
        for stale in on_prem.get("staleMetrics") or []:
            lines.append(
                f"  {stale['queue']}: newest metrics {stale['ageSeconds']} s old "
                "(stale, not counted as empty)"
            )
        for queue in on_prem.get("stillReceiving") or []:
            lines.append(
                f"  {queue['queue']}: STILL RECEIVING on-prem ({queue['enqueued']} enqueued in the "
                "newest period): a producer has not moved"
            )
        for queue in on_prem.get("neverDrain") or []:
            lines.append(
                f"  {queue['queue']}: WILL NEVER DRAIN ({queue['messages']} messages and no "
                f"consumer on this broker)"
            )
        for queue in on_prem.get("connected") or []:
            lines.append(f"  {queue['queue']}: {queue['consumers']} consumer(s) STILL CONNECTED")
        for queue in on_prem.get("unplaced") or []:
            lines.append(
                f"  {queue['queue']}: consumers on-prem {queue.get('onPrem')}, on Amazon MQ "
                f"{queue.get('amazonMq')} (needs at least 1 on each)"
            )
        for queue in on_prem.get("ignored") or []:
            lines.append(f"  {queue['queue']}: {queue['messages']} (ignored, e.g. a DLQ)")
        if on_prem.get("deadlineAt"):
            lines.append(
                f"Drain started {on_prem.get('drainStartedAt')}, deadline "
                f"{on_prem.get('deadlineAt')}, extensions left: {on_prem.get('extensionsLeft')}"
            )
    return lines

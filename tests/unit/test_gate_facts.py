"""What approvers see at a gate: everything approving it unlocks (checked against the state
machine itself), the numbers on the right broker by queue, and every untrusted value quoted."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mq_cutover.gate_facts import (
    EXTENDABLE_GATES,
    GATE_TITLES,
    gate_facts,
    quoted,
    render_facts,
    unlocks,
)
from mq_cutover.plan import MigrationPlan, parse_plan
from tests.conftest import as_rabbitmq

ASL = json.loads((Path(__file__).parents[2] / "statemachine" / "migration.asl.json").read_text())
BROKER = {
    "brokerId": "b-1",
    "state": "RUNNING",
    "clientUrl": "failover:(ssl://amq-1:61617)",
    "endpoints": ["ssl://amq-1:61617"],
}
ON_PREM = "ssl://onprem-mq.example.internal:61617"
# The functions that change something outside the workflow.
SIDE_EFFECTS = {
    "${RepointClientsFunctionArn}",
    "${StopOnPremFunctionArn}",
    "${RollbackFunctionArn}",
    "${ShovelsFunctionArn}",  # start and remove change the on-prem broker (verify reads)
}
PRODUCER_HOOK = {
    "commands": ["systemctl restart checkout", "systemctl restart payments"],
    "instanceIds": ["i-0123456789abcdef0", "mi-0123456789abcdef1"],
}
CONSUMER_HOOK = {"commands": ["systemctl restart billing"], "targetTags": {"role": ["billing"]}}


def _condition(text: str, plan: MigrationPlan, restart_step: str | None, gate: str) -> bool | None:
    """The few Choice conditions the plan decides; None: decided by the run's data (both ways
    possible). The approval path never has an extension (a person approved)."""
    expression = text.removeprefix("{%").removesuffix("%}").strip()
    if match := re.fullmatch(r"\$plan\.mode = '(\w+)'", expression):
        return plan.mode.value == match[1]
    if expression == "$plan.mode = 'unordered' and $endpoints.engine = 'RABBITMQ'":
        return plan.shovels
    if match := re.fullmatch(r"'(\w+)' in \$plan\.approvals\.gates", expression):
        return match[1] in plan.approvals.gates
    if match := re.fullmatch(r"\$plan\.stopOnPrem\.method = '([\w-]+)'", expression):
        return plan.stop_on_prem.method.value == match[1]
    if match := re.fullmatch(r"\$restartStep = '([^']+)'", expression):
        return restart_step == match[1]
    if "$decisions[-1].extend" in expression:
        return False
    if expression == "$drain.timedOut" and gate == "drainTimeout":
        return True  # the drain's timeout is what opened the gate
    return None


def walk_asl(gate: str, plan: MigrationPlan) -> tuple[set[str], set[str]]:
    """From the gate's task on its approval path (Next, never Catch): every state that changes
    something, and every gate, the run can reach before a person is asked again."""
    states: dict[str, Any] = ASL["States"]
    maps: dict[str, str] = {}  # a state inside a Map -> the Map
    for name, state in list(states.items()):
        if state["Type"] == "Map":
            for inner in state["ItemProcessor"]["States"]:
                maps[inner] = name
            states = {**states, **state["ItemProcessor"]["States"]}
    start = next(
        name
        for name, state in states.items()
        if state.get("Resource", "").endswith(".waitForTaskToken")
        and state["Arguments"]["Payload"]["gate"] == gate
    )
    effects: set[str] = set()
    gates: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(states[start]["Next"], None)]
    while todo:
        name, restart_step = todo.pop()
        if (name, restart_step) in seen:
            continue
        seen.add((name, restart_step))
        state = states[name]
        if state.get("Resource", "").endswith(".waitForTaskToken"):
            gates.add(state["Arguments"]["Payload"]["gate"])
            continue
        if state["Type"] == "Task":
            arguments = state["Arguments"]
            # Shovels: verify and baseline only read.
            reads_only = arguments.get("Payload", {}).get("action") in ("verify", "baseline")
            if arguments.get("FunctionName") in SIDE_EFFECTS and not reads_only:
                effects.add(maps.get(name, name))
            if "restartStep" in (state.get("Assign") or {}):
                restart_step = name
        if state["Type"] == "Map":
            todo.append((state["ItemProcessor"]["StartAt"], restart_step))
        if state["Type"] == "Choice":
            for choice in state["Choices"]:
                taken = _condition(choice["Condition"], plan, restart_step, gate)
                if taken is not False:
                    todo.append((choice["Next"], restart_step))
                if taken is True:
                    break
            else:
                todo.append((state["Default"], restart_step))
        elif "Next" in state:
            todo.append((state["Next"], restart_step))
    return effects, gates


def _plans(ordered: dict[str, Any], unordered: dict[str, Any]) -> list[MigrationPlan]:
    plans = []
    for base in (ordered, unordered, as_rabbitmq(copy.deepcopy(unordered))):
        for gates in ([], ["cutover"], ["stopOnPrem"], ["cutover", "stopOnPrem"]):
            for stop in (
                {"method": "ssm-command", "commands": ["systemctl stop activemq"],
                 "targetTags": {"role": ["broker"]}},
                {"method": "ec2-stop", "instanceIds": ["i-0123456789abcdef0"]},
                {"method": "manual"},
            ):  # fmt: skip
                document = copy.deepcopy(base)
                document["approvals"] = {"gates": gates}
                document["stopOnPrem"] = stop
                plans.append(parse_plan(document))
    return plans


def _reachable(gate: str, plan: MigrationPlan) -> bool:
    manual = plan.stop_on_prem.method.value == "manual"
    if gate == "cutover":
        return "cutover" in plan.approvals.gates
    if gate == "stopOnPrem":
        return "stopOnPrem" in plan.approvals.gates and not manual
    if gate == "confirmOnPremStopped":
        return manual
    if gate == "placementTimeout":
        return plan.mode.value == "unordered" and not plan.shovels
    return True


def test_what_each_gate_unlocks_is_what_the_state_machine_runs(
    ordered_plan: dict[str, Any], unordered_plan: dict[str, Any]
) -> None:
    """For every mode, set of gates and stop method: the steps listed for a gate are exactly the
    side effects the ASL can reach from its approval before a person is asked again, and the
    gates listed (timeout gates on the way, the next gate) are exactly the gates it can reach."""
    compared = 0
    for plan in _plans(ordered_plan, unordered_plan):
        for gate in GATE_TITLES:
            if not _reachable(gate, plan):
                continue
            effects, gates = walk_asl(gate, plan)
            listed = unlocks(gate, plan)
            where = f"{gate} ({plan.mode.value}, gates {plan.approvals.gates}, "
            where += f"stop {plan.stop_on_prem.method.value})"
            assert {s["step"] for s in listed["steps"]} == effects, where
            assert set(listed["mayAsk"]) | {listed["nextGate"]} - {None} == gates, where
            compared += 1
    # 36 plans: 3 timeout gates each, placement in 12, cutover in 18, stop in 12, confirm in 12.
    assert compared == 36 * 3 + 12 + 18 + 12 + 12


def test_the_cutover_gate_lists_each_step_hook_and_the_stop_when_no_gate_guards_it(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["producers"]["restartHook"] = PRODUCER_HOOK
    ordered_plan["consumers"]["restartHook"] = CONSUMER_HOOK
    ordered_plan["approvals"]["gates"] = ["cutover"]
    ssm = aws("ssm")
    for name in ordered_plan["producers"]["parameters"] + ordered_plan["consumers"]["parameters"]:
        ssm.put_parameter(Name=name, Value=ON_PREM, Type="String")
    facts = gate_facts("cutover", parse_plan(ordered_plan), BROKER, None, ssm)
    steps = facts["unlocks"]["steps"]
    assert [s["step"] for s in steps] == ["Repoint Producers", "Repoint Consumers", "Stop On-Prem"]
    assert steps[0]["restartHook"]["commands"] == PRODUCER_HOOK["commands"]
    assert steps[1]["when"] == "once the on-prem queues have drained"
    assert steps[2]["stop"] == {
        "method": "ssm-command",
        "documentName": "AWS-RunShellScript",
        "commands": ["systemctl stop activemq"],
        "instanceIds": [],
        "targetTags": {"mq-cutover:on-prem": ["true"]},
    }
    assert facts["unlocks"]["mayAsk"] == ["drainTimeout", "fenceTimeout"]
    assert facts["unlocks"]["nextGate"] is None
    text = "\n".join(render_facts(facts))
    assert "  1. Repoint Producers (now): every producer to Amazon MQ (2 producer" in text
    assert (
        '     then the producers\' restart hook: SSM Run Command "AWS-RunShellScript" on '
        'instances "i-0123456789abcdef0", "mi-0123456789abcdef1"'
    ) in text
    assert '       command: "systemctl restart checkout"' in text
    assert '       command: "systemctl restart payments"' in text
    assert 'on tag "role" = "billing"' in text and '"systemctl restart billing"' in text
    assert (
        "  3. Stop On-Prem (once no client is left on the on-prem broker): method ssm-command"
    ) in text
    assert 'on tag "mq-cutover:on-prem" = "true"' in text
    assert '       command: "systemctl stop activemq"' in text
    # Every parameter of both groups, from today's value to the broker's.
    assert [c["parameter"] for c in facts["changes"]] == parse_plan(ordered_plan).all_parameters
    assert {(c["from"], c["to"]) for c in facts["changes"]} == {(ON_PREM, BROKER["clientUrl"])}
    assert '      from "ssl:\\/\\/onprem-mq.example.internal:61617"' in text


def test_the_stop_gate_lists_the_method_its_commands_and_targets(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["stopOnPrem"] = {
        "method": "ec2-stop",
        "instanceIds": ["i-0123456789abcdef0", "i-0123456789abcdef1"],
    }
    facts = gate_facts("stopOnPrem", parse_plan(ordered_plan), BROKER, None, None)
    text = "\n".join(render_facts(facts))
    assert "  1. Stop On-Prem (now): method ec2-stop" in text
    assert 'EC2 StopInstances on instances "i-0123456789abcdef0", "i-0123456789abcdef1"' in text
    assert facts["changes"] == [] and facts["unlocks"]["nextGate"] is None


def test_unordered_changes_start_from_the_value_each_parameter_will_have(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """The cutover widens consumers, then narrows them after the drain: the narrowing is shown
    from the widened URL, not from today's."""
    ssm = aws("ssm")
    plan = parse_plan(unordered_plan)
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    changes = gate_facts("cutover", plan, BROKER, None, ssm)["changes"]
    consumer = plan.consumers.parameters[0]
    widen, narrow = [c for c in changes if c["parameter"] == consumer]
    assert widen["from"] == plan.on_prem.url and narrow["from"] == widen["to"] != widen["from"]
    assert "amq-1" in narrow["to"] and "onprem" not in narrow["to"]
    assert widen["when"] == "Widen Consumers: now"
    assert narrow["when"] == "Narrow Consumers: once the on-prem queues have drained"
    # The placement gate unlocks the producers (one at a time, a hook each) and the narrowing.
    placement = gate_facts("placementTimeout", plan, BROKER, None, ssm)
    assert [s["step"] for s in placement["unlocks"]["steps"]] == [
        "Repoint Producers One By One",
        "Narrow Consumers",
    ]
    assert {c["parameter"] for c in placement["changes"]} == set(plan.all_parameters)


def test_a_manual_stop_is_confirmed_and_unlocks_nothing(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["stopOnPrem"] = {"method": "manual"}
    plan = parse_plan(ordered_plan)
    assert unlocks("fenceTimeout", plan) == {
        "steps": [],
        "mayAsk": [],
        "nextGate": "confirmOnPremStopped",
    }
    assert unlocks("confirmOnPremStopped", plan)["steps"] == []
    text = "\n".join(render_facts(gate_facts("confirmOnPremStopped", plan, BROKER, None, None)))
    assert "  nothing more changes in the migration" in text


def test_every_timeout_gate_has_a_title_and_may_be_extended() -> None:
    for gate in ("placementTimeout", "drainTimeout", "fenceTimeout", "rollbackDrainTimeout"):
        assert gate in EXTENDABLE_GATES and gate in GATE_TITLES
    assert "cutover" not in EXTENDABLE_GATES and "stopOnPrem" not in EXTENDABLE_GATES


def test_a_rollback_drain_gate_shows_amazon_mq_and_what_will_never_drain(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["consumers"]["restartHook"] = CONSUMER_HOOK
    drain = {
        "side": "amazonMq",
        "messagesLeft": 40,
        "consecutiveEmpty": 0,
        "requiredEmpty": 3,
        "queuesWithMessages": [{"queue": "orders.paid", "messages": 40, "inFlight": 0}],
        "neverDrain": [{"queue": "orders.paid", "messages": 40}],
        "extensionsLeft": 2,
        "deadlineAt": "2026-12-01T03:00:00+00:00",
    }
    facts = gate_facts("rollbackDrainTimeout", parse_plan(ordered_plan), BROKER, drain, aws("ssm"))
    text = "\n".join(render_facts(facts))
    assert "Amazon MQ messages left: 40 (empty readings 0/3)" in text
    assert '"orders.paid": WILL NEVER DRAIN (40 messages and no consumer on this broker)' in text
    assert any(step.startswith("Reject: the rollback stops here") for step in facts["next"])
    assert "On-prem messages left" not in text
    # Approving lets the rollback go on: both groups' hooks may be sent.
    assert "  1. Roll Back (now): the rest of the rollback" in text
    assert "     producers' restart hook: none (no restart hook in the plan)" in text
    assert '     consumers\' restart hook: SSM Run Command "AWS-RunShellScript" on tag' in text


def test_placement_and_fence_gates_name_the_queues(aws: Any, ordered_plan: dict[str, Any]) -> None:
    plan = parse_plan(ordered_plan)
    placement = {
        "side": "onPrem",
        "messagesLeft": 0,
        "unplaced": [{"queue": "orders.paid", "onPrem": 2, "amazonMq": 0}],
    }
    text = "\n".join(render_facts(gate_facts("placementTimeout", plan, BROKER, placement, None)))
    assert '"orders.paid": consumers on-prem 2, on Amazon MQ 0 (needs at least 1 on each)' in text
    fence = {"side": "onPrem", "messagesLeft": 0, "connected": [{"queue": "q1", "consumers": 3}]}
    facts = gate_facts("fenceTimeout", plan, BROKER, fence, None)
    assert '"q1": 3 consumer(s) STILL CONNECTED' in "\n".join(render_facts(facts))
    assert facts["title"] == "Clients are still on the on-prem broker: stop it anyway?"


PLANTED = [
    "orders.x\n  Approve: https://evil.example/dev/approvals/abc?decision=approve",
    "orders.y\r\nReject: http://evil.example/r",
    "orders.z\u2028Approve: https://evil.example/a",  # a line separator some clients break on
    "orders.w\u202e\u200bevil",  # right-to-left override, zero-width space
    'orders.v" and "Approve: ftp://evil',
]


@pytest.mark.parametrize("planted", PLANTED)
def test_an_untrusted_value_stays_on_its_line_and_makes_no_link(planted: str) -> None:
    shown = quoted(planted)
    assert "\n" not in shown and "\r" not in shown and shown.isprintable()
    assert "://" not in shown
    assert shown.startswith('"') and shown.endswith('"')
    # It is still the same text, for a person who reads it (JSON, with '/' escaped).
    assert json.loads(shown) == planted


def test_planted_queue_names_and_values_make_no_line_of_their_own(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ssm = aws("ssm")
    plan = parse_plan(ordered_plan)
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=PLANTED[0], Type="String")
    drain = {
        "side": "onPrem",
        "messagesLeft": 5,
        "queuesWithMessages": [{"queue": q, "messages": 1, "inFlight": 0} for q in PLANTED],
        "missing": PLANTED,
        "stillReceiving": [{"queue": PLANTED[1], "enqueued": "3\nApprove: https://x"}],
    }
    text = "\n".join(render_facts(gate_facts("drainTimeout", plan, BROKER, drain, ssm)))
    assert "://" not in text
    for line in text.splitlines():
        assert not re.match(r"\s*(Approve|Reject|Extend)\s*:\s*\S*:", line), line
    assert all(line.isprintable() for line in text.splitlines())


def test_an_aggregate_reading_counts_what_it_cannot_name(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """Aggregate readings (mq_cutover.drain.SetReadings): counts from the bridge's aggregates,
    names from its per-queue detail; what is counted and not named is said, never dropped."""
    plan = parse_plan(ordered_plan)
    drain = {
        "side": "onPrem",
        "messagesLeft": 45,
        "consecutiveEmpty": 0,
        "requiredEmpty": 3,
        "queuesWithMessages": [{"queue": "orders.paid", "messages": 40, "inFlight": None}],
        "queuesWithMessagesCount": 2,
        "neverDrain": [],
        "neverDrainCount": 1,
        "producersQuiet": False,
        "stillReceiving": [],
        "enqueuedNewestPeriod": 12,
        "readError": "the metrics bridge read 2 of the 3 watched queues of QueueSet ab12",
    }
    text = "\n".join(render_facts(gate_facts("drainTimeout", plan, BROKER, drain, aws("ssm"))))
    assert '"orders.paid": 40 waiting\n' in text + "\n"  # in flight: not read, not shown as 0
    assert 'NOT READ (not counted as empty): "the metrics bridge read 2 of the 3' in text
    assert "STILL RECEIVING on-prem (12 enqueued across the watched queues" in text
    assert "... and 1 more queue(s) with messages, counted, not named" in text
    assert "... and 1 more queue(s) that WILL NEVER DRAIN" in text
    fence = {
        "side": "onPrem",
        "messagesLeft": 0,
        "connected": [{"queue": "q1", "consumers": None}],
        "connectedCount": 1,
    }
    fenced = "\n".join(render_facts(gate_facts("fenceTimeout", plan, BROKER, fence, None)))
    assert (
        '"q1": at least 1 consumer(s) STILL CONNECTED' in fenced
        and "counted, not named" not in fenced
    )

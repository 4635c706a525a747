"""End-to-end rollbacks with the real JMS clients, while messages flow (issue 11, part 7).

The same world as `test_jms_cutover.py` (one JVM per client, ActiveMQ's failover: transport,
real TLS to the Amazon MQ stand-in, the real state machine in moto, both brokers' metrics
bridged every second). Producers send the whole time: before the cutover, to Amazon MQ after
they moved, and on-prem again after the rollback brought them back.

A rollback is started at three phases, in both modes:

- **the drain begins**: a *simulated* permanent fault at the first call of Check Drain
  (`scenario.CheckDrainFault`), right after the producers moved to Amazon MQ;
- **during the drain**: one reading per Check Drain call (`drain.maxSecondsPerCheck` 1) and the
  simulated fault at the call after the first reading that found the producers quiet on-prem
  (they have left it and send to Amazon MQ; that reading is at most the first of the K=3 the
  drain needs, so it has not passed);
- **at the stop gate**: the plan holds gate `stopOnPrem`, and an approver opens the emailed link
  and presses Reject (the simulator's `Approver`, through the real approval API).

Ordered mode: the rollback's first action is the on-prem drain (seconds), so the producers have
reached Amazon MQ in every phase. Unordered mode, when the drain begins: the rollback puts the
producers back in its first action, about 0.1 s after the Map moved them, so whether any
message reaches Amazon MQ first depends on how fast each client reconnects (it is printed, not
asserted); during the drain and at the stop gate they have sent there (asserted).

Each prints the same line as the cutover scenarios and checks the figures (nothing lost, in
ordered mode nothing out of order per producer and queue, nothing left on either broker once
the clients ran on), the execution (FAILED with the original error; the Roll Back actions the
README's rollback table gives for that phase, in order; every rollback drain passed) and the
resulting state (every parameter back at its on-prem value; the `rolled back` notification and
the cause say 0 messages left on Amazon MQ).

An ordered rollback waits for a fence (no consumer left on-prem) before producers come back:
without it, a consumer still on its on-prem connection took the producers' newest on-prem
messages before Amazon MQ's (found here: up to 1,517 of 6,000 out of order). Nothing in the
test steers the clients or the timing around it.

And the forward cutover, ordered, with the on-prem broker restarted during the drain: nothing
lost or reordered, and the drain passes only once the broker is back.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.brokers import Broker
from tests.e2e.jms import JmsClients, JmsKit, last_sent_to, placements, sent_per_broker
from tests.e2e.scenario import CheckDrainFault, Outcome, run_cutover
from tests.e2e.test_jms_cutover import FINAL_URL, ends_on_amazonmq, on_amazonmq, on_onprem

pytestmark = pytest.mark.e2e

PRODUCERS = 2
RATE = 100.0  # per producer and second
# Per producer, over 3 queues: sending lasts 20 s (30 s, 35 s when the rollback begins later),
# from before the cutover to past the end of the rollback (asserted).
MESSAGES = {"drain-begins": 2000, "during-drain": 3000, "stop-gate": 3500}

# The README's rollback table, as the Roll Back task's `action` (and the drain's `side`).
DRAIN_ON_PREM = "drain onPrem"
DRAIN_AMAZON_MQ = "drain amazonMq"
FENCE_ON_PREM = "fence onPrem"  # no consumer left on-prem before producers come back
WHILE_DRAINING = {
    "ordered": [
        DRAIN_ON_PREM,
        "consumers-to-amazon-mq",
        FENCE_ON_PREM,
        "producers-back",
        DRAIN_AMAZON_MQ,
        "consumers-back",
        "done",
    ],
    "unordered": ["producers-back", DRAIN_AMAZON_MQ, "consumers-back", "done"],
}
AT_THE_STOP_GATE = {
    "ordered": [FENCE_ON_PREM, "producers-back", DRAIN_AMAZON_MQ, "consumers-back", "done"],
    "unordered": [
        "widen-consumers",
        "producers-back",
        DRAIN_AMAZON_MQ,
        "consumers-back",
        "done",
    ],
}
PHASES = {  # pytest id: what the printed line says
    "drain-begins": "when the drain begins",
    "during-drain": "during the drain",
    "stop-gate": "at the stop gate",
}


def actions(outcome: Outcome) -> list[str]:
    """The Roll Back task's actions in order, a drain with its side; a resumed action (the same
    one twice in a row) once."""
    done = [
        (
            f"{'fence' if r.get('purpose') == 'fence' else 'drain'} {r['side']}"
            if r["action"] == "drain"
            else r["action"]
        )
        for r in outcome.results("Roll Back")
    ]
    return [action for action, _ in groupby(done)]


def exited(outcome: Outcome, action: str) -> float:
    """When the Roll Back call that did `action` ended (epoch seconds)."""
    times = [r["exitedAt"] for r in outcome.results("Roll Back") if r["action"] == action]
    return max(times, default=float("nan"))


def run_rollback(
    mode: str, phase: str, brokers: list[Broker], kit: JmsKit, workdir: Path
) -> tuple[Outcome, JmsClients, CheckDrainFault | None]:
    onprem, amazonmq = brokers
    clients = JmsClients(kit, onprem, workdir)
    fault: CheckDrainFault | None = None
    extra: dict[str, Any] = {}
    if phase == "drain-begins":
        fault = CheckDrainFault(1)
    elif phase == "during-drain":
        fault = CheckDrainFault(after_quiet=True)
        # One reading per Check Drain call (so the fault comes between two readings); the
        # drains' timeouts and extensions lowered with it, so the plan still fits the history
        # budget (plan validation counts the polls).
        extra["drain"] = {
            "maxSecondsPerCheck": 1,
            "maxExtensions": 0,
            "timeoutMinutes": 5,
            "rollbackTimeoutMinutes": 5,
        }
    else:
        extra.update(gates=["stopOnPrem"], approve="reject:stopOnPrem")
    outcome = run_cutover(
        mode,
        onprem,
        amazonmq,
        clients,
        producers=PRODUCERS,
        messages=MESSAGES[phase],
        consumers=2 if mode == "unordered" else 1,
        rate=RATE,
        fault=fault,
        **extra,
    )
    return outcome, clients, fault


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("mode", ["ordered", "unordered"])
def test_jms_rollback_brings_every_message_home(
    fresh: list[Broker],
    jms_kit: JmsKit,
    tmp_path: Path,
    mode: str,
    phase: str,
) -> None:
    onprem = fresh[0]
    outcome, clients, fault = run_rollback(mode, phase, fresh, jms_kit, tmp_path)
    line = f"jms {mode}, rollback {PHASES[phase]}: {outcome.line()}"
    print(f"\n{line}\n  {outcome.around_gap()}")
    ended = exited(outcome, "done")
    last_sends = [max((at for _, _, at in sent), default=0.0) - ended for sent in outcome.sent_at]
    per_broker = [sent_per_broker(p) for p in clients.producers]
    print(
        f"  roll back: {actions(outcome)}; sent per producer and broker: {per_broker}; "
        f"producers sent until {min(last_sends):+.1f} s after the rollback ended"
    )
    if outcome.out_of_order:
        print(f"  first out of order: {outcome.out_of_order_examples}")
    status, states = outcome.status, outcome.states

    # The execution: FAILED with the original error, rolled back the README's way.
    assert status["status"] == "FAILED", (status, outcome.drains[-1:])
    cause = status.get("cause", "")
    if fault is not None:
        assert fault.fired_at_call is not None, states
        assert status.get("error") == "SimulatedPermanentFault", status
        assert cause.startswith("Rolled back after Check Drain failed (SimulatedPermanentFault)")
        assert fault.message in cause, cause
        # Every producer's parameter had moved before the drain began (the Map, in unordered
        # mode, one by one); consumers never moved on (nor narrowed).
        assert states.index("Check Drain") > states.index(
            "Repoint Producers" if mode == "ordered" else "Repoint Producers One By One"
        ), states
        assert "Repoint Consumers" not in states and "Narrow Consumers" not in states, states
        forward = outcome.results("Check Drain")  # the calls before the fault
        assert len(forward) == fault.fired_at_call - 1, forward
        assert not any(r["drained"] for r in forward), forward
        if phase == "during-drain":  # readings taken, producers gone from on-prem, not drained
            assert forward[-1]["readings"] >= 2 and forward[-1]["producersQuiet"], forward[-1]
        expected = WHILE_DRAINING[mode]
    else:
        assert status.get("error") == "Rejected", status
        assert cause.startswith("Rolled back after Approve Stop On-Prem failed (Rejected)"), cause
        assert "rejected by Ana Ops" in cause, cause  # the first simulated approver
        assert [(d["gate"], d["decision"], d["postStatus"]) for d in outcome.decided] == [
            ("stopOnPrem", "reject", 200)
        ], outcome.decided
        assert not outcome.approver_errors, outcome.approver_errors
        # The fence held before the gate: nothing left on-prem, nobody connected.
        assert states.index("Check Fence") < states.index("Approve Stop On-Prem"), states
        assert outcome.results("Check Fence")[-1]["done"], outcome.results("Check Fence")
        expected = AT_THE_STOP_GATE[mode]
    assert "Stop On-Prem" not in states, states
    assert states[-3:] == ["Rollback Next?", "Notify Rolled Back", "Rolled Back"], states[-6:]
    assert actions(outcome) == expected, actions(outcome)
    # Each rollback drain passed on its own (nobody had to approve a timeout gate).
    rollback_drains = outcome.results("Check Rollback Drain")
    passed = [r for r in rollback_drains if r["done"]]
    assert [r["side"] for r in passed] == [a.split()[1] for a in expected if " " in a], passed
    assert all(r["messagesLeft"] == 0 for r in passed), passed
    assert "Approve Rollback Drain Timeout" not in states, states

    # Every parameter back at its on-prem value.
    assert outcome.parameters_after == outcome.parameters_before, outcome.parameters_after

    # The notification and the cause: 0 messages left on Amazon MQ; each drain emptied its
    # broker.
    (note,) = [n for n in outcome.notifications if n["subject"].endswith(": rolled back")]
    lines = note["message"].splitlines()
    assert "Messages left on Amazon MQ: 0" in lines, note["message"]
    assert "holds no messages" in note["message"], note["message"]
    drained_lines = [line for line in lines if line.startswith("Drained ")]
    # One line per drain that brought messages home (the fence moves no message: not listed).
    assert len(drained_lines) == len([r for r in passed if r["purpose"] != "fence"]), lines
    assert all(
        re.match(
            r"Drained (Amazon MQ|on-prem): \d+ message\(s\) at the start of the rollback "
            r"drain, 0 left",
            line,
        )
        for line in drained_lines
    ), drained_lines
    assert re.search(r"left on Amazon MQ: 0\b", cause), cause

    # The figures: the clients ran on until every message sent was accounted for.
    assert outcome.sent == PRODUCERS * MESSAGES[phase], clients.failures()
    assert outcome.lost == 0, (outcome.lost_examples, clients.failures())
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)

    # Producers sent the whole time: to Amazon MQ once they had moved (when the rollback came
    # later than the drain's first call, or began with the ordered on-prem drain), on-prem
    # again after the rollback put them back, and still after it ended.
    assert min(last_sends) > 0, (last_sends, "sending stopped before the rollback ended")
    if mode == "ordered" or phase != "drain-begins":
        assert all(counts.get("amazonmq", 0) > 0 for counts in per_broker), per_broker
    assert all(last_sent_to(p) == "onprem" for p in clients.producers), per_broker
    # Every consumer ends on-prem; those that had moved to Amazon MQ came back.
    for switches in outcome.consumer_switches:
        assert on_onprem(placements(switches)[-1][-1], onprem), switches
    if mode == "ordered" or phase == "stop-gate":
        assert all(
            any(on_amazonmq(p) for c in placements(s) for p in c) for s in outcome.consumer_switches
        ), outcome.consumer_switches

    # Ordered: nothing out of order per producer and queue (last: every other check held).
    if mode == "ordered":
        assert outcome.out_of_order == 0, outcome.out_of_order_examples


def test_jms_on_prem_restart_during_the_drain_loses_nothing(
    fresh: list[Broker], jms_kit: JmsKit, tmp_path: Path
) -> None:
    """Ordered cutover; the on-prem broker is restarted when the drain begins (producers are on
    Amazon MQ, the consumer still empties on-prem). Its failover: transport reconnects by itself."""
    onprem, amazonmq = fresh
    restart: dict[str, float] = {}

    def restart_once() -> None:
        if restart:
            return
        restart["began"] = time.time()

        def go() -> None:
            onprem.restart()
            restart["ended"] = time.time()

        threading.Thread(target=go, daemon=True).start()

    clients = JmsClients(jms_kit, onprem, tmp_path)
    outcome = run_cutover(
        "ordered",
        onprem,
        amazonmq,
        clients,
        producers=PRODUCERS,
        messages=1000,
        rate=RATE,
        on_drain=restart_once,
    )
    print(f"\njms ordered, on-prem restarted during the drain: {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    assert "ended" in restart and outcome.bridge_failures > 0  # it really was down a while
    drains = outcome.results("Check Drain")
    drained = next((d for d in drains if d["drained"]), None)
    assert drained is not None, (outcome.status, drains[-1:])
    passed_at = datetime.fromisoformat(drained["checkedAt"]).timestamp()
    print(
        f"  on-prem down {restart['ended'] - restart['began']:.1f} s from the drain's first "
        f"call; the drain passed {passed_at - restart['ended']:+.1f} s after it was back"
    )
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == PRODUCERS * 1000, clients.failures()
    assert outcome.lost == 0, (outcome.lost_examples, clients.failures())
    assert outcome.out_of_order == 0
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    # The drain only passed once the broker was back and reporting again.
    assert passed_at > restart["ended"], drains
    # The consumer's failover transport reconnected to the restarted broker, then moved.
    (consumer,) = outcome.consumer_switches
    assert any(len(connection) > 1 for connection in placements(consumer)), consumer
    assert all(last_sent_to(p) == "amazonmq" for p in clients.producers), outcome.producer_switches
    assert ends_on_amazonmq(consumer), consumer
    assert all(FINAL_URL.fullmatch(url) for url in outcome.parameters_after.values())

"""Both procedures end to end on the real state machine, offline."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.client_urls import failover_members
from mq_cutover_cli.world import World
from tests.workflow.conftest import (
    entered,
    final_values,
    initial_values,
    run,
    task_results,
)

pytestmark = pytest.mark.workflow


def test_ordered_moves_every_producer_before_any_consumer(ordered_plan: dict[str, Any]) -> None:
    sim = run(ordered_plan)
    report = sim.report
    assert report["execution"]["status"] == "SUCCEEDED"
    states = entered(sim)
    # Broker creation was polled until RUNNING (the world keeps it creating for 2 polls).
    assert states.count("Check Broker") == 3 and states.count("Wait For Broker") == 2
    order = [
        s
        for s in states
        if s
        in {
            "Approve Cutover",
            "Repoint Producers",
            "Check Drain",
            "Repoint Consumers",
            "Approve Stop On-Prem",
            "Stop On-Prem",
        }
    ]
    first_drain = order.index("Check Drain")
    assert order[:2] == ["Approve Cutover", "Repoint Producers"]
    assert order[first_drain - 1] == "Repoint Producers"
    assert order[-3:] == ["Repoint Consumers", "Approve Stop On-Prem", "Stop On-Prem"]
    assert "Widen Consumers" not in states and "Narrow Consumers" not in states
    # The stop was followed (Check On-Prem Stop) until its command finished on every target.
    (stop,) = task_results(sim, "Stop On-Prem")
    stop_checks = task_results(sim, "Check On-Prem Stop")
    assert stop_checks[-1]["commandId"] == stop["commandId"]
    assert stop_checks[-1]["done"] and stop_checks[-1]["status"] == "Success"
    assert stop_checks[-1]["completed"] == stop_checks[-1]["targets"] >= 1
    (producers,) = task_results(sim, "Repoint Producers")
    (consumers,) = task_results(sim, "Repoint Consumers")
    assert producers["changed"] == ordered_plan["producers"]["parameters"]
    assert consumers["changed"] == ordered_plan["consumers"]["parameters"]
    # Drain: the loop ran until K consecutive empty readings, and said so before consumers moved.
    drains = task_results(sim, "Check Drain")
    assert drains[-1]["drained"] and drains[-1]["consecutiveEmpty"] == 3
    # The first call read every minute for 4 minutes: the first readings still saw messages.
    assert not drains[0]["drained"] and drains[0]["readings"] == 5
    assert 0 < drains[0]["consecutiveEmpty"] < drains[0]["readings"]
    assert drains[-1]["readings"] > 5 and drains[-1]["polls"] == 2
    assert drains[-1]["ignored"][0]["queue"] == "ActiveMQ.DLQ"
    # Every client ends on the active/standby failover URL of the new broker.
    output = report["execution"]["output"]
    client_url = output["broker"]["clientUrl"]
    assert (
        client_url.startswith("failover:(ssl://")
        and "-1.mq." in client_url
        and "-2.mq." in client_url
    )
    assert set(final_values(sim).values()) == {client_url}
    # Each parameter has its original version labelled for rollback.
    for name, info in report["parameters"].items():
        assert info["history"][0]["labels"] == ["pre-orders-2026-12-01"], name
        assert info["history"][-1]["labels"] == ["cutover-orders-2026-12-01"], name
    assert [a["gate"] for a in report["approverActions"]] == ["cutover", "stopOnPrem"]
    assert report["notifications"] == ["[mq-cutover] orders-2026-12-01: migration complete"]
    assert len(report["brokersCreated"]) == 1
    # Every on-prem message accounted for, counted when the fence held (before the stop):
    # the backlog (3 queues x 3,000) was all consumed and nothing is left.
    on_prem = output["counts"]["onPrem"]
    assert (on_prem["atStart"], on_prem["dequeued"], on_prem["left"]) == (9000, 9000, 0)
    assert on_prem["flaggedCount"] == 0 and on_prem["unknownCount"] == 0
    assert "On-prem since the run began: at start 9000" in report["notificationMessages"][-1]


def test_unordered_widens_first_moves_producers_one_by_one_narrows_after_drain(
    unordered_plan: dict[str, Any],
) -> None:
    sim = run(unordered_plan)
    report = sim.report
    assert report["execution"]["status"] == "SUCCEEDED"
    states = entered(sim)
    widen = states.index("Widen Consumers")
    first_producer = states.index("Repoint Producer")
    last_drain = len(states) - 1 - states[::-1].index("Check Drain")
    narrow = states.index("Narrow Consumers")
    stop = states.index("Stop On-Prem")
    assert widen < first_producer < last_drain < narrow < stop
    # One Map iteration per producer, each changing exactly that producer.
    producers = task_results(sim, "Repoint Producer")
    assert [p["changed"] for p in producers] == [
        [n] for n in unordered_plan["producers"]["parameters"]
    ]
    # Drained before narrowing: the last reading before Narrow Consumers says so.
    drains = task_results(sim, "Check Drain")
    assert drains[-1]["drained"]
    endpoint = report["execution"]["output"]["broker"]["clientUrl"]
    (amazon_mq,) = failover_members(endpoint)  # a single-instance broker, still failover:
    on_prem = unordered_plan["onPrem"]["url"]
    on_prem_members = failover_members(on_prem)
    for index, name in enumerate(unordered_plan["consumers"]["parameters"]):
        values = [h["value"] for h in report["parameters"][name]["history"]]
        # Placed by design: even consumers list on-prem first, odd ones Amazon MQ first.
        members = [*on_prem_members, amazon_mq] if index % 2 == 0 else [amazon_mq, *on_prem_members]
        assert values == [
            on_prem,
            f"failover:({','.join(members)})?randomize=false",
            f"failover:({amazon_mq})",
        ]
    for name in unordered_plan["producers"]["parameters"]:
        assert report["parameters"][name]["final"] == endpoint
    # The consumers' restart hook ran (an SSM command), once per change of their URL.
    consumer_changes = task_results(sim, "Widen Consumers") + task_results(sim, "Narrow Consumers")
    assert all(c["restartCommandId"] for c in consumer_changes)


@pytest.mark.parametrize(
    ("plan_name", "gate", "actions"),
    [
        ("ordered_plan", "cutover", ["done"]),
        # Producers and consumers on Amazon MQ: the ordered procedure backwards (after a fence:
        # no consumer left on-prem before producers come back).
        (
            "ordered_plan",
            "stopOnPrem",
            ["drain", "producers-back", "drain", "consumers-back", "done"],
        ),
        ("unordered_plan", "cutover", ["done"]),
        # Consumers narrowed to Amazon MQ: widened again, so they read both brokers while
        # producers go back and Amazon MQ empties.
        (
            "unordered_plan",
            "stopOnPrem",
            ["widen-consumers", "producers-back", "drain", "consumers-back", "done"],
        ),
    ],
)
def test_rejection_at_a_gate_rolls_back_clients_and_messages(
    plan_name: str, gate: str, actions: list[str], request: pytest.FixtureRequest
) -> None:
    plan = request.getfixturevalue(plan_name)
    # Producers on Amazon MQ send faster than its consumers take: messages wait there.
    world = World.from_document({"amazonMqEnqueuePerMinute": 3000})
    sim = run(plan, approve=f"reject:{gate}", world=world)
    report = sim.report
    execution = report["execution"]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Rejected"
    assert f"{gate} rejected by Ana Ops" in execution["cause"]  # the first simulated approver
    assert final_values(sim) == initial_values(sim)
    states = entered(sim)
    assert states[-3:] == ["Rollback Next?", "Notify Rolled Back", "Rolled Back"]
    assert "Stop On-Prem" not in states
    steps = task_results(sim, "Roll Back")
    assert [step["action"] for step in steps] == actions
    finished = steps[-1]
    assert finished["finished"] and finished["brokers"]["onPrem"]["side"] == "onPrem"
    message = report["notificationMessages"][-1]
    if "drain" in actions:
        # Amazon MQ held messages (producers had sent there); they were consumed before the
        # consumers went back, and the count says so.
        done = [d for d in task_results(sim, "Check Rollback Drain") if d["done"]]
        (drain,) = [d for d in done if d["side"] == "amazonMq"]
        if plan["mode"] == "ordered":
            (fence,) = [d for d in done if d["purpose"] == "fence"]
            assert fence["side"] == "onPrem" and fence["connectedCount"] == 0
        assert drain["side"] == "amazonMq" and drain["producersQuiet"]
        assert drain["initialMessagesLeft"] > 0 and drain["messagesLeft"] == 0
        assert finished["brokers"]["amazonMq"]["messagesLeft"] == 0
        drained_at = len(states) - 1 - states[::-1].index("Rollback Drain Done")
        back = [i for i, s in enumerate(states) if s == "Roll Back"]
        assert steps[actions.index("consumers-back")]["restored"]
        assert back[actions.index("consumers-back")] > drained_at
        assert sorted(r for s in steps for r in s["restored"]) == sorted(report["parameters"])
        assert f"Drained Amazon MQ: {drain['initialMessagesLeft']} message(s)" in message
        assert "Messages left on Amazon MQ: 0" in message
        assert "it holds no messages" in message
        counts = finished["counts"]["amazonMq"]
        assert counts["enqueued"] == counts["dequeued"] > 0 and counts["left"] == 0
        assert "Amazon MQ since the run began: at start 0" in message
        assert "every message accounted for" in message
    else:
        assert "Repoint Producers" not in states and "Widen Consumers" not in states
        assert "Check Rollback Drain" not in states
    assert "Cause: " in message and "left on Amazon MQ" in execution["cause"]
    # The broker is kept, and the notification says so.
    assert len(report["brokersCreated"]) == 1
    assert report["notifications"] == [f"[mq-cutover] {plan['migrationId']}: rolled back"]


def test_bad_plan_fails_at_validation_and_changes_nothing(ordered_plan: dict[str, Any]) -> None:
    del ordered_plan["target"]["create"]["engine"]
    ordered_plan["consumers"]["parameters"][0] = "/elsewhere/url"
    sim = run(ordered_plan)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "PlanInvalid"
    assert "target.create.engine: Field required" in execution["cause"]
    assert entered(sim) == [
        "Validate Plan",
        "Describe Failure",
        "Route Failure",
        "Notify Not Started",
        "Not Started",
    ]
    assert sim.report["brokersCreated"] == []
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())
    assert sim.report["approvals"] == []


def test_plan_outside_the_stack_prefix_is_refused_before_any_change(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["consumers"]["parameters"][0] = "/elsewhere/url"
    sim = run(ordered_plan)
    execution = sim.report["execution"]
    assert execution["error"] == "PlanInvalid"
    assert execution["cause"].startswith(
        "consumers.parameters[0]: /elsewhere/url is outside /mq-cutover/"
    )
    assert sim.report["brokersCreated"] == []
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())

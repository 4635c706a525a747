"""Copy Topology on the real state machine (moto; the brokers' HTTP APIs simulated by the world,
`mq_cutover_cli.simulated_brokers`): the Amazon MQ broker gets the on-prem topology before the
cutover gate, the gate shows the comparison, nothing on-prem is written, and a broker that
refuses the copy stops the run before any client moves."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from mq_cutover.activemq_topology import listed_destinations
from mq_cutover.plan import parse_plan
from mq_cutover_cli.harness import Emulator
from mq_cutover_cli.world import default_world
from tests.conftest import load_event
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results
from tests.workflow.test_failures import gate_email

pytestmark = pytest.mark.workflow


def rabbit_plan() -> dict[str, Any]:
    return load_event("plan-rabbitmq.json")


def test_rabbitmq_topology_is_copied_before_the_cutover_gate() -> None:
    plan = rabbit_plan()
    world = default_world(parse_plan(plan))
    sim = run(plan, world=world)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    states = entered(sim)
    assert states.index("Resolve Endpoints") < states.index("Copy Topology")
    assert states.index("Copy Topology") < states.index("Approve Cutover")
    [result] = task_results(sim, "Copy Topology")
    assert result["matches"] is True and result["differenceCount"] == 0
    assert result["counts"]["queues"] == 3
    assert "match" in result["summary"]
    # The classic mirrored queues (policy ha-all) became quorum queues; the policy's ha keys
    # were not copied (Amazon MQ RabbitMQ has no classic mirroring).
    assert result["changeCount"] >= 3
    amazon_mq = world.broker_apis["amazonMq"]
    on_prem = world.broker_apis["onPrem"]
    copied = {name: queue for (vhost, name), queue in amazon_mq.queues.items() if vhost == "/"}
    assert set(copied) == {"invoices.created", "invoices.paid", "invoices.dead"}
    assert {q["arguments"].get("x-queue-type") for q in copied.values()} == {"quorum"}
    assert ("/", "app") in amazon_mq.exchanges
    assert {(b["source"], b["destination"]) for b in amazon_mq.bindings} == {
        ("app", "invoices.created"),
        ("app", "invoices.paid"),
        ("app", "invoices.dead"),
    }
    assert all("ha-mode" not in p["definition"] for p in amazon_mq.policies.values())
    # Nothing on-prem was written: only reads reached its API.
    assert on_prem.requests and {method for method, _ in on_prem.requests} == {"GET"}
    # The cutover gate showed the comparison to the approvers (the email's text).
    cutover_mail = gate_email(sim, "cutover")
    assert "Topology on Amazon MQ: MATCHES" in cutover_mail
    assert result["summary"] in cutover_mail
    assert "Topology on Amazon MQ" not in gate_email(sim, "stopOnPrem")


def test_a_refused_copy_without_a_cutover_gate_rolls_back_before_any_client_moves() -> None:
    plan = rabbit_plan()
    plan["approvals"]["gates"] = ["stopOnPrem"]
    world = default_world(parse_plan(plan))

    def clash(emulator: Emulator) -> None:
        # The Amazon MQ broker already holds a queue of that name, declared differently: its
        # management API refuses the import (PRECONDITION_FAILED), as RabbitMQ does.
        world.broker_apis["amazonMq"].put_queue(
            "/", "invoices.paid", {"durable": True, "arguments": {"x-queue-type": "classic"}}
        )

    sim = run(
        plan, world=world, before_start=clash, stack_parameters={"RequiredGates": "stopOnPrem"}
    )
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "TopologyCopyFailed"
    assert "invoices.paid" in execution["cause"]
    states = entered(sim)
    assert "Copy Topology" in states and "Roll Back" in states
    assert not {"Approve Cutover", "Repoint Producers"} & set(states)
    assert final_values(sim) == initial_values(sim)  # no client moved


def test_activemq_destinations_become_a_configuration_revision_applied_by_a_reboot() -> None:
    plan = copy.deepcopy(load_event("plan-ordered.json"))
    plan["topology"] = {
        "onPremApi": {
            "url": "http://onprem-mq.example.internal:8161/api/jolokia",
            "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mq-cutover/jolokia",
        }
    }
    world = default_world(parse_plan(plan))
    configurations: list[Any] = []

    def read_broker(emulator: Emulator, _arn: str) -> None:
        mq = emulator.client("mq")
        [broker] = mq.list_brokers()["BrokerSummaries"]
        current = mq.describe_broker(BrokerId=broker["BrokerId"])["Configurations"]["Current"]
        revision = mq.describe_configuration_revision(
            ConfigurationId=current["Id"], ConfigurationRevision=str(current["Revision"])
        )
        configurations.append(revision["Data"])

    sim = run(plan, world=world, after_run=read_broker)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    first, second = task_results(sim, "Copy Topology")
    assert first["revisionWritten"] and first["rebootStarted"] and first["awaitingReboot"]
    assert not first["matches"]
    # The state machine waited for the broker to run again, then found the revision applied.
    states = entered(sim)
    first_at = states.index("Copy Topology")
    between = states[first_at + 1 : states.index("Copy Topology", first_at + 1)]
    assert "Wait For Broker" in between and "Check Broker" in between
    assert second["matches"] and not second["revisionWritten"] and not second["awaitingReboot"]
    listed = listed_destinations(base64.b64decode(configurations[0]).decode())
    assert listed["queue"] >= {"orders.created", "orders.paid", "orders.shipped"}


def test_a_rollback_reads_amazon_mq_from_its_management_api() -> None:
    """target.metrics.source managementApi (Amazon MQ RabbitMQ 4.x publishes no per-queue
    metrics): the rollback drains Amazon MQ by its management API and counts what is left
    there from it, never from AWS/AmazonMQ."""
    plan = rabbit_plan()
    plan["target"]["metrics"] = {"source": "managementApi"}
    world = default_world(parse_plan(plan))
    sim = run(plan, world=world, approve="reject:stopOnPrem")
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "Rejected")
    amazon_mq_drains = [
        r for r in task_results(sim, "Check Rollback Drain") if r["side"] == "amazonMq"
    ]
    assert amazon_mq_drains and amazon_mq_drains[-1]["drained"]
    assert all(r["missingCount"] == 0 and "readError" not in r for r in amazon_mq_drains)
    assert "left on Amazon MQ: 0" in execution["cause"]
    reads = [path for method, path in world.broker_apis["amazonMq"].requests if method == "GET"]
    assert reads.count("/api/queues/%2F") >= len(amazon_mq_drains) + 1  # the drains, the count

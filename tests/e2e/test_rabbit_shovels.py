"""The RabbitMQ no-interruption procedure end to end (plan mode `unordered` on a created
RabbitMQ broker): consumers move first and consume from Amazon MQ, producers follow, and what
is left on-prem is moved to Amazon MQ by a shovel per queue defined on the on-prem broker,
verified by count before on-prem stops.

Two real RabbitMQ 3.10.8 nodes of this module's own (free ports and epmd, so the session's
fixed-port pair may run beside them), the pika reference clients and the workflow on the
emulator, as in test_rabbit_cutover.py. What the shovels need, as in the real world:

1. **Simulated DNS for the on-prem node.** The shovels run inside it and dial the Amazon MQ
   endpoint the workflow resolved, `amqps://<broker id>-1.mq.us-east-1.amazonaws.com:5671`.
   The broker id is random, known once Provision Broker has run: when Check Broker / Resolve
   Endpoints is invoked with it, its host names are appended to the node's Erlang hosts file
   (rabbit_nodes' `hosts=` and `add_hosts`), which the running node reads again by itself
   (~5 s), as a DNS record appears. The node is not touched.
2. **The stand-in serves AMQPS on 127.0.0.1:5671** (`NodePorts.amqps_also`) with the
   **simulated** certificate for `*.mq.us-east-1.amazonaws.com` (make_rabbit_tls); the plan's
   `topology.shovelCaCertFile` is the simulated CA's PEM file, so the chain is verified.
3. RabbitMQ 3.x ignores `customize_hostname_check` in a shovel URI: the operator applies the
   README's workaround on the on-prem node before the run (`rabbitmqctl eval`, test_shovels).
4. The pika clients reach the stand-in under the Amazon MQ host name (PikaClients.resolve).

Port 5671 is fixed (it is Amazon MQ's): this module cannot run twice at once on one machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli.harness import Emulator
from tests.e2e.brokers import free_port
from tests.e2e.rabbit_nodes import (
    AMAZON_MQ_AMQPS_PORT,
    HOST,
    RabbitNode,
    RabbitTls,
    free_node_ports,
    port_open,
    running_rabbit_nodes,
)
from tests.e2e.rabbit_scenario import (
    PikaClients,
    RabbitKit,
    application_topology,
    declare_application_topology,
)
from tests.e2e.scenario import QUEUES, Outcome, run_cutover
from tests.e2e.test_rabbit_cutover import (
    PRODUCERS,
    check_topology_copied,
    on_amazonmq,
    sent_per_broker,
    timeline,
)
from tests.e2e.test_shovels import WILDCARD_CHECK
from tests.e2e.tls import amazon_mq_hosts

pytestmark = pytest.mark.e2e

MESSAGES = 5000  # per producer
SHOVEL_PREFIX = "mq-cutover."


@pytest.fixture(scope="module")
def shovel_nodes(
    tmp_path_factory: pytest.TempPathFactory, rabbit_tls: RabbitTls
) -> Iterator[list[RabbitNode]]:
    """`onprem` with a simulated DNS hosts file (empty until the broker exists), `amazonmq`
    with the simulated certificate on its own amqps port and on 127.0.0.1:5671."""
    if port_open(AMAZON_MQ_AMQPS_PORT):
        pytest.fail(f"{HOST}:{AMAZON_MQ_AMQPS_PORT} is taken: another run or a local RabbitMQ?")
    stand_in = replace(free_node_ports(), amqps_also=AMAZON_MQ_AMQPS_PORT)
    with running_rabbit_nodes(
        tmp_path_factory.mktemp("rabbit-shovels"),
        ["onprem", "amazonmq"],
        ports=[free_node_ports(), stand_in],
        epmd_port=free_port(),
        tls={"amazonmq": rabbit_tls},
        hosts={"onprem": {}},
    ) as started:
        yield started


@pytest.fixture
def rabbit(shovel_nodes: list[RabbitNode]) -> Iterator[list[RabbitNode]]:
    """Both nodes running and empty; the application's topology on the on-prem node only."""
    onprem, amazonmq = shovel_nodes
    for node in shovel_nodes:
        if not node.running:
            node.start()
        node.reset_topology()
    declare_application_topology(onprem, QUEUES)
    assert application_topology(amazonmq, QUEUES)["queues"] == {}
    try:
        yield shovel_nodes
    finally:
        for node in shovel_nodes:
            if not node.running:
                node.start()
            node.reset_topology()


class ShovelKit(RabbitKit):
    """RabbitKit, plus what the shovels need: the CA bundle in the plan
    (`topology.shovelCaCertFile`), and the simulated DNS record for the Amazon MQ broker's
    host names on the on-prem node as soon as the workflow knows its id."""

    def __init__(self, onprem: RabbitNode, amazonmq: RabbitNode, cafile: Path) -> None:
        super().__init__(onprem, amazonmq)
        self.cafile = cafile
        self.dns: list[str] = []  # the host names added to the on-prem node's simulated DNS

    def amend(self, document: dict[str, Any]) -> None:
        super().amend(document)
        document["topology"]["shovelCaCertFile"] = str(self.cafile)

    def install(self, emulator: Emulator) -> None:
        super().install(emulator)
        emulator.hooks.append(self._simulated_dns)

    def _simulated_dns(self, function: str, event: dict[str, Any]) -> None:
        broker_id = event.get("brokerId") if isinstance(event, dict) else None
        if function in ("CheckBrokerFunction", "ResolveEndpointsFunction") and broker_id:
            names = [n for n in amazon_mq_hosts(str(broker_id)) if n not in self.dns]
            if names:
                self.onprem.add_hosts(names)
                self.dns.extend(names)


def our_shovels(node: RabbitNode) -> list[str]:
    """Shovel parameters and running shovels on the node that mq-cutover named."""
    parameters = [p["name"] for p in node.api("GET", "/api/parameters/shovel") or []]
    running = [s["name"] for s in node.api("GET", "/api/shovels") or []]
    return sorted(n for n in {*parameters, *running} if n.startswith(SHOVEL_PREFIX))


def moved_by_shovels(outcome: Outcome) -> int:
    verified = outcome.results("Verify Shovels")[-1]
    return sum(int(row["moved"]) for row in verified["queues"])


def test_rabbit_unordered_shovels_nothing_lost_no_pause(
    rabbit: list[RabbitNode], rabbit_tls: RabbitTls
) -> None:
    onprem, amazonmq = rabbit
    # The operator's workaround for RabbitMQ 3.x (README): the wildcard-aware host-name check
    # for the node's outgoing Erlang-client TLS connections, applied before the migration.
    onprem.ctl("eval", WILDCARD_CHECK)
    kit = ShovelKit(onprem, amazonmq, rabbit_tls.cafile)
    outcome = run_cutover(
        "unordered",
        onprem,
        amazonmq,
        PikaClients(onprem, amazonmq),
        producers=PRODUCERS,
        messages=MESSAGES,
        rate=400.0,
        kit=kit,
    )
    print(f"\nrabbitmq unordered (shovels): {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    print(f"  {timeline(outcome)}")
    print(f"  {check_topology_copied(outcome, kit, amazonmq)}")
    print(f"  simulated DNS on onprem: {kit.dns}")
    print(f"  sent per producer and broker: {[sent_per_broker(outcome, i) for i in (0, 1)]}")
    verified = outcome.results("Verify Shovels")
    if verified:
        print(f"  Verify Shovels ({len(verified)} calls): {verified[-1].get('summary')}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert kit.dns, "the workflow never named the broker"
    states = outcome.states
    for earlier, later in [
        ("Copy Topology", "Start Shovels"),
        ("Start Shovels", "Move Consumers First"),
        ("Move Consumers First", "Mark Shovel Baseline"),
        ("Mark Shovel Baseline", "Repoint Producers"),
        ("Repoint Producers", "Verify Shovels"),
        ("Verify Shovels", "Remove Shovels"),
        ("Remove Shovels", "Stop On-Prem"),
    ]:
        assert states.index(earlier) < states.index(later), (earlier, later, states)
    (started,) = outcome.results("Start Shovels")
    assert started["running"] is True and started["count"] == len(QUEUES), started
    # The figures: nothing lost, nothing left, no pause in the deliveries.
    assert outcome.sent == PRODUCERS * MESSAGES
    assert outcome.lost == 0, outcome.lost_examples
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    assert outcome.longest_gap < 1.0, outcome.around_gap()
    # Verified by count before on-prem stopped: the on-prem queues empty, and every message
    # the shovels took counted arriving on Amazon MQ.
    assert verified[-1]["verified"] is True, verified[-1]
    assert moved_by_shovels(outcome) > 0, verified[-1]
    assert verified[-1]["summary"].endswith("moved and counted on Amazon MQ"), verified[-1]
    for row in verified[-1]["queues"]:
        assert row["onPrem"]["messages"] == 0, row
    # The shovels are gone from the on-prem node (Remove Shovels), with the password they held.
    assert our_shovels(onprem) == []
    # Every client ends on Amazon MQ, under its host name; producers sent to both brokers.
    assert all(on_amazonmq(s[-1][1]) for s in outcome.producer_switches)
    assert all(on_amazonmq(s[-1][1]) for s in outcome.consumer_switches)
    assert all(set(sent_per_broker(outcome, i)) == {"onprem", "amazonmq"} for i in (0, 1))
    assert all(v.startswith("amqps://") for v in outcome.parameters_after.values())
    assert amazonmq.credentials[1] not in repr(outcome.history)

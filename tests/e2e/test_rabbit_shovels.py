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

import time
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
        # The stand-in's AMQP connections once Start Shovels said every shovel runs.
        self.shovel_connections: list[dict[str, Any]] = []

    def amend(self, document: dict[str, Any]) -> None:
        super().amend(document)
        document["topology"]["shovelCaCertFile"] = str(self.cafile)

    def install(self, emulator: Emulator) -> None:
        super().install(emulator)
        emulator.hooks.append(self._simulated_dns)
        emulator.after_hooks.append(self._after)

    def _after(self, function: str, event: dict[str, Any], _result: Any) -> None:
        if function == "ShovelsFunction" and event.get("action") == "start":
            columns = "name,ssl,port,user,client_properties"
            deadline = time.monotonic() + 5  # the connection list comes from statistics
            while not self.shovel_connections and time.monotonic() < deadline:
                self.shovel_connections = [
                    c
                    for c in self.amazonmq.api("GET", f"/api/connections?columns={columns}") or []
                    if c.get("port") == AMAZON_MQ_AMQPS_PORT
                ]
                time.sleep(0.2)

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


def moves(outcome: Outcome) -> str:
    """When each client reached Amazon MQ, in seconds after the step that moved it began, and
    when the execution began after the first message was sent."""
    entered = {name: at for at, name in reversed(outcome.entered_at)}
    first_send = min(at for sent in outcome.sent_at for _, _, at in sent)

    def after(switches: list[tuple[float, str]], step: str) -> str:
        at = min((t for t, e in switches if on_amazonmq(e)), default=None)
        return "-" if at is None or step not in entered else f"{at - entered[step]:+.1f}s"

    consumers = [after(s, "Move Consumers First") for s in outcome.consumer_switches]
    producers = [after(s, "Repoint Producers") for s in outcome.producer_switches]
    began = outcome.entered_at[0][0] - first_send if outcome.entered_at else 0.0
    return (
        f"execution began {began:.1f} s after the first send; on Amazon MQ: consumers "
        f"{consumers} after Move Consumers First, producers {producers} after Repoint Producers"
    )


def only_a_shovel_could_carry(outcome: Outcome) -> int:
    """Messages a producer sent to the on-prem broker after every consumer had left it for
    Amazon MQ: each one received was carried there by a shovel."""
    consumers_gone = max(
        next(at for at, where in switches[1:] if on_amazonmq(where))
        for switches in outcome.consumer_switches
    )
    carried = 0
    for sent, switches in zip(outcome.sent_at, outcome.producer_switches, strict=True):
        moved = next((at for at, where in switches[1:] if on_amazonmq(where)), float("inf"))
        carried += sum(1 for _, _, at in sent if consumers_gone < at < moved)
    return carried


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
        # 25 s of sending: the producers are still at it when they move (Repoint Producers
        # waits for the consumers to leave on-prem, about 8 s into the run here).
        rate=200.0,
        kit=kit,
    )
    print(f"\nrabbitmq unordered (shovels): {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    print(f"  {timeline(outcome)}")
    print(f"  {moves(outcome)}")
    print(f"  {check_topology_copied(outcome, kit, amazonmq)}")
    print(f"  simulated DNS on onprem: {kit.dns}")
    names = [
        (c.get("client_properties") or {}).get("connection_name") for c in kit.shovel_connections
    ]
    print(f"  on the stand-in's {AMAZON_MQ_AMQPS_PORT} when the shovels ran: {names}")
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
    # The shovels dialled the Amazon MQ endpoint as written (host name, 5671) over TLS: one
    # connection per queue on the stand-in's 5671 listener, as the broker's user.
    shovel_links = kit.shovel_connections
    assert len(shovel_links) == len(QUEUES), shovel_links
    assert all(c["ssl"] and c["user"] == amazonmq.username for c in shovel_links), shovel_links
    # Messages sent on-prem after the consumers had left it arrived: the shovels carried them
    # (how many were sent on-prem after the baseline is what Verify Shovels counted: few, as
    # producers move right after it).
    assert only_a_shovel_could_carry(outcome) > 0, verified[-1]
    assert verified[-1]["summary"].endswith("moved and counted on Amazon MQ"), verified[-1]
    for row in verified[-1]["queues"]:
        assert row["onPrem"]["messages"] == 0, row
    # The shovels are gone from the on-prem node (Remove Shovels), with the password they held.
    assert our_shovels(onprem) == []
    # Every client ends on Amazon MQ, under its host name; producers sent to both brokers.
    assert all(on_amazonmq(s[-1][1]) for s in outcome.producer_switches)
    # Consumers first is the order of the parameter writes (the steps' order, above): Repoint
    # Producers does not wait for consumers to be seen on Amazon MQ, so with clients that poll
    # their parameter, a producer may get there a moment before a consumer (`moves`, printed).
    assert all(on_amazonmq(s[-1][1]) for s in outcome.consumer_switches)
    assert all(set(sent_per_broker(outcome, i)) == {"onprem", "amazonmq"} for i in (0, 1))
    assert all(v.startswith("amqps://") for v in outcome.parameters_after.values())
    assert amazonmq.credentials[1] not in repr(outcome.history)

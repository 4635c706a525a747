"""End-to-end: the RabbitMQ foundation of issue 14 (real Debian rabbitmq-server nodes, the pika
reference clients of examples/clients/rabbit_client.py), before any workflow runs on it.

- the nodes are set up as documented (own cookie for rabbitmqctl, admin user and no guest,
  management and shovel plugins, loopback only); the stand-in's TLS listener serves the
  simulated Amazon MQ certificate, which a verifying client accepts for the Amazon MQ host name
  only;
- 2 producers x 500 persistent messages over 3 queues (made by the test through the management
  API: the clients declare nothing) reach one consumer with nothing lost;
- the clients follow their SSM parameter (moto) from `onprem` to the Amazon MQ stand-in, which
  they reach under its Amazon MQ host name (simulated DNS, real TLS);
- without the topology, publishes come back unroutable and subscriptions are refused, both
  retried until an operator makes the queue;
- persistent messages on a durable queue survive a stop and start of the node, during which
  the producer reconnects and publishes again what was not confirmed;
- every process of a node and epmd is stopped by PID, even when the body fails.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pika
import pytest
from moto import mock_aws

from tests.e2e.brokers import free_port
from tests.e2e.rabbit_nodes import (
    Pid,
    RabbitNode,
    free_node_ports,
    listening,
    port_open,
    processes_mentioning,
    running_rabbit_nodes,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "clients"))
from rabbit_client import Consumer, Producer, same_credentials

pytestmark = pytest.mark.e2e

QUEUES = ["e2e.orders", "e2e.payments", "e2e.shipments"]
AMAZON_MQ_HOST = "b-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9.mq.us-east-1.amazonaws.com"


@pytest.fixture
def ssm() -> Iterator[Any]:
    """moto's Parameter Store: the clients read their broker URL from it, as on AWS."""
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


class Stand:
    """The clients' view of the two nodes: credentials by URL host, and the Amazon MQ host name
    resolved to the `amazonmq` node's AMQP-over-TLS port (simulated DNS; real TLS with the
    simulated certificate, verified by the clients)."""

    def __init__(self, onprem: RabbitNode, amazonmq: RabbitNode) -> None:
        self.onprem, self.amazonmq = onprem, amazonmq
        assert amazonmq.tls is not None
        self.ssl_context = amazonmq.tls.client_context()

    @property
    def amazon_mq_url(self) -> str:
        return f"amqps://{AMAZON_MQ_HOST}:5671"  # what mq-cutover hands out

    def credentials(self, host: str) -> tuple[str, str]:
        node = self.amazonmq if host.endswith(".amazonaws.com") else self.onprem
        return node.credentials

    def resolve(self, host: str, port: int, tls: bool) -> tuple[str, int, bool]:
        if host.endswith(".amazonaws.com"):  # simulated DNS: the stand-in node, still TLS
            return ("127.0.0.1", self.amazonmq.amqps_port, True)
        return (host, port, tls)


def _start(targets: list[Any], stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=t.run, args=(stop,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    return threads


def _tally(producers: list[Producer], consumers: list[Consumer]) -> dict[str, int]:
    sent = {(p.name, q, seq) for p in producers for q, seq, _ in p.sent}
    got = Counter((r["producer"], r["queue"], r["seq"]) for c in consumers for r in c.received)
    return {
        "sent": len(sent),
        "received": len(set(got)),
        "lost": len(sent - set(got)),
        "duplicated": sum(n - 1 for n in got.values()),
        "unexpected": len(set(got) - sent),
    }


def _wait_received(consumers: list[Consumer], expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = {(r["producer"], r["queue"], r["seq"]) for c in consumers for r in c.received}
        if len(got) >= expected:
            return
        time.sleep(0.1)


def test_nodes_are_set_up_as_documented(fresh_rabbit: list[RabbitNode]) -> None:
    for node in fresh_rabbit:
        overview = node.api("GET", "/api/overview")
        assert overview["node"] == node.node_name
        assert overview["rabbitmq_version"].startswith("3.")
        assert [u["name"] for u in node.api("GET", "/api/users")] == [node.username]  # no guest
        assert "administrator" in node.api("GET", "/api/whoami")["tags"]
        assert node.api("GET", "/api/shovels") == []  # shovel management answers
        (beam,) = [p for p in node.pids() if p.command == "beam.smp"]
        # AMQP, AMQPS (the stand-in), management API, distribution: loopback only.
        assert listening(beam.pid) == {("127.0.0.1", p) for p in node.listening_ports}
        # rabbitmqctl reaches the node with the node's own cookie and epmd.
        node.declare_queues(["e2e.ctl"])
        assert "e2e.ctl" in node.ctl("list_queues", "name", "--quiet").split()
    assert fresh_rabbit[0].reset_topology()["queues"] == 1


def test_stand_in_serves_the_simulated_amazon_mq_certificate(
    fresh_rabbit: list[RabbitNode], caplog: pytest.LogCaptureFixture
) -> None:
    """The stand-in's TLS listener: a client that verifies finds the Amazon MQ host name in
    the certificate, and refuses it for a host it was not made for."""
    caplog.set_level(logging.CRITICAL, logger="pika")  # the refusal below is expected
    onprem, amazonmq = fresh_rabbit
    assert onprem.tls is None and onprem.amqps_port == 0
    assert amazonmq.tls is not None and amazonmq.amqps_port
    context = amazonmq.tls.client_context()

    def connect(server_name: str) -> None:
        parameters = pika.ConnectionParameters(
            "127.0.0.1", amazonmq.amqps_port, "/", pika.PlainCredentials(*amazonmq.credentials),
            ssl_options=pika.SSLOptions(context, server_name), connection_attempts=1,
        )  # fmt: skip
        pika.BlockingConnection(parameters).close()

    connect(AMAZON_MQ_HOST)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        connect("b-other.mq.eu-west-1.amazonaws.com")  # not in the certificate


def test_two_producers_three_queues_nothing_lost(fresh_rabbit: list[RabbitNode], ssm: Any) -> None:
    onprem, amazonmq = fresh_rabbit
    stand = Stand(onprem, amazonmq)
    onprem.declare_queues(QUEUES)  # the broker's topology: the clients declare nothing
    for index in range(2):
        ssm.put_parameter(Name=f"/e2e/p{index}", Value=onprem.endpoint_url, Type="String")
    ssm.put_parameter(Name="/e2e/c0", Value=onprem.endpoint_url, Type="String")
    creds = stand.credentials
    consumers = [Consumer(ssm, "/e2e/c0", "c0", QUEUES, credentials=creds)]
    producers = [
        Producer(ssm, f"/e2e/p{i}", f"p{i}", QUEUES, 500, credentials=creds) for i in range(2)
    ]
    stop = threading.Event()
    threads = _start(consumers, stop)
    try:
        for thread in _start(producers, stop):  # type: ignore[arg-type]
            thread.join(60)
        _wait_received(consumers, 1000, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    tally = _tally(producers, consumers)
    print(f"\none node: {tally}, resends {[p.resends for p in producers]}")
    assert tally == {"sent": 1000, "received": 1000, "lost": 0, "duplicated": 0, "unexpected": 0}
    assert all(r["broker"] == f"127.0.0.1:{onprem.amqp_port}" for r in consumers[0].received)
    assert onprem.wait_depths(dict.fromkeys(QUEUES, 0)) == dict.fromkeys(QUEUES, 0)


def test_clients_follow_their_parameter_to_the_stand_in(
    fresh_rabbit: list[RabbitNode], ssm: Any
) -> None:
    """A cutover by hand (no workflow): producers repointed mid-run, consumers after on-prem
    has drained. Nothing lost, every client ends on the stand-in."""
    onprem, amazonmq = fresh_rabbit
    stand = Stand(onprem, amazonmq)
    for node in fresh_rabbit:
        node.declare_queues(QUEUES)
    names = ["/e2e/p0", "/e2e/p1", "/e2e/c0"]
    for name in names:
        ssm.put_parameter(Name=name, Value=onprem.endpoint_url, Type="String")
    common: dict[str, Any] = {
        "credentials": stand.credentials,
        "resolve": stand.resolve,
        "ssl_context": stand.ssl_context,
    }
    consumers = [Consumer(ssm, "/e2e/c0", "c0", QUEUES, **common)]
    producers = [
        Producer(ssm, f"/e2e/p{i}", f"p{i}", QUEUES, 400, rate_per_second=200, **common)
        for i in range(2)
    ]
    stop = threading.Event()
    threads = _start(consumers, stop)
    producer_threads = _start(producers, stop)  # type: ignore[arg-type]
    try:
        while sum(len(p.sent) for p in producers) < 300:
            time.sleep(0.05)
        for name in names[:2]:
            ssm.put_parameter(Name=name, Value=stand.amazon_mq_url, Overwrite=True)
        for thread in producer_threads:
            thread.join(60)
        assert onprem.wait_depths(dict.fromkeys(QUEUES, 0)) == dict.fromkeys(QUEUES, 0)
        ssm.put_parameter(Name=names[2], Value=stand.amazon_mq_url, Overwrite=True)
        _wait_received(consumers, 800, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    tally = _tally(producers, consumers)
    print(f"\nswitch: {tally}, switches {[p.switches[-1][1] for p in producers]}")
    assert tally["sent"] == 800 and tally["lost"] == 0 and tally["unexpected"] == 0, tally
    stand_in = f"{AMAZON_MQ_HOST}:5671"
    assert all(p.switches[-1][1] == stand_in for p in producers)
    assert [where for _, where in consumers[0].switches] == [
        f"127.0.0.1:{onprem.amqp_port}",
        stand_in,
    ]
    # Each producer's messages: first on-prem, then on the stand-in, never back.
    by_broker = Counter(r["broker"] for r in consumers[0].received)
    assert by_broker[stand_in] > 0 and by_broker[f"127.0.0.1:{onprem.amqp_port}"] >= 300


def test_clients_wait_for_the_topology_instead_of_declaring_it(
    fresh_rabbit: list[RabbitNode], ssm: Any
) -> None:
    """No queue yet: the producer's mandatory publishes come back unroutable and are published
    again, the consumer's subscription is refused (NOT_FOUND) and retried. Once an operator
    makes the queue, every message arrives; the clients declared nothing."""
    onprem, _ = fresh_rabbit
    ssm.put_parameter(Name="/e2e/p0", Value=onprem.endpoint_url, Type="String")
    creds = same_credentials(*onprem.credentials)
    producer = Producer(ssm, "/e2e/p0", "p0", ["e2e.late"], 100, credentials=creds)
    consumer = Consumer(ssm, "/e2e/p0", "c0", ["e2e.late"], credentials=creds)
    stop = threading.Event()
    threads = _start([consumer, producer], stop)
    try:
        time.sleep(1.5)
        assert producer.sent == [] and producer.unroutable >= 1
        assert consumer.switches == []  # not consuming: the queue does not exist
        assert onprem.queue_depths(["e2e.late"]) == {}  # nobody declared it
        onprem.declare_queues(["e2e.late"])
        threads[1].join(30)
        _wait_received([consumer], 100, 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert _tally([producer], [consumer])["lost"] == 0
    assert len(producer.sent) == 100 and len(consumer.switches) == 1


def test_persistent_messages_survive_a_restart(fresh_rabbit: list[RabbitNode], ssm: Any) -> None:
    """The node is stopped and started while a producer publishes (nobody consumes): what was
    confirmed before the stop is still there after it, the producer reconnects and publishes
    again what was not confirmed, and a consumer started afterwards gets every message."""
    onprem, _ = fresh_rabbit
    onprem.declare_queues(["e2e.durable"])
    ssm.put_parameter(Name="/e2e/p0", Value=onprem.endpoint_url, Type="String")
    creds = same_credentials(*onprem.credentials)
    producer = Producer(
        ssm, "/e2e/p0", "p0", ["e2e.durable"], 500, rate_per_second=100, credentials=creds
    )
    stop = threading.Event()
    (producing,) = _start([producer], stop)
    consumer = Consumer(ssm, "/e2e/p0", "c0", ["e2e.durable"], credentials=creds)
    try:
        while len(producer.sent) < 150:
            time.sleep(0.02)
        onprem.stop()
        confirmed_before_stop = len(producer.sent)
        onprem.start()
        producing.join(60)
        assert len(producer.sent) == 500 and producer.resends >= 1
        depth = onprem.queue_depths(["e2e.durable"])["e2e.durable"]
        assert depth >= 500  # more when an unconfirmed publish had arrived: a duplicate
        threads = _start([consumer], stop)
        _wait_received([consumer], 500, 20)
    finally:
        stop.set()
        producing.join(30)
    for thread in threads:
        thread.join(30)
    tally = _tally([producer], [consumer])
    print(f"\nrestart: {tally}, confirmed before the stop {confirmed_before_stop}")
    assert tally["lost"] == 0 and tally["received"] == 500, tally
    assert onprem.wait_depths({"e2e.durable": 0}) == {"e2e.durable": 0}


def test_every_process_is_stopped_by_pid_even_on_failure(tmp_path: Path) -> None:
    """A private node and epmd on free ports (the session's nodes keep theirs)."""
    ports, epmd_port = free_node_ports(), free_port()
    recorded: list[Pid] = []
    with (
        pytest.raises(RuntimeError, match="the body failed"),
        running_rabbit_nodes(tmp_path, ["pidcheck"], [ports], epmd_port) as nodes,
    ):
        recorded = nodes[0].pids()
        recorded += [p for p in processes_mentioning(f"-port {epmd_port}") if p.command == "epmd"]
        commands = {p.command for p in recorded}
        assert {"rabbitmq-server", "beam.smp", "erl_child_setup", "epmd"} <= commands, commands
        raise RuntimeError("the body failed")
    assert [p for p in recorded if p.alive()] == []
    assert processes_mentioning(str(tmp_path)) == []
    assert processes_mentioning(f"-port {epmd_port}") == []
    assert not any(port_open(p) for p in (ports.amqp, ports.management, ports.dist, epmd_port))

"""mq_cutover.shovels on two real RabbitMQ 3.10.8 nodes: `onprem` runs the shovels, `amazonmq`
stands in for Amazon MQ with AMQP over TLS and a **simulated** certificate for
`*.mq.us-east-1.amazonaws.com` (make_rabbit_tls). The on-prem node reaches the Amazon MQ host
name through **simulated** DNS (an Erlang inetrc, rabbit_nodes' `hosts=`), with the product's
destination URI: amqps, peer verification against the CA bundle, host-name check.

The pair is this module's own (free ports, its own epmd), so it never collides with the
session's fixed-port nodes or another run; every process is stopped by PID at the end.

What it shows:
1. RabbitMQ 3.x cannot check a wildcard certificate's name from a shovel URI (Erlang's default
   host-name check refuses `*.` names; `customize_hostname_check=https` is read from URIs only
   by newer RabbitMQ): the shovels never run, nothing moves, verify_moved says why. Fails
   closed.
2. With the documented on-prem workaround (the `amqp_client` `ssl_options` with the HTTPS
   match function), everything moves over verified TLS, in order; 0 left on-prem;
   verify_moved counts it; a second start changes nothing; removal removes ours only.
3. The host-name and chain checks are real: a name the certificate does not hold, or a CA
   that did not sign it, and the shovel never runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from mq_cutover import shovels
from mq_cutover.broker_api import Endpoint
from tests.e2e.brokers import free_port
from tests.e2e.rabbit_nodes import (
    AMAZON_MQ_DOMAIN,
    RabbitNode,
    RabbitTls,
    free_node_ports,
    make_rabbit_tls,
    running_rabbit_nodes,
)

pytestmark = pytest.mark.e2e

BROKER_HOST = f"b-5e1f0c2a-3d4b-4c6e-9a8f-0123456789ab.{AMAZON_MQ_DOMAIN}"  # simulated DNS
OTHER_HOST = "amazonmq.internal.example"  # resolves too, but is not in the certificate
QUEUES = ["orders", "invoices"]
PER_QUEUE = 300
# The on-prem workaround for RabbitMQ versions that ignore `customize_hostname_check` in a URI
# (the README's): every outgoing Erlang-client TLS connection of the node checks host names
# with the HTTPS rules, which accept wildcard certificates. Runtime only (lost on restart).
WILDCARD_CHECK = (
    "application:set_env(amqp_client, ssl_options, [{customize_hostname_check, "
    "[{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}])."
)
DEFAULT_CHECK = "application:set_env(amqp_client, ssl_options, [])."


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RabbitNode, RabbitNode, RabbitTls]]:
    root = tmp_path_factory.mktemp("shovels")
    tls = make_rabbit_tls(root / "tls")
    hosts = {"onprem": {BROKER_HOST: "127.0.0.1", OTHER_HOST: "127.0.0.1"}}
    with running_rabbit_nodes(
        root / "nodes",
        ["onprem", "amazonmq"],
        ports=[free_node_ports(), free_node_ports()],
        epmd_port=free_port(),
        tls={"amazonmq": tls},
        hosts=hosts,
    ) as (on_prem, amazon):
        yield on_prem, amazon, tls


@pytest.fixture
def nodes(
    pair: tuple[RabbitNode, RabbitNode, RabbitTls],
) -> tuple[RabbitNode, RabbitNode, RabbitTls]:
    for node in pair[:2]:
        node.reset_topology()
        node.declare_queues(QUEUES)
    return pair


def endpoint(node: RabbitNode, side: str) -> Endpoint:
    return Endpoint(node.api_url, *node.credentials, side=side)


def destination(
    amazon: RabbitNode, tls: RabbitTls, host: str = BROKER_HOST, ca: Path | None = None
) -> str:
    """The product's destination URI for the stand-in (port: its TLS listener, not 5671)."""
    return shovels.destination_uri(
        f"amqps://{host}:{amazon.amqps_port}",
        *amazon.credentials,
        ca_cert_file=str(ca or tls.cafile),
    )


def publish(node: RabbitNode, queue: str, count: int) -> None:
    """Persistent messages `<queue>:<n>`, each confirmed by the broker."""
    connection = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for n in range(count):
            channel.basic_publish(
                "", queue, f"{queue}:{n:05}".encode(), pika.BasicProperties(delivery_mode=2)
            )
    finally:
        connection.close()


def drain(node: RabbitNode, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
    bodies: list[str] = []
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body.decode())
    finally:
        connection.close()


def wait_for(check: Any, timeout: float = 30.0, step: float = 0.5) -> Any:
    """Poll `check()` until it is truthy; its last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_the_on_prem_broker_can_run_the_shovels(nodes: Any) -> None:
    assert shovels.shovel_plugin_problem(endpoint(nodes[0], "on-prem")) is None


def test_rabbitmq_3_cannot_check_the_wildcard_name_so_nothing_moves(nodes: Any) -> None:
    on_prem, amazon, tls = nodes
    on_prem.ctl("eval", DEFAULT_CHECK)
    source = endpoint(on_prem, "on-prem")
    publish(on_prem, "orders", 10)
    started = shovels.start_shovels(
        source, migration_id="m1", vhost="/", queues=QUEUES, destination=destination(amazon, tls)
    )
    assert started["count"] == 2
    time.sleep(6)  # several reconnect attempts (reconnect-delay 1 s)
    assert shovels.shovel_states(source, migration_id="m1", vhost="/") == {
        "orders": "starting",
        "invoices": "starting",
    }
    assert on_prem.queue_depths(QUEUES) == {"orders": 10, "invoices": 0}
    assert amazon.queue_depths(QUEUES) == {"orders": 0, "invoices": 0}
    assert "hostname_check_failed" in on_prem.log.read_text(errors="replace")
    result = shovels.verify_moved(
        source, endpoint(amazon, "Amazon MQ"), vhost="/", queues=QUEUES, migration_id="m1"
    )
    assert result["verified"] is False
    assert "orders: shovel starting" in result["problems"]
    assert "orders: 10 messages still on-prem" in result["problems"]
    assert shovels.remove_shovels(source, migration_id="m1", vhost="/")["count"] == 2


def test_everything_moves_in_order_over_verified_tls(nodes: Any) -> None:
    on_prem, amazon, tls = nodes
    on_prem.ctl("eval", WILDCARD_CHECK)
    source, target = endpoint(on_prem, "on-prem"), endpoint(amazon, "Amazon MQ")
    for queue in QUEUES:
        publish(on_prem, queue, PER_QUEUE)
    assert on_prem.wait_depths(dict.fromkeys(QUEUES, PER_QUEUE)) == dict.fromkeys(QUEUES, PER_QUEUE)
    # The baseline comes from statistics, which lag the queues by a few seconds: in a migration
    # the traffic before the shovels start is old news; here it is not, so let them settle.
    assert wait_for(
        lambda: all(on_prem.queue_stats()[q]["published"] == PER_QUEUE for q in QUEUES), 20
    )
    args = {"migration_id": "m2", "vhost": "/", "queues": QUEUES}
    began = time.monotonic()
    started = shovels.start_shovels(source, destination=destination(amazon, tls), **args)
    assert (started["count"], started["changed"]) == (2, 2)
    assert amazon.wait_depths(dict.fromkeys(QUEUES, PER_QUEUE), timeout=30) == dict.fromkeys(
        QUEUES, PER_QUEUE
    ), on_prem.tail()
    moved_in = time.monotonic() - began
    assert on_prem.queue_depths(QUEUES) == dict.fromkeys(QUEUES, 0)
    assert shovels.shovel_states(source, migration_id="m2", vhost="/") == dict.fromkeys(
        QUEUES, "running"
    )
    # The counters lag the queues by the statistics interval: the drain loop calls again.
    result = wait_for(
        lambda: (
            (r := shovels.verify_moved(source, target, baseline=started["baseline"], **args))[
                "verified"
            ]
            and r
        ),
        timeout=20,
    ) or shovels.verify_moved(source, target, baseline=started["baseline"], **args)
    assert result["verified"] is True, result
    assert result["summary"].endswith(f"{2 * PER_QUEUE} moved and counted on Amazon MQ")
    for row in result["queues"]:
        assert row["onPrem"]["messages"] == 0 and row["moved"] == PER_QUEUE
        assert row["amazonMq"]["published"] == PER_QUEUE
    password = amazon.credentials[1]
    assert password not in repr(result) and password not in repr(started)

    again = shovels.start_shovels(source, destination=destination(amazon, tls), **args)
    assert again["changed"] == 0
    time.sleep(2)
    assert amazon.queue_depths(QUEUES) == dict.fromkeys(QUEUES, PER_QUEUE)  # no duplicates
    for queue in QUEUES:
        assert drain(amazon, queue) == [f"{queue}:{n:05}" for n in range(PER_QUEUE)]

    removed = shovels.remove_shovels(source, migration_id="m2", vhost="/")
    assert sorted(removed["removed"]) == [f"mq-cutover.m2.{q}" for q in sorted(QUEUES)]
    assert wait_for(lambda: not shovels.shovel_states(source, migration_id="m2", vhost="/"), 10)
    assert shovels.remove_shovels(source, migration_id="m2", vhost="/")["count"] == 0
    print(f"moved {2 * PER_QUEUE} messages in {moved_in:.1f} s")


@pytest.mark.parametrize("wrong", ["host name", "certificate authority"])
def test_a_wrong_name_or_authority_never_connects(nodes: Any, wrong: str, tmp_path: Path) -> None:
    on_prem, amazon, tls = nodes
    on_prem.ctl("eval", WILDCARD_CHECK)
    source = endpoint(on_prem, "on-prem")
    if wrong == "host name":
        uri = destination(amazon, tls, host=OTHER_HOST)
    else:
        other = make_rabbit_tls(tmp_path / "other-ca")  # a CA that did not sign the certificate
        uri = destination(amazon, tls, ca=other.cafile)
    publish(on_prem, "orders", 5)
    shovels.start_shovels(source, migration_id="m3", vhost="/", queues=["orders"], destination=uri)
    time.sleep(5)
    assert shovels.shovel_states(source, migration_id="m3", vhost="/") == {"orders": "starting"}
    assert amazon.queue_depths(["orders"]) == {"orders": 0}
    assert on_prem.queue_depths(["orders"]) == {"orders": 5}
    shovels.remove_shovels(source, migration_id="m3", vhost="/")

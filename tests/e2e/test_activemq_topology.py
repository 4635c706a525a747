"""ActiveMQ topology copy against real brokers: `read_destinations` reads exactly the on-prem
broker's queues and topics through its Jolokia (no advisory topic, no temporary destination), and
a real ActiveMQ started with the rendered `<destinations>` has exactly those destinations.

The e2e Jolokia asks for no credentials: the Endpoint's are sent and ignored. The Amazon MQ side
of `apply` (configuration revisions, association, reboot) is covered in the unit tests on moto;
here the rendered element meets a real ActiveMQ, which Amazon MQ runs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import stomp

from mq_cutover.activemq_topology import (
    ADVISORY_PREFIX,
    OnPremDestinations,
    configuration_xml,
    read_destinations,
)
from mq_cutover.broker_api import Endpoint
from tests.e2e.brokers import BROKER_MBEAN, Broker, make_broker

pytestmark = pytest.mark.e2e


def jolokia_api(broker: Broker) -> Endpoint:
    return Endpoint(broker.jolokia_url, "admin", "not-checked-by-the-e2e-jolokia")


def make_destinations(broker: Broker, queues: list[str], topics: list[str]) -> None:
    """Create destinations the way an operator would, through the BrokerViewMBean."""
    for operation, names in (("addQueue", queues), ("addTopic", topics)):
        for name in names:
            reply = broker.jolokia(
                {
                    "type": "exec",
                    "mbean": BROKER_MBEAN + broker.name,
                    "operation": operation,
                    "arguments": [name],
                }
            )
            assert reply.get("status") == 200, reply


def test_read_destinations_finds_exactly_the_brokers_queues_and_topics(
    brokers: list[Broker],
) -> None:
    onprem = brokers[0]
    api = jolokia_api(onprem)
    before = read_destinations(api, onprem.name)
    run = uuid.uuid4().hex[:6]
    queues = [f"topo.{run}.orders", f"topo.{run}.billing in", f"topo.{run}.ünïcode"]
    composite = f"topo.{run}.a:b=c,d"  # JMX lets one queue have a name with a comma
    topics = [f"topo.{run}.prices", f"topo.{run}.events.audit"]
    make_destinations(onprem, [*queues, composite], topics)
    # A client: its send creates a queue; its temporary queue and the advisory topics the broker
    # makes for it must not be read.
    client = stomp.Connection([onprem.stomp_address])
    client.connect(wait=True)
    try:
        client.subscribe(f"/temp-queue/topo-{run}", id="1")
        client.send(f"/queue/topo.{run}.sent", "created by a send")
        deadline = time.monotonic() + 10
        after = read_destinations(api, onprem.name)
        while f"topo.{run}.sent" not in after.queues and time.monotonic() < deadline:
            time.sleep(0.2)
            after = read_destinations(api, onprem.name)
        assert read_destinations(api, None) == after  # the one broker of this JVM
    finally:
        client.disconnect()

    sent = f"topo.{run}.sent"
    assert set(after.queues) == set(before.queues) | {*queues, composite, sent}
    assert set(after.topics) == set(before.topics) | set(topics)
    assert not [t for t in after.topics if t.startswith(ADVISORY_PREFIX)]
    assert after.advisory_topics_skipped > before.advisory_topics_skipped  # the client's
    assert not [q for q in after.queues if q.startswith("ID:")]  # no temporary queue
    assert after.queues == tuple(sorted(after.queues))


def test_activemq_creates_the_rendered_destinations_at_start(
    brokers: list[Broker], e2e_root: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    queues = [f"topo.{run}.orders", f"topo.{run}.billing in", f"topo.{run}.ünïcode"]
    refused = [f"topo.{run}.a,b", f"topo.{run}.orders.>"]
    topics = [f"topo.{run}.prices"]
    destinations = OnPremDestinations("onprem", tuple(sorted(queues + refused)), tuple(topics))

    # A fresh broker (ports of its own) whose activemq.xml gets the rendered <destinations>:
    # its <broker> sits in a Spring <beans>, which configuration_xml handles as well.
    rendered_broker = make_broker(e2e_root / "topology", f"rendered{run}")
    conf = rendered_broker.base / "conf" / "activemq.xml"
    rendered = configuration_xml(conf.read_text(), destinations)
    assert len(rendered.refused) == 2
    conf.write_text(rendered.xml)
    try:
        rendered_broker.start()
        found = read_destinations(jolokia_api(rendered_broker), rendered_broker.name)
    finally:
        rendered_broker.stop()
    assert set(found.queues) == set(queues)
    assert set(found.topics) == set(topics)

"""End-to-end with real JMS clients: one JVM per client (`examples/clients/jms/`), ActiveMQ's
own failover: transport, real TLS to the Amazon MQ stand-in (simulated certificate and DNS,
see `tls.py`), the real state machine in moto, and both brokers' metrics bridged every second.

Each scenario prints sent, received, lost, duplicated, out of order (per producer and queue),
the longest gap between deliveries, and what is left on each broker. Nothing seeds or steers
where a consumer connects: with `randomize=false` the URL's member order decides.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.brokers import Broker
from tests.e2e.jms import JmsClients, JmsKit, placements
from tests.e2e.scenario import Outcome, run_cutover

pytestmark = pytest.mark.e2e

PRODUCERS = 2
MESSAGES = 1500  # per producer, over 3 queues
RATE = 100.0  # per producer and second: sending lasts 15 s, past the moment producers move
ENDPOINT = ".mq.us-east-1.amazonaws.com:61617"
# What every client's parameter holds at the end: Amazon MQ's endpoint, in a failover: URL also
# for a single-instance broker, with the plan's target.failoverOptions.
FINAL_URL = re.compile(
    r"failover:\(ssl://[A-Za-z0-9-]+-1\.mq\.us-east-1\.amazonaws\.com:61617\)"
    r"\?maxReconnectDelay=1000"
)


def on_amazonmq(place: str) -> bool:
    """A JMS connection reached the stand-in, over TLS, under the Amazon MQ endpoint's name."""
    return place.startswith("ssl://") and ENDPOINT in place and place.endswith(" amazonmq")


def on_onprem(place: str, onprem: Broker) -> bool:
    return place.startswith(f"tcp://127.0.0.1:{onprem.openwire_port}") and place.endswith(" onprem")


def ends_on_amazonmq(switches: list[tuple[float, str]]) -> bool:
    """The client's newest connection is (still) on the stand-in."""
    return on_amazonmq(placements(switches)[-1][-1])


def run_jms(
    mode: str, brokers: list[Broker], kit: JmsKit, workdir: Path, consumers: int
) -> tuple[Outcome, JmsClients]:
    onprem, amazonmq = brokers
    clients = JmsClients(kit, onprem, workdir)
    outcome = run_cutover(
        mode,
        onprem,
        amazonmq,
        clients,
        producers=PRODUCERS,
        messages=MESSAGES,
        consumers=consumers,
        rate=RATE,
    )
    return outcome, clients


def test_jms_ordered_nothing_lost_order_kept(
    fresh: list[Broker], jms_kit: JmsKit, tmp_path: Path
) -> None:
    outcome, clients = run_jms("ordered", fresh, jms_kit, tmp_path, consumers=1)
    print(f"\njms ordered: {outcome.line()}\n  {outcome.around_gap()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == PRODUCERS * MESSAGES, clients.failures()
    assert outcome.lost == 0, (outcome.lost_examples, clients.failures())
    assert outcome.out_of_order == 0
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    # Every client really moved, over TLS, to the stand-in under Amazon MQ's host name.
    assert all(map(ends_on_amazonmq, outcome.producer_switches)), outcome.producer_switches
    assert all(map(ends_on_amazonmq, outcome.consumer_switches)), outcome.consumer_switches
    final = outcome.parameters_after
    assert all(FINAL_URL.fullmatch(url) for url in final.values()), final
    states = outcome.states
    assert states.index("Check Drain") < states.index("Repoint Consumers")
    # The fence (no consumer, no enqueue left on-prem) comes before the on-prem broker stops.
    assert states.index("Repoint Consumers") < states.index("Check Fence")
    assert states.index("Check Fence") < states.index("Stop On-Prem")


# Three runs each (five before the RabbitMQ scenarios joined the tier, which must stay under
# 15 minutes): placement is by design, so no run may depend on chance.
@pytest.mark.parametrize("run", range(1, 4))
@pytest.mark.parametrize("consumers", [2, 3])
def test_jms_unordered_nothing_lost_no_interruption(
    fresh: list[Broker], jms_kit: JmsKit, tmp_path: Path, consumers: int, run: int
) -> None:
    onprem = fresh[0]
    outcome, clients = run_jms("unordered", fresh, jms_kit, tmp_path, consumers=consumers)
    label = f"jms unordered, {consumers} consumers, run {run}"
    print(f"\n{label}: {outcome.line()}\n  {outcome.around_gap()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == PRODUCERS * MESSAGES, clients.failures()
    assert outcome.lost == 0, (outcome.lost_examples, clients.failures())
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    assert outcome.longest_gap < 1.0
    # Widened, consumer i connects first to the first member of its URL: on-prem when i is
    # even, Amazon MQ when i is odd. Narrowed, every consumer ends on Amazon MQ.
    for index, switches in enumerate(outcome.consumer_switches):
        widened = placements(switches)[1][0]  # connection 1: on-prem URL; 2: widened
        assert on_onprem(widened, onprem) if index % 2 == 0 else on_amazonmq(widened), switches
        assert ends_on_amazonmq(switches), switches
    assert all(map(ends_on_amazonmq, outcome.producer_switches)), outcome.producer_switches
    final = outcome.parameters_after
    assert all(FINAL_URL.fullmatch(url) for url in final.values()), final
    states = outcome.states
    # Placement (a consumer on each broker for every queue) is checked before producers move.
    assert states.index("Widen Consumers") < states.index("Check Placement")
    assert states.index("Check Placement") < states.index("Repoint Producers One By One")
    assert states.index("Check Drain") < states.index("Narrow Consumers")
    assert states.index("Narrow Consumers") < states.index("Check Fence")
    assert states.index("Check Fence") < states.index("Stop On-Prem")


def test_jms_unordered_one_consumer_refused(
    fresh: list[Broker], jms_kit: JmsKit, tmp_path: Path
) -> None:
    """Unordered with one consumer parameter cannot have a consumer on each broker: refused
    before anything changes, and the clients go on, on-prem, losing nothing."""
    onprem = fresh[0]
    outcome, clients = run_jms("unordered", fresh, jms_kit, tmp_path, consumers=1)
    print(f"\njms unordered, 1 consumer (refused): {outcome.line()}")
    status = outcome.status
    assert status["status"] == "FAILED", status
    assert status.get("error") == "PlanInvalid", status
    assert "consumers.parameters" in status.get("cause", ""), status
    assert "Provision Broker" not in outcome.states, outcome.states
    assert outcome.parameters_after == outcome.parameters_before
    assert outcome.sent == PRODUCERS * MESSAGES, clients.failures()
    assert outcome.lost == 0, (outcome.lost_examples, clients.failures())
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    switches = [*outcome.producer_switches, *outcome.consumer_switches]
    places = [place for s in switches for connection in placements(s) for place in connection]
    assert places and all(on_onprem(place, onprem) for place in places), switches

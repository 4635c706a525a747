"""One end-to-end cutover: real brokers, real clients, the real state machine, counted.

- Two ActiveMQ brokers on loopback (`brokers.py`): `onprem`, and `amazonmq`, which stands in
  for Amazon MQ. moto creates the Amazon MQ broker; its endpoint host resolves, for the clients
  only, to the stand-in's STOMP port without TLS (simulated: loopback has no Amazon MQ).
- moto in-process as AWS, in real time (`live_run(real_time=True)`): Wait states, the drain's
  readings and the Lambda handlers run on the wall clock.
- The metrics bridge (`mq_cutover.metrics_bridge`) reads the on-prem broker's Jolokia every
  second and publishes to moto's CloudWatch, where the drain check reads it.
- Producers and consumers (`examples/clients/cutover_client.py`) read their URL from moto's
  Parameter Store and follow the workflow's changes.
- "SSM Run Command stops the on-prem broker" is simulated: when Stop On-Prem runs, the test
  stops the `onprem` process.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mq_cutover.errors import MetricsSourceFailed
from mq_cutover.metrics_bridge import Source, SourceType, sample
from mq_cutover.plan import parse_plan
from mq_cutover_cli.harness import Emulator, boto3_client
from mq_cutover_cli.live import live_run
from mq_cutover_cli.world import World
from tests.e2e.brokers import Broker

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "clients"))
import itertools

from cutover_client import Consumer, Producer

QUEUES = ["e2e.orders", "e2e.payments", "e2e.shipments"]
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mq-cutover/e2e-app"


def plan_for(mode: str, onprem: Broker, producers: int, consumers: int) -> dict[str, Any]:
    return {
        "migrationId": f"e2e-{mode}",
        "mode": mode,
        "target": {
            "create": {
                "brokerName": "e2e-amazonmq",
                "engine": "ACTIVEMQ",
                "engineVersion": "5.18",
                "deploymentMode": "SINGLE_INSTANCE",
                "hostInstanceType": "mq.t3.micro",
                "subnetIds": ["subnet-0a1b2c3d4e5f60718"],
                "securityGroups": ["sg-0a1b2c3d4e5f60718"],
                "users": [{"username": "e2e-app", "passwordSecretArn": SECRET_ARN}],
            },
            "protocol": "stomp",
        },
        "onPrem": {
            "url": onprem.stomp_url,
            "metrics": {"dimensions": {"Broker": "onprem"}, "periodSeconds": 1},
            "queues": QUEUES,
        },
        "producers": {
            "parameters": [f"/mq-cutover/e2e/producer-{i}/broker-url" for i in range(producers)]
        },
        "consumers": {
            "parameters": [f"/mq-cutover/e2e/consumer-{i}/broker-url" for i in range(consumers)]
        },
        "drain": {
            "pollIntervalSeconds": 1,
            "consecutiveEmptyReadings": 3,
            "timeoutMinutes": 10,
            "maxSecondsPerCheck": 60,
        },
        "approvals": {"gates": []},
        "stopOnPrem": {
            "method": "ssm-command",
            "commands": ["systemctl stop activemq"],
            "targetTags": {"mq-cutover:on-prem": ["true"]},
            "pollIntervalSeconds": 1,
            "timeoutMinutes": 5,
        },
    }


@dataclass
class Outcome:
    status: dict[str, Any]
    states: list[str]
    sent: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    longest_gap: float
    producer_switches: list[list[tuple[float, str]]]
    consumer_switches: list[list[tuple[float, str]]]
    bridge_failures: int
    seconds: float
    drains: list[dict[str, Any]]
    lost_examples: list[tuple[str, str, int]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"sent {self.sent}, received {self.received}, lost {self.lost}, duplicated "
            f"{self.duplicated}, out of order {self.out_of_order}, longest gap between "
            f"deliveries {self.longest_gap:.2f} s ({self.seconds:.0f} s run)"
        )


def count(producers: list[Producer], consumers: list[Consumer]) -> dict[str, Any]:
    sent = {(p.name, queue, seq) for p in producers for queue, seq, _ in p.sent}
    deliveries = sorted(
        (r for c in consumers for r in c.received), key=lambda record: float(record["at"])
    )
    seen: set[tuple[str, str, int]] = set()
    newest: dict[tuple[str, str], int] = {}
    out_of_order = 0
    for record in deliveries:
        key = (str(record["producer"]), str(record["queue"]), int(record["seq"]))
        if key in seen:
            continue
        seen.add(key)
        stream = key[:2]
        if key[2] < newest.get(stream, 0):
            out_of_order += 1
        newest[stream] = max(newest.get(stream, 0), key[2])
    times = [float(r["at"]) for r in deliveries]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    lost = sorted(sent - seen)
    return {
        "sent": len(sent),
        "received": len(deliveries),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": len(deliveries) - len(seen),
        "out_of_order": out_of_order,
        "longest_gap": max(gaps, default=0.0),
    }


def run_cutover(
    mode: str,
    onprem: Broker,
    amazonmq: Broker,
    *,
    producers: int = 2,
    messages: int = 5000,
    consumers: int = 1,
    rate: float = 400.0,
    on_drain: Callable[[], None] | None = None,
) -> Outcome:
    """Clients start on the on-prem broker; the workflow moves them while messages flow."""
    document = plan_for(mode, onprem, producers, consumers)
    plan = parse_plan(document)
    world = World(
        parameters={name: onprem.stomp_url for name in plan.all_parameters},
        queues=[],
        broker_creation_polls=0,
    )

    def resolve(host: str, port: int, tls: bool) -> tuple[str, int, bool]:
        if host.endswith(".amazonaws.com"):  # simulated DNS + TLS: the stand-in broker
            return ("127.0.0.1", amazonmq.stomp_port, False)
        return (host, port, tls)

    stop = threading.Event()
    threads: list[threading.Thread] = []
    the_producers: list[Producer] = []
    the_consumers: list[Consumer] = []
    bridge_failures = [0]
    drains: list[dict[str, Any]] = []

    def bridge() -> None:
        cloudwatch = boto3_client("cloudwatch")
        source = Source(SourceType.ACTIVEMQ, onprem.jolokia_url, broker_name=onprem.name)
        while not stop.is_set():
            try:
                sample(
                    source,
                    plan.on_prem.metrics,
                    cloudwatch,
                    datetime.now(UTC),
                    high_resolution=True,
                )
            except MetricsSourceFailed:
                bridge_failures[0] += 1  # the broker is down: the drain sees stale data
            stop.wait(1.0)

    def start_clients(emulator: Emulator) -> None:
        def on_invoke(function: str, _event: dict[str, Any]) -> None:
            if function == "StopOnPremFunction":  # simulated Run Command: stop the process
                onprem.stop()
            if function == "CheckDrainFunction" and on_drain is not None:
                on_drain()

        def after(function: str, _event: dict[str, Any], result: Any) -> None:
            if function == "CheckDrainFunction":
                drains.append(result)

        emulator.hooks.append(on_invoke)
        emulator.after_hooks.append(after)
        for index, name in enumerate(plan.consumers.parameters):
            consumer = Consumer(boto3_client("ssm"), name, f"c{index}", QUEUES, resolve, seed=index)
            the_consumers.append(consumer)
        for index, name in enumerate(plan.producers.parameters):
            producer = Producer(
                boto3_client("ssm"), name, f"p{index}", QUEUES, messages, rate, resolve
            )
            the_producers.append(producer)
        for runner in (bridge, *(c.run for c in the_consumers)):
            threads.append(
                threading.Thread(
                    target=runner, args=() if runner is bridge else (stop,), daemon=True
                )
            )
        producer_threads = [
            threading.Thread(target=p.run, args=(stop,), daemon=True) for p in the_producers
        ]
        for thread in [*threads, *producer_threads]:
            thread.start()
        threads.extend(producer_threads)
        # Let traffic flow on-prem for a moment before the cutover starts.
        deadline = time.monotonic() + 30
        while sum(len(p.sent) for p in the_producers) < producers * messages // 5:
            if time.monotonic() > deadline:
                raise TimeoutError("producers did not get going on the on-prem broker")
            time.sleep(0.05)

    began = time.monotonic()
    try:
        with live_run(document, world, before_start=start_clients, real_time=True) as run:
            try:
                status = run.wait_until_done(timeout=180)
            except TimeoutError:
                status = run.status()  # reported by the test, with the drain's summaries
            states = run.entered()
            # The clients keep going on the emulator until every message is accounted for.
            for thread in threads[-producers:]:
                thread.join(timeout=120)
            expected = sum(len(p.sent) for p in the_producers)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                unique = {
                    (r["producer"], r["queue"], r["seq"])
                    for c in the_consumers
                    for r in list(c.received)
                }
                if len(unique) >= expected:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # late redeliveries are duplicates: let them show
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    figures = count(the_producers, the_consumers)
    return Outcome(
        status=status,
        states=states,
        sent=figures["sent"],
        received=figures["received"],
        lost=figures["lost"],
        lost_examples=figures["lost_examples"],
        duplicated=figures["duplicated"],
        out_of_order=figures["out_of_order"],
        longest_gap=figures["longest_gap"],
        producer_switches=[p.switches for p in the_producers],
        consumer_switches=[c.switches for c in the_consumers],
        bridge_failures=bridge_failures[0],
        seconds=time.monotonic() - began,
        drains=drains,
    )

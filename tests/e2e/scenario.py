"""One end-to-end cutover: real brokers, real clients, the real state machine, counted.

- Two ActiveMQ brokers on loopback (`brokers.py`): `onprem`, and `amazonmq`, which stands in
  for Amazon MQ. moto creates the Amazon MQ broker; the clients reach the stand-in under the
  endpoint's host name:
  - STOMP clients (`StompClients`): the host resolves, for them only, to the stand-in's STOMP
    port without TLS (simulated DNS and TLS);
  - JMS clients (`jms.JmsClients`): the JVMs resolve it through a hosts file to the stand-in's
    real TLS connector `ssl://127.0.0.1:61617`, with a simulated certificate (`tls.py`).
- moto in-process as AWS, in real time (`live_run(real_time=True)`): Wait states, the drain's
  readings and the Lambda handlers run on the wall clock. The harness world's own simulated
  on-prem queues are switched off: every metric the workflow reads comes from a real broker.
- Two metrics bridges (`mq_cutover.metrics_bridge`) sample every second and publish to moto's
  CloudWatch: the on-prem broker's Jolokia into the plan's on-prem namespace, and the
  stand-in's Jolokia into `AWS/AmazonMQ` with `Broker=<brokerName>-1` (simulated: on AWS,
  Amazon MQ publishes these per-queue metrics itself, every minute).
- Producers and consumers follow their SSM parameter: the STOMP clients
  (`examples/clients/cutover_client.py`, threads) read it themselves; the JMS clients
  (`examples/clients/jms/CutoverClient.java`, one JVM each) read a file that a simulated config
  agent keeps equal to it (`jms.ParameterMirror`). Nothing seeds or steers a client's choice
  among the members of a failover: URL.
- "SSM Run Command stops the on-prem broker" is simulated: when Stop On-Prem runs, the test
  stops the `onprem` process.
- Rollbacks (`test_jms_rollback.py`) are started the way they start on AWS: a **simulated**
  permanent fault (`CheckDrainFault`: an emulator hook raises `SimulatedPermanentFault` in
  place of one call of the forward Check Drain's Lambda, as an access-denied would), or a
  person rejecting gate `stopOnPrem` by opening the emailed link and pressing Reject
  (`BackgroundApprover`: the simulator's `Approver`, which calls the real approval API; the
  test writes nothing to DynamoDB or Step Functions itself).

The engine is an `EngineKit` (`ActiveMqKit` by default): the plan's broker, where the bridges
read, how the messages left are counted, what the account holds before the run. RabbitMQ's
(`rabbit_scenario.RabbitKit`, with the pika clients `rabbit_scenario.PikaClients`) adds the
plan's `topology`, the simulated Amazon MQ DNS/TLS for the workflow's HTTP calls, and reads
the nodes' management APIs.

Counted the same way for every kind of client (`count`): sent, received, lost, duplicated,
out of order per producer and queue, longest gap between deliveries, and the messages left on
each broker at the end (ActiveMQ: `QueueSize` of the watched queues, read through Jolokia;
RabbitMQ: exact, from AMQP; the on-prem broker is started again to read it if Stop On-Prem
stopped it).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from mq_cutover.metrics_bridge import (
    DEFAULT_DETAIL_SECONDS,
    Publishing,
    Source,
    SourceType,
    default_ignore_queues,
    detail_due,
    metric_data,
    put,
    read_activemq,
    read_rabbitmq,
    sample,
)
from mq_cutover.plan import QueueMetrics
from mq_cutover.queue_set import QueueSet
from mq_cutover_cli.faults import SimulatedPermanentFault
from mq_cutover_cli.harness import Emulator, boto3_client
from mq_cutover_cli.live import live_run
from mq_cutover_cli.simulate import Approver
from mq_cutover_cli.world import World
from tests.e2e.brokers import Broker

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "clients"))
from cutover_client import Consumer, Producer

QUEUES = ["e2e.orders", "e2e.payments", "e2e.shipments"]
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mq-cutover/e2e-app"
BROKER_NAME = "e2e-amazonmq"
# Amazon MQ's own per-queue metrics (simulated by a second bridge on the stand-in's Jolokia).
AMAZON_MQ_METRICS = QueueMetrics(
    namespace="AWS/AmazonMQ", dimensions={"Broker": f"{BROKER_NAME}-1"}, period_seconds=1
)
BRIDGE_SECONDS = 1.0  # how often each metrics bridge samples its broker
# The plan's `target.metrics` (where the workflow reads Amazon MQ's per-queue metrics; the
# workflow adds the `Broker` dimension). The product accepts it since class AmazonMqMetrics.
TARGET_METRICS = True


# What the plan's target.create says per engine (version, instance type, how the on-prem
# broker is stopped on its host).
ENGINES: dict[str, dict[str, str]] = {
    "ACTIVEMQ": {"engineVersion": "5.18", "hostInstanceType": "mq.t3.micro", "service": "activemq"},
    "RABBITMQ": {
        "engineVersion": "3.13",
        "hostInstanceType": "mq.m5.large",
        "service": "rabbitmq-server",
    },
}


def plan_for(
    mode: str,
    on_prem_url: str,
    protocol: str,
    producers: int,
    consumers: int,
    failover_options: dict[str, Any] | None = None,
    gates: Sequence[str] = (),
    drain: dict[str, Any] | None = None,
    engine: str = "ACTIVEMQ",
    user: tuple[str, str] = ("e2e-app", SECRET_ARN),  # (username, password secret ARN)
) -> dict[str, Any]:
    spec = ENGINES[engine]
    target: dict[str, Any] = {
        "create": {
            "brokerName": BROKER_NAME,
            "engine": engine,
            "engineVersion": spec["engineVersion"],
            "deploymentMode": "SINGLE_INSTANCE",
            "hostInstanceType": spec["hostInstanceType"],
            "subnetIds": ["subnet-0a1b2c3d4e5f60718"],
            "securityGroups": ["sg-0a1b2c3d4e5f60718"],
            "users": [{"username": user[0], "passwordSecretArn": user[1]}],
        },
        "protocol": protocol,
    }
    if TARGET_METRICS:
        target["metrics"] = {"periodSeconds": AMAZON_MQ_METRICS.period_seconds}
    if failover_options:
        target["failoverOptions"] = failover_options
    return {
        "migrationId": f"e2e-{mode}",
        "mode": mode,
        "target": target,
        "onPrem": {
            "url": on_prem_url,
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
            **(drain or {}),
        },
        "approvals": {"gates": list(gates)},
        "stopOnPrem": {
            "method": "ssm-command",
            "commands": [f"systemctl stop {spec['service']}"],
            "targetTags": {"mq-cutover:on-prem": ["true"]},
            "pollIntervalSeconds": 1,
            "timeoutMinutes": 5,
        },
    }


# --- the clients: STOMP threads or JMS JVMs, counted alike ------------------------------------


class SentLog(Protocol):
    name: str
    sent: list[tuple[str, int, float]]  # (queue, seq, at)
    switches: list[tuple[float, str]]  # (at, where it connected)


class ReceivedLog(Protocol):
    received: list[dict[str, Any]]  # {"producer", "queue", "seq", "at", ...}
    switches: list[tuple[float, str]]


class Clients(Protocol):
    """A scenario's producers and consumers, whatever they are made of."""

    protocol: str  # the plan's target.protocol: whose endpoint the workflow hands out
    on_prem_url: str  # every client parameter's value before the cutover
    failover_options: dict[str, Any]  # the plan's target.failoverOptions (OpenWire only)

    @property
    def producers(self) -> Sequence[SentLog]: ...

    @property
    def consumers(self) -> Sequence[ReceivedLog]: ...

    def start(
        self,
        emulator: Emulator,
        parameters: tuple[list[str], list[str]],  # (producers', consumers')
        queues: list[str],
        messages: int,
        rate: float,
    ) -> None: ...

    def wait_producers(self, timeout: float) -> None: ...

    def stop(self) -> None: ...


class ThreadedClients:
    """Reference clients in this process, one thread each (`run(stop)`): started together,
    producers waited for, every thread stopped at the end."""

    producers: Sequence[Any]
    consumers: Sequence[Any]

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer_threads: list[threading.Thread] = []

    def _run_threads(self) -> None:
        self._threads = [
            threading.Thread(target=c.run, args=(self._stop,), daemon=True) for c in self.consumers
        ]
        self._producer_threads = [
            threading.Thread(target=p.run, args=(self._stop,), daemon=True) for p in self.producers
        ]
        for thread in [*self._threads, *self._producer_threads]:
            thread.start()

    def wait_producers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._producer_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for thread in [*self._threads, *self._producer_threads]:
            thread.join(timeout=30)


class StompClients(ThreadedClients):
    """The Python STOMP reference clients, one thread each, reading moto's Parameter Store.
    The Amazon MQ host resolves to the stand-in's plain STOMP port (simulated DNS and TLS)."""

    protocol = "stomp"
    failover_options: ClassVar[dict[str, Any]] = {}  # STOMP has no failover transport

    def __init__(self, onprem: Broker, amazonmq: Broker) -> None:
        super().__init__()
        self.on_prem_url = onprem.stomp_url
        self.amazonmq = amazonmq
        self.producers: list[Producer] = []
        self.consumers: list[Consumer] = []

    def resolve(self, host: str, port: int, tls: bool) -> tuple[str, int, bool]:
        if host.endswith(".amazonaws.com"):  # simulated DNS + TLS: the stand-in broker
            return ("127.0.0.1", self.amazonmq.stomp_port, False)
        return (host, port, tls)

    def start(
        self,
        emulator: Emulator,
        parameters: tuple[list[str], list[str]],
        queues: list[str],
        messages: int,
        rate: float,
    ) -> None:
        producers, consumers = parameters
        for index, name in enumerate(consumers):
            self.consumers.append(
                Consumer(boto3_client("ssm"), name, f"c{index}", queues, self.resolve)
            )
        for index, name in enumerate(producers):
            self.producers.append(
                Producer(
                    boto3_client("ssm"), name, f"p{index}", queues, messages, rate, self.resolve
                )
            )
        self._run_threads()


# --- what starts a rollback: a simulated fault, or a person who rejects ----------------------


class CheckDrainFault:
    """**Simulated** permanent fault in the forward drain's Lambda (state Check Drain; not Check
    Placement, Check Fence or Check Rollback Drain, which call the same function with a
    `purpose`): the harness raises `SimulatedPermanentFault` in place of the handler, as an
    access-denied on GetMetricData would, once. The state machine does not retry it: its Catch
    starts the rollback. Installed as an emulator hook (run before the handler).

    It fires at the `nth` call, or (`after_quiet`) at the first call after a reading that found
    the producers quiet on-prem (the enqueue counters stood still: they have left the old
    broker) while the drain had not passed yet: the drain is under way, producers on Amazon MQ.
    """

    FUNCTION = "CheckDrainFunction"

    def __init__(self, nth: int | None = None, *, after_quiet: bool = False) -> None:
        assert (nth is None) == after_quiet, "either the nth call or after_quiet"
        self.nth = nth
        self.after_quiet = after_quiet
        self.calls = 0
        self.fired_at_call: int | None = None
        self.fired_at: float | None = None  # epoch seconds

    @property
    def message(self) -> str:
        return f"simulated permanent fault in Check Drain, call {self.fired_at_call} (AccessDenied)"

    def _due(self, previous: Any) -> bool:
        if self.nth is not None:
            return self.calls == self.nth
        return (
            isinstance(previous, dict)
            and bool(previous.get("producersQuiet"))
            and not previous.get("drained")
        )

    def __call__(self, function: str, event: dict[str, Any]) -> None:
        if function != self.FUNCTION or not isinstance(event, dict) or event.get("purpose"):
            return
        if self.fired_at is not None:
            return
        self.calls += 1
        if self._due(event.get("previous")):
            self.fired_at, self.fired_at_call = time.time(), self.calls
            raise SimulatedPermanentFault(self.message)


class BackgroundApprover:
    """The simulator's `Approver` (reads each approval email, opens the link, presses a button:
    the real approval API decides), serviced every 0.2 s on a thread while the run goes on.
    `policy` as `Approver`'s, e.g. "reject:stopOnPrem"."""

    def __init__(self, emulator: Emulator, policy: str) -> None:
        self.approver = Approver(emulator, policy)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.approver.service()
            except Exception as exc:  # reported by the scenario, never swallowed silently
                self.errors.append(repr(exc))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=10)

    @property
    def decided(self) -> list[dict[str, Any]]:
        return list(self.approver.decided)


def task_results(history: list[dict[str, Any]], state: str) -> list[Any]:
    """What a state returned, in order (a Lambda task's Payload), each with `exitedAt` (epoch
    seconds of its StateExited event) added."""
    results = []
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details["name"] == state:
            output = json.loads(details.get("output") or "null")
            if isinstance(output, dict) and "Payload" in output:
                output = output["Payload"]
            # A failed call's caught error output ({"Error", "Cause"}) is not a result.
            if isinstance(output, dict) and "Error" not in output:
                results.append({**output, "exitedAt": event["timestamp"].timestamp()})
    return results


# --- counting ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: dict[str, Any]
    states: list[str]
    entered_at: list[tuple[float, str]]  # (epoch seconds, state name)
    sent: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    longest_gap: float
    longest_gap_began: float
    left_onprem: int
    left_amazonmq: int
    producer_switches: list[list[tuple[float, str]]]
    consumer_switches: list[list[tuple[float, str]]]
    bridge_failures: int
    seconds: float
    drains: list[dict[str, Any]]
    parameters_before: dict[str, str] = field(default_factory=dict)
    parameters_after: dict[str, str] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)
    lost_examples: list[tuple[str, str, int]] = field(default_factory=list)
    out_of_order_examples: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # the execution's events
    notifications: list[dict[str, str]] = field(default_factory=list)  # NotificationTopic
    approval_emails: list[dict[str, str]] = field(default_factory=list)  # ApprovalTopic
    decided: list[dict[str, Any]] = field(default_factory=list)  # the approver's decisions
    approver_errors: list[str] = field(default_factory=list)
    # Every message sent, per producer, with the epoch seconds its send was confirmed.
    sent_at: list[list[tuple[str, int, float]]] = field(default_factory=list)

    def results(self, state: str) -> list[Any]:
        """What a state returned, in order (`task_results`)."""
        return task_results(self.history, state)

    def around_gap(self) -> str:
        """What happened around the longest gap: the state the workflow was in, and every
        client connection made from 1 s before it to its end (times relative to its start)."""
        began, ended = self.longest_gap_began, self.longest_gap_began + self.longest_gap
        state = next((name for at, name in reversed(self.entered_at) if at <= began), "-")
        moves = [
            f"{kind}{index} {at - began:+.2f}s {where}"
            for kind, groups in (("p", self.producer_switches), ("c", self.consumer_switches))
            for index, switches in enumerate(groups)
            for at, where in switches
            if began - 1 <= at <= ended
        ]
        return f"longest gap during {state!r}; connections around it: {moves}"

    def line(self) -> str:
        return (
            f"sent {self.sent}, received {self.received}, lost {self.lost}, duplicated "
            f"{self.duplicated}, out of order {self.out_of_order}, longest gap between "
            f"deliveries {self.longest_gap:.2f} s, left on onprem {self.left_onprem}, left on "
            f"amazonmq {self.left_amazonmq} ({self.seconds:.0f} s run)"
        )


def count(producers: Sequence[SentLog], consumers: Sequence[ReceivedLog]) -> dict[str, Any]:
    sent = {(p.name, queue, seq) for p in producers for queue, seq, _ in p.sent}
    deliveries = sorted(
        (r for c in consumers for r in c.received), key=lambda record: float(record["at"])
    )
    seen: set[tuple[str, str, int]] = set()
    newest: dict[tuple[str, str], int] = {}
    out_of_order = 0
    disorder: list[str] = []  # the first few out of order, for the report
    for record in deliveries:
        key = (str(record["producer"]), str(record["queue"]), int(record["seq"]))
        if key in seen:
            continue
        seen.add(key)
        stream = key[:2]
        if key[2] < newest.get(stream, 0):
            out_of_order += 1
            if len(disorder) < 5:
                disorder.append(
                    f"{key[0]} {key[1]} #{key[2]} at {float(record['at']):.3f} after "
                    f"#{newest[stream]}"
                )
        newest[stream] = max(newest.get(stream, 0), key[2])
    times = [float(r["at"]) for r in deliveries]
    gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(times)]
    longest_gap, gap_began = max(gaps, default=(0.0, 0.0))
    lost = sorted(sent - seen)
    return {
        "sent": len(sent),
        "received": len(deliveries),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": len(deliveries) - len(seen),
        "out_of_order": out_of_order,
        "out_of_order_examples": disorder,
        "longest_gap": longest_gap,
        "longest_gap_began": gap_began,  # epoch seconds of the delivery before it
    }


def left_on(broker: Broker, queues: list[str]) -> int:
    """Messages still on the broker's watched queues (QueueSize, from Jolokia)."""
    stats = broker.queue_stats()
    return sum(stats.get(queue, {}).get("QueueSize", 0) for queue in queues)


# --- what differs between the engines -----------------------------------------------------


class ScenarioBroker(Protocol):
    """A broker process of the scenario (`brokers.Broker`, `rabbit_nodes.RabbitNode`)."""

    name: str
    process: subprocess.Popen[bytes] | None

    def start(self, timeout: float = 60) -> None: ...

    def stop(self, timeout: float = 30) -> None: ...

    def purge(self, queues: list[str]) -> dict[str, int]: ...


class EngineKit(Protocol):
    """What an engine changes in a scenario: the plan's broker and topology, where the metrics
    bridges read, how the messages left are counted, and what the account holds before the
    execution starts."""

    engine: str  # the plan's target.create.engine
    user: tuple[str, str]  # the created broker's user: (username, password secret ARN)
    amazon_mq_bridge: bool  # Amazon MQ's per-queue metrics simulated by a bridge on the stand-in

    def amend(self, document: dict[str, Any]) -> None:
        """Add what the engine's plan needs (e.g. `topology`)."""

    def source(self, broker: Any) -> Source:
        """Where the metrics bridge reads this broker."""

    def left_on(self, broker: Any, queues: list[str]) -> int:
        """Messages still on the broker's watched queues."""

    def world(self) -> dict[str, Any]:
        """Keyword arguments of the harness `World`."""

    def install(self, emulator: Emulator) -> None:
        """Before the execution starts (inside moto); undone by `emulator.cleanups`."""

    def settle(self, onprem: Any, queues: list[str]) -> None:
        """Once traffic flows on-prem, before the execution starts: wait until the on-prem
        broker's own statistics show it (as on a broker that has run for a while)."""


class ActiveMqKit:
    """ActiveMQ brokers (`brokers.Broker`): Jolokia for the bridges and the figures."""

    engine = "ACTIVEMQ"
    user = ("e2e-app", SECRET_ARN)
    amazon_mq_bridge = True

    def amend(self, document: dict[str, Any]) -> None:
        return None

    def source(self, broker: Broker) -> Source:
        return Source(SourceType.ACTIVEMQ, broker.jolokia_url, broker_name=broker.name)

    def left_on(self, broker: Broker, queues: list[str]) -> int:
        return left_on(broker, queues)

    def world(self) -> dict[str, Any]:
        return {}

    def install(self, emulator: Emulator) -> None:
        return None

    def settle(self, onprem: Broker, queues: list[str]) -> None:
        return None  # Jolokia answers with the broker's live figures


class Bridge:
    """One metrics bridge loop: a broker's HTTP API (ActiveMQ's Jolokia, RabbitMQ's management
    API), sampled every second into moto CloudWatch. With `publishing` it is the product's
    on-prem bridge (the plan's QueueSet's aggregates every sample, per-queue detail first and
    then every detail period); without, Amazon MQ's own per-queue metrics, simulated (every
    queue's figures every sample)."""

    def __init__(
        self,
        source: Source,
        metrics: QueueMetrics,
        stop: threading.Event,
        publishing: Publishing | None = None,
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.stop = stop
        self.publishing = publishing
        self.failures = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        cloudwatch = boto3_client("cloudwatch")
        last_detail: datetime | None = None
        while not self.stop.is_set():
            at = datetime.now(UTC)
            try:
                if self.publishing is None:
                    read = (
                        read_activemq if self.source.type == SourceType.ACTIVEMQ else read_rabbitmq
                    )
                    stats = read(self.source)
                    data = metric_data(stats, self.metrics, at, high_resolution=True)
                    put(cloudwatch, self.metrics.namespace, data)
                else:
                    detail = detail_due(self.publishing, last_detail, at, BRIDGE_SECONDS)
                    sample(
                        self.source,
                        self.metrics,
                        cloudwatch,
                        at,
                        high_resolution=True,
                        publishing=self.publishing,
                        detail=detail,
                    )
                    last_detail = at if detail else last_detail
            except Exception:  # MetricsSourceFailed: the broker is down. Stale data follows.
                self.failures += 1
            self.stop.wait(BRIDGE_SECONDS)


def plan_publishing(document: dict[str, Any]) -> Publishing:
    """The on-prem bridge set up for this plan (its queues, ignore patterns, detail period);
    read from the document, which may be one the workflow must refuse."""
    on_prem = document["onPrem"]
    return Publishing(
        QueueSet.of(
            on_prem.get("queues", []), on_prem.get("ignoreQueues", default_ignore_queues())
        ),
        float((on_prem.get("metrics") or {}).get("detailPeriodSeconds", DEFAULT_DETAIL_SECONDS)),
    )


def run_cutover(
    mode: str,
    onprem: ScenarioBroker,
    amazonmq: ScenarioBroker,
    clients: Clients,
    *,
    producers: int = 2,
    messages: int = 5000,
    consumers: int = 1,
    rate: float = 400.0,
    on_drain: Callable[[], None] | None = None,
    timeout: float = 180.0,
    gates: Sequence[str] = (),
    drain: dict[str, Any] | None = None,
    fault: CheckDrainFault | None = None,
    approve: str | None = None,
    kit: EngineKit | None = None,
    head_start: float = 0.2,
) -> Outcome:
    """Clients start on the on-prem broker; the workflow moves them while messages flow.

    `gates` and `drain` go into the plan (`approvals.gates`, `drain.*`); `fault` is installed
    before the execution starts; `approve` runs a `BackgroundApprover` with that policy; `kit`
    is the engine (default ActiveMQ); `head_start`: the share of the messages sent on-prem
    before the execution starts."""
    kit = kit or ActiveMqKit()
    document = plan_for(
        mode,
        clients.on_prem_url,
        clients.protocol,
        producers,
        consumers,
        clients.failover_options,
        gates=gates,
        drain=drain,
        engine=kit.engine,
        user=kit.user,
    )
    kit.amend(document)
    # The plan may be one the workflow must refuse: nothing here needs it parsed.
    producer_parameters = list(document["producers"]["parameters"])
    consumer_parameters = list(document["consumers"]["parameters"])
    on_prem_metrics = QueueMetrics.model_validate(document["onPrem"]["metrics"])
    world = World(
        parameters={
            name: clients.on_prem_url for name in [*producer_parameters, *consumer_parameters]
        },
        queues=[],
        broker_creation_polls=0,
        **kit.world(),
    )
    purged = {
        f"{broker.name}:{queue}": size
        for broker in (onprem, amazonmq)
        for queue, size in broker.purge(QUEUES).items()
        if size
    }
    stop = threading.Event()
    bridges = [Bridge(kit.source(onprem), on_prem_metrics, stop, plan_publishing(document))]
    if kit.amazon_mq_bridge:
        bridges.append(Bridge(kit.source(amazonmq), AMAZON_MQ_METRICS, stop))
    drains: list[dict[str, Any]] = []
    approvers: list[BackgroundApprover] = []

    def shutdown() -> None:
        """Clients, bridges and the approver stop while moto still runs: after it, their boto3
        calls would go to the real AWS endpoints. Idempotent."""
        for approver in approvers:
            approver.stop()
        clients.stop()
        stop.set()
        for bridge in bridges:
            if bridge.thread.ident is not None:  # started (the run may have failed before)
                bridge.thread.join(timeout=30)

    def start_clients(emulator: Emulator) -> None:
        try:
            start_traffic(emulator)
        except BaseException:
            shutdown()
            raise

    def start_traffic(emulator: Emulator) -> None:
        # The world's simulated on-prem queues would publish made-up depths next to the real
        # bridge's: off. Every metric the workflow reads comes from a real broker.
        world.queues.clear()

        def on_invoke(function: str, _event: dict[str, Any]) -> None:
            if function == "StopOnPremFunction":  # simulated Run Command: stop the process
                onprem.stop()
            if function == "CheckDrainFunction" and on_drain is not None:
                on_drain()

        def after(function: str, _event: dict[str, Any], result: Any) -> None:
            if function == "CheckDrainFunction":
                drains.append(result)

        kit.install(emulator)
        emulator.hooks.append(on_invoke)
        emulator.after_hooks.append(after)
        if fault is not None:
            emulator.hooks.append(fault)
        for bridge in bridges:
            bridge.thread.start()
        clients.start(emulator, (producer_parameters, consumer_parameters), QUEUES, messages, rate)
        # Let traffic flow on-prem for a moment before the cutover starts.
        deadline = time.monotonic() + 60
        while sum(len(p.sent) for p in clients.producers) < int(producers * messages * head_start):
            if time.monotonic() > deadline:
                raise TimeoutError("producers did not get going on the on-prem broker")
            time.sleep(0.05)
        kit.settle(onprem, QUEUES)

    began = time.monotonic()
    status: dict[str, Any] = {}
    states: list[str] = []
    entered_at: list[tuple[float, str]] = []
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    history: list[dict[str, Any]] = []
    notifications: list[dict[str, str]] = []
    approval_emails: list[dict[str, str]] = []
    try:
        with live_run(
            document,
            world,
            before_start=start_clients,
            real_time=True,
            # These scenarios measure messages, not people: the simulated stack requires the
            # gates the scenario keeps (the deployed default requires cutover and stopOnPrem).
            stack_parameters={"RequiredGates": ",".join(gates)},
        ) as run:
            try:
                if approve is not None:
                    approvers.append(BackgroundApprover(run.emulator, approve))
                    approvers[0].start()
                try:
                    status = run.wait_until_done(timeout=timeout)
                except TimeoutError:
                    status = run.status()  # reported by the test, with the drain's summaries
                states = run.entered()
                history = run.emulator.history(run.arn)
                notifications = run.emulator.inbox("NotificationTopic")
                approval_emails = run.emulator.inbox("ApprovalTopic")
                entered_at = [
                    (event["timestamp"].timestamp(), event["stateEnteredEventDetails"]["name"])
                    for event in history
                    if "stateEnteredEventDetails" in event
                ]
                before, after = run.initial, run.parameter_values()
                # The clients keep going on the emulator until every message is accounted for.
                clients.wait_producers(timeout=120)
                expected = sum(len(p.sent) for p in clients.producers)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    unique = {
                        (r["producer"], r["queue"], r["seq"])
                        for c in clients.consumers
                        for r in list(c.received)
                    }
                    if len(unique) >= expected:
                        break
                    time.sleep(0.2)
                time.sleep(1.0)  # late redeliveries are duplicates: let them show
            finally:
                shutdown()
    finally:
        shutdown()
    seconds = time.monotonic() - began
    if onprem.process is None or onprem.process.poll() is not None:
        onprem.start()  # stopped by Stop On-Prem: what is left is on its disk
    figures = count(clients.producers, clients.consumers)
    return Outcome(
        status=status,
        states=states,
        entered_at=entered_at,
        sent=figures["sent"],
        received=figures["received"],
        lost=figures["lost"],
        lost_examples=figures["lost_examples"],
        out_of_order_examples=figures["out_of_order_examples"],
        duplicated=figures["duplicated"],
        out_of_order=figures["out_of_order"],
        longest_gap=figures["longest_gap"],
        longest_gap_began=figures["longest_gap_began"],
        left_onprem=kit.left_on(onprem, QUEUES),
        left_amazonmq=kit.left_on(amazonmq, QUEUES),
        producer_switches=[list(p.switches) for p in clients.producers],
        consumer_switches=[list(c.switches) for c in clients.consumers],
        bridge_failures=bridges[0].failures,
        seconds=seconds,
        drains=drains,
        parameters_before=before,
        parameters_after=after,
        purged=purged,
        history=history,
        notifications=notifications,
        approval_emails=approval_emails,
        decided=[d for a in approvers for d in a.decided],
        approver_errors=[e for a in approvers for e in a.errors],
        sent_at=[list(p.sent) for p in clients.producers],
    )

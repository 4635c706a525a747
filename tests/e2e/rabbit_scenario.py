"""A RabbitMQ cutover end to end: what `scenario.run_cutover` needs for two real RabbitMQ nodes.

- Two Debian `rabbitmq-server` nodes on loopback (`rabbit_nodes.py`): `onprem`, and
  `amazonmq`, which stands in for an Amazon MQ for RabbitMQ broker. moto creates the Amazon MQ
  broker (engine RABBITMQ); its AMQP endpoint is `amqps://<broker id>-1.mq.us-east-1.
  amazonaws.com:5671` and its management API is at its console URL,
  `https://0000.mq.us-east-1.amazonaws.com`.
- **Simulated DNS and TLS for the clients** (`PikaClients.resolve`): the Amazon MQ host name
  (`*.amazonaws.com`, amqps 5671) resolves, for the reference clients only, to the stand-in's
  plain AMQP port. Everything else about the client is what a user's application does
  (`examples/clients/rabbit_client.py`: pika, the URL from its SSM parameter, publisher
  confirms, persistent messages, manual acknowledgements, nothing declared).
- **Simulated Amazon MQ DNS/TLS for the workflow's HTTP calls** (`SimulatedAmazonMqDnsTls`): a
  urllib handler, installed as the process's opener for the run's duration (removed when the
  emulator stops), sends each https request for a host ending in `.amazonaws.com` to the
  stand-in's management API over plain HTTP (`http://127.0.0.1:<management port>`); every
  other request goes out unchanged. Copy Topology, and Check Drain when `target.metrics.source`
  is `managementApi`, call the product's `broker_api`/`metrics_bridge`, which use
  `urllib.request.urlopen`, so they reach the stand-in under the console URL.
- The application's topology (`declare_application_topology`) is on the on-prem node only: a
  durable direct exchange `e2e.app`, the durable queues, one binding per queue (routing key =
  the queue's name). The producers publish to `e2e.app` with `mandatory=True`. The stand-in
  starts empty: the workflow's Copy Topology is what makes the cutover possible.
- Secrets in moto (`RabbitKit.world`): the created broker's user is the stand-in's
  administrative user (the workflow logs into Amazon MQ's management API as it) and the
  on-prem management API's user, both under the stack's `BrokerUserSecretsPrefix`. The
  harness world's simulated broker APIs are off: the workflow reaches the real nodes.
- Metrics: a bridge on the on-prem node's management API into the plan's on-prem namespace, and
  (`target.metrics.source` cloudwatch) a bridge on the stand-in's into `AWS/AmazonMQ`
  (simulated: on AWS, Amazon MQ publishes per-queue metrics itself), or (`managementApi`)
  nothing: Check Drain reads the stand-in's management API through the console URL.
- Messages left on a broker: exact, from AMQP (a passive `queue.declare` per queue, after every
  client has disconnected, so nothing is unacknowledged).
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar

import pika
import pika.exceptions

from mq_cutover.metrics_bridge import Source, SourceType
from mq_cutover_cli.harness import Emulator, boto3_client
from mq_cutover_cli.simulated_brokers import install_handler
from tests.e2e.rabbit_nodes import HOST, RabbitNode
from tests.e2e.scenario import BRIDGE_SECONDS, ThreadedClients

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "clients"))
from rabbit_client import Consumer, Producer

# The reference clients retry a refused connection (the on-prem node restarting, stopped by
# Stop On-Prem) and record each connection they make; pika itself logs every refused attempt as
# an ERROR with a traceback, which would bury a scenario's printed figures.
logging.getLogger("pika").setLevel(logging.CRITICAL)

AMAZON_MQ_DOMAIN = ".amazonaws.com"
EXCHANGE = "e2e.app"  # the application's direct exchange (routing key = queue name)
# Under the stack's BrokerUserSecretsPrefix (mq-cutover/), as every e2e plan's secret.
ACCOUNT_SECRETS = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
AMAZON_MQ_USER_SECRET_ARN = f"{ACCOUNT_SECRETS}mq-cutover/e2e-rabbit-admin"
ON_PREM_API_SECRET_ARN = f"{ACCOUNT_SECRETS}mq-cutover/e2e-rabbit-onprem-api"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# --- the application's topology ---------------------------------------------------------------


def declare_application_topology(node: RabbitNode, queues: Sequence[str]) -> None:
    """What the application's operators set up on the on-prem broker, through its management
    API: the exchange the producers publish to, the durable queues, and their bindings."""
    node.api("PUT", f"/api/exchanges/%2F/{_quote(EXCHANGE)}", {"type": "direct", "durable": True})
    node.declare_queues(queues)
    for queue in queues:
        node.api(
            "POST",
            f"/api/bindings/%2F/e/{_quote(EXCHANGE)}/q/{_quote(queue)}",
            {"routing_key": queue, "arguments": {}},
        )


def application_topology(node: RabbitNode, queues: Sequence[str]) -> dict[str, Any]:
    """The part of a node's topology the application needs, as its management API reports it:
    `{"exchange": {type, durable} | None, "queues": {name: durable}, "bindings": [(exchange,
    queue, routing key)]}`."""
    exchanges = {e["name"]: e for e in node.api("GET", "/api/exchanges/%2F") or []}
    exchange = exchanges.get(EXCHANGE)
    listed = {q["name"]: bool(q.get("durable")) for q in node.api("GET", "/api/queues/%2F") or []}
    bindings = sorted(
        (b["source"], b["destination"], b["routing_key"])
        for b in node.api("GET", "/api/bindings/%2F") or []
        if b.get("source") == EXCHANGE and b.get("destination_type") == "queue"
    )
    return {
        "exchange": None
        if exchange is None
        else {"type": exchange.get("type"), "durable": bool(exchange.get("durable"))},
        "queues": {q: listed[q] for q in queues if q in listed},
        "bindings": bindings,
    }


def expected_topology(queues: Sequence[str]) -> dict[str, Any]:
    return {
        "exchange": {"type": "direct", "durable": True},
        "queues": dict.fromkeys(queues, True),
        "bindings": sorted((EXCHANGE, q, q) for q in queues),
    }


def messages_left(node: RabbitNode, queues: Sequence[str]) -> dict[str, int]:
    """Messages on each queue, exact (AMQP passive queue.declare: ready messages; with no
    client connected nothing is unacknowledged). A queue that does not exist is left out."""
    user, password = node.credentials
    parameters = pika.ConnectionParameters(
        HOST, node.amqp_port, "/", pika.PlainCredentials(user, password),
        connection_attempts=3, retry_delay=1, socket_timeout=5,
    )  # fmt: skip
    connection = pika.BlockingConnection(parameters)
    left: dict[str, int] = {}
    try:
        for queue in queues:
            channel = connection.channel()
            try:
                left[queue] = int(channel.queue_declare(queue, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker:  # 404: no such queue
                continue
            with suppress(Exception):
                channel.close()
    finally:
        with suppress(Exception):
            connection.close()
    return left


# --- simulated Amazon MQ DNS/TLS for the workflow's HTTP calls ----------------------------------


class SimulatedAmazonMqDnsTls(urllib.request.BaseHandler):
    """**Simulated Amazon MQ DNS/TLS** for HTTP: an https request for a host ending in
    `.amazonaws.com` (the Amazon MQ broker's console URL, where its management API answers)
    goes to the stand-in node's management API, plain HTTP on loopback. Every other request is
    left to the next handler (the network, unchanged). Records what it sent."""

    handler_order = 100  # before urllib's own HTTPSHandler (500)

    def __init__(self, management_port: int) -> None:
        self.management_port = management_port
        self.sent: list[str] = []  # "METHOD /path" of every request sent to the stand-in
        self._lock = threading.Lock()

    def https_open(self, request: urllib.request.Request) -> http.client.HTTPResponse | None:
        host = urllib.parse.urlsplit(request.full_url).hostname or ""
        if not host.endswith(AMAZON_MQ_DOMAIN):
            return None
        with self._lock:
            self.sent.append(f"{request.get_method()} {request.selector.split('?', 1)[0]}")
        port = self.management_port

        def stand_in(_host: str, **options: Any) -> http.client.HTTPConnection:
            return http.client.HTTPConnection(HOST, port, **options)

        response: http.client.HTTPResponse = urllib.request.HTTPHandler().do_open(stand_in, request)
        return response

    def install(self) -> Callable[[], None]:
        """Make this the process's opener; returns what puts the previous one back."""
        return install_handler(self)


# --- the clients --------------------------------------------------------------------------------


class PikaClients(ThreadedClients):
    """The pika reference clients (`examples/clients/rabbit_client.py`), one thread each,
    reading moto's Parameter Store. The Amazon MQ host resolves to the stand-in's plain AMQP
    port (simulated DNS and TLS); each broker's user comes from the application's own
    configuration, keyed by host (mq-cutover writes endpoints, never credentials)."""

    protocol = "amqp"
    failover_options: ClassVar[dict[str, Any]] = {}  # RabbitMQ clients have no failover: URL

    def __init__(self, onprem: RabbitNode, amazonmq: RabbitNode) -> None:
        super().__init__()
        self.onprem = onprem
        self.amazonmq = amazonmq
        self.on_prem_url = onprem.endpoint_url
        self.producers: list[Producer] = []
        self.consumers: list[Consumer] = []

    def resolve(self, host: str, port: int, tls: bool) -> tuple[str, int, bool]:
        if host.endswith(AMAZON_MQ_DOMAIN):  # simulated DNS + TLS: the stand-in node
            return (HOST, self.amazonmq.amqp_port, False)
        return (host, port, tls)

    def credentials(self, host: str) -> tuple[str, str]:
        node = self.amazonmq if host.endswith(AMAZON_MQ_DOMAIN) else self.onprem
        return node.credentials

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
                Consumer(
                    boto3_client("ssm"),
                    name,
                    f"c{index}",
                    queues,
                    credentials=self.credentials,
                    resolve=self.resolve,
                )
            )
        for index, name in enumerate(producers):
            self.producers.append(
                Producer(
                    boto3_client("ssm"),
                    name,
                    f"p{index}",
                    queues,
                    messages,
                    rate,
                    credentials=self.credentials,
                    resolve=self.resolve,
                    exchange=EXCHANGE,
                )
            )
        self._run_threads()


# --- the engine kit -----------------------------------------------------------------------------


class RabbitKit:
    """`scenario.EngineKit` for RabbitMQ: a created RABBITMQ broker whose user is the
    stand-in's administrator, `topology` copied from the on-prem node's management API, the
    management APIs for the bridges, exact counts from AMQP, and the simulated Amazon MQ
    DNS/TLS for HTTP while the emulator runs. `metrics_source` is the plan's
    `target.metrics.source`."""

    engine = "RABBITMQ"

    def __init__(
        self, onprem: RabbitNode, amazonmq: RabbitNode, metrics_source: str = "cloudwatch"
    ) -> None:
        self.onprem = onprem
        self.amazonmq = amazonmq
        self.metrics_source = metrics_source
        self.user = (amazonmq.username, AMAZON_MQ_USER_SECRET_ARN)
        self.amazon_mq_bridge = metrics_source == "cloudwatch"
        self.http = SimulatedAmazonMqDnsTls(amazonmq.management_port)

    def amend(self, document: dict[str, Any]) -> None:
        document["topology"] = {
            "copy": True,
            "onPremApi": {"url": self.onprem.api_url, "secretArn": ON_PREM_API_SECRET_ARN},
        }
        if self.metrics_source != "cloudwatch":
            document["target"].setdefault("metrics", {})["source"] = self.metrics_source

    def source(self, node: RabbitNode) -> Source:
        user, password = node.credentials
        return Source(SourceType.RABBITMQ, node.api_url, username=user, password=password)

    def left_on(self, node: RabbitNode, queues: list[str]) -> int:
        return sum(messages_left(node, queues).values())

    def world(self) -> dict[str, Any]:
        user, password = self.onprem.credentials
        return {
            "simulate_broker_apis": False,
            "secrets": {
                AMAZON_MQ_USER_SECRET_ARN.split(":secret:", 1)[1]: self.amazonmq.password,
                ON_PREM_API_SECRET_ARN.split(":secret:", 1)[1]: json.dumps(
                    {"username": user, "password": password}
                ),
            },
        }

    def install(self, emulator: Emulator) -> None:
        emulator.cleanups.append(self.http.install())

    def settle(self, onprem: RabbitNode, queues: list[str], timeout: float = 30) -> None:
        """RabbitMQ's management API shows a queue's consumers and counters some seconds late
        (its statistics are emitted periodically): wait until it shows every queue consumed,
        as it would on a broker that had run for a while before the cutover; then two bridge
        samples more, so that CloudWatch holds it too (the preflight reads it there)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = onprem.queue_stats()
            if all(stats.get(q, {}).get("consumers", 0) > 0 for q in queues):
                time.sleep(2 * BRIDGE_SECONDS)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"on-prem statistics show no consumer after {timeout}s: {stats}")
            time.sleep(0.2)

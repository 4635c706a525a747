"""Reference RabbitMQ clients for a cutover: what a migrated producer and consumer must do.

mq-cutover moves clients by changing the broker URL they read from SSM Parameter Store; for
Amazon MQ for RabbitMQ that URL is `amqps://b-xxxx.mq.<region>.amazonaws.com:5671` (TLS, one
endpoint: RabbitMQ clients have no failover: URL; mode `unordered` moves consumers first and
shovels what is left on-prem to them, instead of widening a URL).
A client is ready for that when it:

1. reads its broker URL from its parameter, and watches it (here: polls every half second);
2. takes its credentials from its own configuration, not from the URL: mq-cutover writes the
   endpoint only, never a password. Here: a `credentials(host)` callable (the CLI: `--user`
   and the environment variable named by `--password-env`); a user and password in the URL
   itself are used when present. The Amazon MQ user is the one the plan creates
   (`target.create.users[0]`), so it may differ from the on-prem one: key it by host;
3. declares nothing: exchanges, queues, bindings and policies belong to the broker (mq-cutover
   copies the on-prem topology to Amazon MQ before any client moves). A client that declares
   its own queue with other arguments than the copied one fails with PRECONDITION_FAILED.
   `declare=True` is for standalone use only;
4. producers: publish with publisher confirms (`confirm_delivery`), persistent
   (`delivery_mode=2`) and `mandatory=True`, so a message the broker could not route (the
   topology is missing) comes back as an error instead of being dropped silently; a publish
   that was not confirmed (nack, return, lost connection) is published again after
   reconnecting, so a consumer may see a duplicate (same `message_id`), never a gap; switch
   to a new URL *between two messages*, when the last one was confirmed;
5. consumers: acknowledge each message manually after processing it, on the channel it came
   from (a delivery tag means nothing on another channel), with a bounded prefetch; on a lost
   connection or a new URL, reconnect and consume again: what was delivered but not yet
   acknowledged goes back to the queue and is delivered again, not lost.

The end-to-end tests (`tests/e2e/`) run these classes against real RabbitMQ nodes; run them
yourself with:

    MQ_PASSWORD=... python examples/clients/rabbit_client.py produce \\
        --parameter /mq-cutover/app/broker-url --queue orders.created --count 1000 \\
        --user app --password-env MQ_PASSWORD
    MQ_PASSWORD=... python examples/clients/rabbit_client.py consume \\
        --parameter /mq-cutover/app/broker-url --queue orders.created \\
        --user app --password-env MQ_PASSWORD

Needs `boto3` and `pika` (1.x). Endpoints: `amqp://host:port[/vhost]` and
`amqps://host:port[/vhost]` (TLS; the server certificate is verified against the host name in
the URL). The virtual host is `/` when the URL has no path; `%2F` in a path is `/`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

Endpoint = tuple[str, int, bool]  # host, port, TLS
Resolver = Callable[[str, int, bool], Endpoint]
Credentials = Callable[[str], tuple[str, str]]  # URL host -> (username, password)

PORTS = {"amqp": 5672, "amqps": 5671}
# What ends a connection or a channel; the client reconnects and carries on.
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


def same_credentials(username: str, password: str) -> Credentials:
    """One user and password for every broker."""
    return lambda host: (username, password)


@dataclass(frozen=True)
class AmqpUrl:
    """An `amqp://` or `amqps://` broker URL, taken apart."""

    host: str
    port: int
    tls: bool
    vhost: str = "/"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> AmqpUrl:
    """The parts of a broker URL. RabbitMQ has no failover: URL: one endpoint per URL."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in PORTS or not parts.hostname:
        raise ValueError(f"not an amqp:// or amqps:// URL: {url.split('@')[-1]!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return AmqpUrl(
        host=parts.hostname,
        port=parts.port or PORTS[parts.scheme],
        tls=parts.scheme == "amqps",
        vhost=urllib.parse.unquote(path) if path else "/",
        username=None if parts.username is None else urllib.parse.unquote(parts.username),
        password=None if parts.password is None else urllib.parse.unquote(parts.password),
    )


class ParameterWatcher:
    """The client's broker URL, re-read from Parameter Store every `interval` seconds. (The
    same as in cutover_client.py, repeated so that this file stands alone.)"""

    def __init__(self, ssm: Any, name: str, interval: float = 0.5) -> None:
        self.ssm, self.name, self.interval = ssm, name, interval
        self.value = self._read()
        self._checked = time.monotonic()

    def _read(self) -> str:
        return str(self.ssm.get_parameter(Name=self.name)["Parameter"]["Value"])

    def changed(self, now: bool = False) -> bool:
        """True once when the value changed since the last call that returned True. `now`
        reads at once (after a lost connection, the URL may have moved on)."""
        if not now and time.monotonic() - self._checked < self.interval:
            return False
        self._checked = time.monotonic()
        try:
            value = self._read()
        except Exception:  # Parameter Store unreachable for a moment: keep the URL we have
            return False
        if value == self.value:
            return False
        self.value = value
        return True

    def latest(self) -> str:
        """The URL as it is in Parameter Store now."""
        self.changed(now=True)
        return self.value


@dataclass
class Link:
    """One AMQP connection and channel made from a broker URL."""

    credentials: Credentials | None = None
    resolve: Resolver | None = None
    ssl_context: ssl.SSLContext | None = None
    heartbeat: int = 30
    connection: BlockingConnection | None = None
    channel: BlockingChannel | None = None
    endpoint: str = ""

    def parameters(self, url: AmqpUrl) -> pika.ConnectionParameters:
        host, port, tls = (
            self.resolve(url.host, url.port, url.tls)
            if self.resolve
            else (url.host, url.port, url.tls)
        )
        if url.username is not None:
            username, password = url.username, url.password or ""
        elif self.credentials is not None:
            username, password = self.credentials(url.host)
        else:
            raise ValueError(f"no credentials for {url.host}: pass credentials= or --user")
        ssl_options = None
        if tls:  # verified against the host name in the URL, wherever it resolved to
            context = self.ssl_context or ssl.create_default_context()
            ssl_options = pika.SSLOptions(context, server_hostname=url.host)
        return pika.ConnectionParameters(
            host=host,
            port=port,
            virtual_host=url.vhost,
            credentials=pika.PlainCredentials(username, password),
            ssl_options=ssl_options,
            heartbeat=self.heartbeat,
            blocked_connection_timeout=30,  # a broker in a resource alarm: reconnect elsewhere
            connection_attempts=1,
            socket_timeout=5,
        )

    def open(
        self,
        url: str,
        deadline_seconds: float = 60.0,
        current_url: Callable[[], str] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Connect and open a channel; while the broker does not answer, retry with back-off,
        re-reading the URL each round through `current_url` (it may change meanwhile). Gives
        up (ConnectionError) after `deadline_seconds`; returns unconnected once `stop` is set."""
        give_up = time.monotonic() + deadline_seconds
        pause = 0.2
        while True:
            if current_url is not None:
                url = current_url()
            parsed = parse_url(url)
            try:
                self.connection = BlockingConnection(self.parameters(parsed))
                self.channel = self.connection.channel()
                self.endpoint = parsed.endpoint
                return
            except ssl.SSLCertVerificationError:
                self.close()
                raise  # the wrong host or trust store: retrying does not heal it
            except CONNECTION_ERRORS:
                # Refused, reset, or closed during the handshake (a node that is starting or
                # stopping does that, as does a wrong password): try again until the deadline.
                self.close()
            if stop is not None and stop.is_set():
                return  # no connection: the caller is stopping
            if time.monotonic() > give_up:
                raise ConnectionError(f"{parsed.endpoint} did not accept a connection")
            time.sleep(pause)
            pause = min(2.0, pause * 2)

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already gone
                connection.close()


@dataclass
class Producer:
    """Publishes `count` persistent messages round-robin to `queues` (through `exchange`,
    routing key = queue name), each one confirmed, following its broker URL parameter."""

    ssm: Any
    parameter: str
    name: str
    queues: list[str]
    count: int
    rate_per_second: float = 0.0  # 0: as fast as the broker confirms
    credentials: Credentials | None = None
    resolve: Resolver | None = None
    ssl_context: ssl.SSLContext | None = None
    exchange: str = ""  # the default exchange routes to the queue of the same name
    declare: bool = False  # standalone use only: the broker's topology is not the client's
    sent: list[tuple[str, int, float]] = field(default_factory=list)  # (queue, seq, at)
    switches: list[tuple[float, str]] = field(default_factory=list)  # (at, endpoint)
    resends: int = 0
    unroutable: int = 0  # publishes the broker returned: no queue for them (yet)

    def run(self, stop: threading.Event) -> None:
        watcher = ParameterWatcher(self.ssm, self.parameter)
        link = Link(self.credentials, self.resolve, self.ssl_context)
        self._connect(link, watcher.value, stop)
        sequence = dict.fromkeys(self.queues, 0)
        started = time.monotonic()
        try:
            for index in range(self.count):
                if stop.is_set():
                    break
                if watcher.changed():  # between two messages: the previous one is confirmed
                    self._connect(link, watcher.value, stop)
                queue = self.queues[index % len(self.queues)]
                sequence[queue] += 1
                if not self._publish_until_confirmed(link, watcher, queue, sequence[queue], stop):
                    break
                self.sent.append((queue, sequence[queue], time.time()))
                if self.rate_per_second:
                    due = started + (index + 1) / self.rate_per_second
                    self._pause(link, due - time.monotonic())
        finally:
            link.close()

    def _connect(
        self, link: Link, url: str, stop: threading.Event, watcher: ParameterWatcher | None = None
    ) -> None:
        """(Re)connect `link`, with confirms on; with `watcher`, to the URL as it is now."""
        link.close()
        link.open(url, current_url=None if watcher is None else watcher.latest, stop=stop)
        if link.channel is None:  # stopped while the broker was away
            return
        link.channel.confirm_delivery()
        if self.declare:
            for queue in self.queues:
                link.channel.queue_declare(queue, durable=True)
        self.switches.append((time.time(), link.endpoint))

    def _publish_until_confirmed(
        self, link: Link, watcher: ParameterWatcher, queue: str, seq: int, stop: threading.Event
    ) -> bool:
        """Publish one message until the broker confirms it; False if stopped first."""
        body = json.dumps({"producer": self.name, "queue": queue, "seq": seq}).encode()
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            message_id=f"{self.name}/{queue}/{seq}",  # the same on a resend: consumers can dedupe
        )
        while not stop.is_set():
            try:
                if link.channel is None:
                    raise pika.exceptions.ConnectionWrongStateError("not connected")
                link.channel.basic_publish(self.exchange, queue, body, properties, mandatory=True)
                return True
            except pika.exceptions.UnroutableError:
                self.unroutable += 1  # returned: no queue bound (yet); wait for the topology
                self._pause(link, 0.5)
                if watcher.changed(now=True):
                    self._connect(link, watcher.value, stop)
            except (pika.exceptions.NackError, *CONNECTION_ERRORS) as exc:
                self.resends += 1  # not confirmed: reconnect and publish it again
                if isinstance(exc, pika.exceptions.AMQPChannelError):
                    time.sleep(0.5)  # refused by the broker (e.g. no such exchange): not a spin
                self._connect(link, watcher.value, stop, watcher)
        return False

    @staticmethod
    def _pause(link: Link, seconds: float) -> None:
        """Sleep while answering the broker's heartbeats."""
        if seconds <= 0:
            return
        if link.connection is not None and link.connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                link.connection.sleep(seconds)
                return
        time.sleep(seconds)


@dataclass
class Consumer:
    """Consumes `queues`, acknowledging each message after recording it; follows its broker
    URL parameter and reconnects when its broker goes away."""

    ssm: Any
    parameter: str
    name: str
    queues: list[str]
    credentials: Credentials | None = None
    resolve: Resolver | None = None
    ssl_context: ssl.SSLContext | None = None
    prefetch: int = 50
    declare: bool = False  # standalone use only: the broker's topology is not the client's
    received: list[dict[str, Any]] = field(default_factory=list)
    switches: list[tuple[float, str]] = field(default_factory=list)  # (at, endpoint)
    reconnects: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> None:
        watcher = ParameterWatcher(self.ssm, self.parameter)
        link = Link(self.credentials, self.resolve, self.ssl_context)
        self._connect(link, watcher.value, stop)
        try:
            while not stop.is_set():
                if watcher.changed():
                    self._connect(link, watcher.value, stop)
                    continue
                try:
                    if link.connection is None:
                        raise pika.exceptions.ConnectionWrongStateError("not connected")
                    link.connection.process_data_events(time_limit=0.1)
                except CONNECTION_ERRORS:
                    self.reconnects += 1  # the broker went away: to the URL as it is now
                    self._connect(link, watcher.value, stop, watcher)
        finally:
            link.close()

    def _connect(
        self, link: Link, url: str, stop: threading.Event, watcher: ParameterWatcher | None = None
    ) -> None:
        """(Re)connect `link` and consume every queue; while a queue does not exist yet (the
        broker answers NOT_FOUND), try again every half second."""
        while not stop.is_set():
            link.close()  # what was delivered and not acknowledged goes back to its queue
            link.open(url, current_url=None if watcher is None else watcher.latest, stop=stop)
            channel = link.channel
            if channel is None:  # stopped while the broker was away
                return
            endpoint = link.endpoint
            try:
                channel.basic_qos(prefetch_count=self.prefetch)
                for queue in self.queues:
                    if self.declare:
                        channel.queue_declare(queue, durable=True)
                    channel.basic_consume(queue, functools.partial(self._on_message, endpoint))
            except CONNECTION_ERRORS:
                stop.wait(0.5)
                continue
            self.switches.append((time.time(), endpoint))
            return

    def _on_message(
        self, endpoint: str, channel: BlockingChannel, method: Any, properties: Any, body: bytes
    ) -> None:
        try:
            record = json.loads(body)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = {"raw": body.decode(errors="replace")}  # not ours to judge: acknowledged
        record["at"] = time.time()
        record["broker"] = endpoint
        record["consumer"] = self.name
        record["redelivered"] = bool(method.redelivered)
        with self._lock:
            self.received.append(record)
        # Processed: acknowledge, on the channel it came from. If that fails, the broker
        # delivers it again (a duplicate, not a loss).
        with contextlib.suppress(*CONNECTION_ERRORS):
            channel.basic_ack(method.delivery_tag)


def _cli(argv: list[str]) -> int:
    import boto3

    parser = argparse.ArgumentParser(description="reference cutover-ready RabbitMQ clients")
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--parameter", required=True, help="SSM parameter holding the URL")
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second")
    parser.add_argument("--user", help="broker user (when the URL has none)")
    parser.add_argument("--password-env", default="MQ_PASSWORD", help="variable with its password")
    parser.add_argument("--ca-file", help="CA bundle for amqps:// (default: the system's)")
    parser.add_argument("--declare", action="store_true", help="declare durable queues (testing)")
    args = parser.parse_args(argv)
    credentials = None
    if args.user:
        credentials = same_credentials(args.user, os.environ.get(args.password_env, ""))
    context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    ssm = boto3.client("ssm")
    stop = threading.Event()
    try:
        if args.role == "produce":
            producer = Producer(
                ssm, args.parameter, "cli", args.queue, args.count, args.rate,
                credentials=credentials, ssl_context=context, declare=args.declare,
            )  # fmt: skip
            producer.run(stop)
            print(f"sent {len(producer.sent)}, resent {producer.resends}")
        else:
            consumer = Consumer(
                ssm, args.parameter, "cli", args.queue,
                credentials=credentials, ssl_context=context, declare=args.declare,
            )  # fmt: skip
            consumer.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))

"""Reference clients for a cutover: what a migrated producer and consumer must do.

mq-cutover moves clients by changing the broker URL they read from SSM Parameter Store. A
client is ready for that when it:

1. reads its broker URL from its parameter, and watches it (here: polls every half second;
   a restart hook that restarts the process works too);
2. producers: switches to the new URL *between two messages*, after the last send was
   confirmed (a STOMP receipt), so nothing is half-sent; a send that fails is sent again after
   reconnecting (the consumer side may then see a duplicate, never a gap);
3. consumers: honour `failover:(uri1,uri2)?randomize=false`: connect to the first member that
   answers, in the order given (to a random one only when the URL says `randomize=true`), stay
   there until the connection fails or the URL changes, then reconnect and subscribe again;
   acknowledge each message only after it was processed (`client-individual`), so a message in
   flight during a switch is redelivered rather than lost.

mq-cutover's unordered mode relies on that order: it widens consumer i to
`failover:(<on-prem>,<Amazon MQ>)?randomize=false` when i is even and to
`failover:(<Amazon MQ>,<on-prem>)?randomize=false` when i is odd, so that each broker has a
consumer whatever chance would have picked.

The end-to-end tests (`tests/e2e/`) run these classes against real ActiveMQ brokers; run them
yourself with:

    python examples/clients/cutover_client.py produce --parameter /mq-cutover/app/broker-url \\
        --queue orders.created --count 1000
    python examples/clients/cutover_client.py consume --parameter /mq-cutover/app/broker-url \\
        --queue orders.created

Needs `boto3` and `stomp.py`. STOMP endpoints: `stomp://host:port`, and Amazon MQ's
`stomp+ssl://host:61614` (TLS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stomp

Endpoint = tuple[str, int, bool]  # host, port, TLS
Resolver = Callable[[str, int, bool], Endpoint]

_FAILOVER = re.compile(r"^failover:\((?P<inner>[^)]*)\)(?:\?(?P<options>.*))?$")
_URI = re.compile(r"^(?P<scheme>[a-z+]+)://(?P<host>[^:/?]+):(?P<port>\d+)")


def parse_url(url: str) -> tuple[list[Endpoint], bool]:
    """The endpoints of a broker URL and whether to randomize among them: only when the URL
    says `randomize=true` (mq-cutover always says; ActiveMQ's own default would be true)."""
    match = _FAILOVER.match(url.strip())
    members = [url.strip()]
    randomize = False
    if match:
        members = [m.strip() for m in match.group("inner").split(",") if m.strip()]
        options = dict(
            part.split("=", 1) for part in (match.group("options") or "").split("&") if "=" in part
        )
        randomize = options.get("randomize", "false").lower() == "true"
    endpoints = []
    for member in members:
        uri = _URI.match(member)
        if uri is None:
            raise ValueError(f"not a broker URI: {member!r}")
        tls = uri.group("scheme") in ("stomp+ssl", "stomp+nio+ssl", "ssl")
        endpoints.append((uri.group("host"), int(uri.group("port")), tls))
    return endpoints, randomize


class ParameterWatcher:
    """The client's broker URL, re-read from Parameter Store every `interval` seconds."""

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
        except Exception:
            return False
        if value == self.value:
            return False
        self.value = value
        return True

    def latest(self) -> str:
        """The URL as it is in Parameter Store now."""
        self.changed(now=True)
        return self.value


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, on_message: Callable[[Any], None] | None = None) -> None:
        self.receipts: set[str] = set()
        self.errors: list[str] = []
        self.connected = threading.Event()
        self.receipt_arrived = threading.Condition()
        self.on_message_callback = on_message

    def on_connected(self, frame: Any) -> None:
        self.connected.set()

    def on_disconnected(self) -> None:
        self.connected.clear()
        with self.receipt_arrived:
            self.receipt_arrived.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.receipt_arrived:
            self.receipts.add(frame.headers.get("receipt-id", ""))
            self.receipt_arrived.notify_all()

    def on_error(self, frame: Any) -> None:
        self.errors.append(frame.headers.get("message", frame.body))

    def on_message(self, frame: Any) -> None:
        if self.on_message_callback is not None:
            self.on_message_callback(frame)


@dataclass
class Link:
    """One STOMP connection made from a broker URL (failover-aware)."""

    url: str
    resolve: Resolver | None = None
    rng: random.Random = field(default_factory=random.Random)
    username: str | None = None
    password: str | None = None
    connection: Any = None
    endpoint: str = ""

    def open(
        self,
        listener: _Listener,
        deadline_seconds: float = 60.0,
        current_url: Callable[[], str] | None = None,
    ) -> None:
        """Connect to a member of the URL; while none answers, retry with back-off, re-reading
        the URL each round through `current_url` (it may change while the broker is down)."""
        give_up = time.monotonic() + deadline_seconds
        pause = 0.2
        while True:
            if current_url is not None:
                self.url = current_url()
            endpoints, randomize = parse_url(self.url)
            if randomize:
                endpoints = self.rng.sample(endpoints, len(endpoints))
            for host, port, tls in endpoints:
                real = self.resolve(host, port, tls) if self.resolve else (host, port, tls)
                connection = stomp.Connection12(  # STOMP 1.2: one "ack" id per message
                    [real[:2]], heartbeats=(0, 0), reconnect_attempts_max=1
                )
                if real[2]:
                    connection.set_ssl(for_hosts=[real[:2]])
                connection.set_listener("cutover", listener)
                try:
                    connection.connect(self.username, self.password, wait=True)
                except Exception:  # noqa: S112 - this member is down: try the next one
                    continue
                self.connection, self.endpoint = connection, f"{host}:{port}"
                return
            if time.monotonic() > give_up:
                raise ConnectionError(f"no member of {self.url} accepted a connection")
            time.sleep(pause)
            pause = min(2.0, pause * 2)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):  # already gone
                self.connection.disconnect()
            self.connection = None


@dataclass
class Producer:
    """Sends `count` persistent messages round-robin to `queues`, one receipt per message,
    following its broker URL parameter."""

    ssm: Any
    parameter: str
    name: str
    queues: list[str]
    count: int
    rate_per_second: float = 0.0  # 0: as fast as the broker confirms
    resolve: Resolver | None = None
    sent: list[tuple[str, int, float]] = field(default_factory=list)  # (queue, seq, at)
    switches: list[tuple[float, str]] = field(default_factory=list)
    resends: int = 0

    def run(self, stop: threading.Event) -> None:
        watcher = ParameterWatcher(self.ssm, self.parameter)
        listener = _Listener()  # one per connection: a late event of an old one must not count
        link = Link(watcher.value, self.resolve)
        link.open(listener)
        self.switches.append((time.time(), link.endpoint))
        sequence = dict.fromkeys(self.queues, 0)
        started = time.monotonic()
        for index in range(self.count):
            if stop.is_set():
                break
            if watcher.changed():  # between two messages: the previous one is confirmed
                link.close()
                listener = _Listener()
                link = Link(watcher.value, self.resolve)
                link.open(listener)
                self.switches.append((time.time(), link.endpoint))
            queue = self.queues[index % len(self.queues)]
            sequence[queue] += 1
            body = json.dumps({"producer": self.name, "queue": queue, "seq": sequence[queue]})
            while not self._send(link, listener, queue, body):
                self.resends += 1  # not confirmed: reconnect and send it again
                link.close()
                listener = _Listener()
                link = Link(watcher.value, self.resolve)
                link.open(listener, current_url=watcher.latest)
                self.switches.append((time.time(), link.endpoint))
            self.sent.append((queue, sequence[queue], time.time()))
            if self.rate_per_second:
                due = started + (index + 1) / self.rate_per_second
                time.sleep(max(0.0, due - time.monotonic()))
        link.close()

    @staticmethod
    def _send(link: Link, listener: _Listener, queue: str, body: str) -> bool:
        receipt = uuid.uuid4().hex
        try:
            link.connection.send(
                f"/queue/{queue}",
                body,
                headers={"persistent": "true", "receipt": receipt},
            )
        except Exception:
            return False
        deadline = time.monotonic() + 10
        with listener.receipt_arrived:
            while receipt not in listener.receipts:
                left = deadline - time.monotonic()
                if left <= 0 or not listener.connected.is_set():
                    return False
                listener.receipt_arrived.wait(left)
            listener.receipts.discard(receipt)
        return True


@dataclass
class Consumer:
    """Consumes `queues`, acknowledging each message after recording it; follows its broker
    URL parameter and reconnects (failover) when its broker goes away."""

    ssm: Any
    parameter: str
    name: str
    queues: list[str]
    resolve: Resolver | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    switches: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> None:
        watcher = ParameterWatcher(self.ssm, self.parameter)
        rng = random.Random()  # noqa: S311 - picks a broker (randomize=true), not a secret
        link = self._connect(watcher.value, rng)
        while not stop.is_set():
            if watcher.changed():
                link.close()
                link = self._connect(watcher.value, rng)
            elif link.connection is None or not link.connection.is_connected():
                link.close()  # the broker went away: failover, to the URL as it is now
                link = self._connect(watcher.value, rng, watcher)
            stop.wait(0.1)
        link.close()

    def _connect(
        self, url: str, rng: random.Random, watcher: ParameterWatcher | None = None
    ) -> Link:
        link = Link(url, self.resolve, rng)
        listener = _Listener(lambda frame: self._on_message(link, frame))
        link.open(listener, current_url=None if watcher is None else watcher.latest)
        for number, queue in enumerate(self.queues):
            link.connection.subscribe(
                f"/queue/{queue}",
                id=str(number),
                ack="client-individual",
                headers={"activemq.prefetchSize": "100"},
            )
        self.switches.append((time.time(), link.endpoint))
        return link

    def _on_message(self, link: Link, frame: Any) -> None:
        try:
            record = json.loads(frame.body)
        except ValueError:
            record = {"raw": frame.body}  # not ours to judge: recorded and acknowledged
        if not isinstance(record, dict):
            record = {"raw": frame.body}
        record["at"] = time.time()
        record["broker"] = link.endpoint
        record["consumer"] = self.name
        with self._lock:
            self.received.append(record)
        with contextlib.suppress(Exception):  # not acknowledged: it will be redelivered
            link.connection.ack(frame.headers["ack"])


def _cli(argv: list[str]) -> int:
    import boto3

    parser = argparse.ArgumentParser(description="reference cutover-ready STOMP clients")
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--parameter", required=True, help="SSM parameter holding the URL")
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second")
    args = parser.parse_args(argv)
    ssm = boto3.client("ssm")
    stop = threading.Event()
    try:
        if args.role == "produce":
            producer = Producer(ssm, args.parameter, "cli", args.queue, args.count, args.rate)
            producer.run(stop)
            print(f"sent {len(producer.sent)}, resent {producer.resends}")
        else:
            consumer = Consumer(ssm, args.parameter, "cli", args.queue)
            consumer.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))

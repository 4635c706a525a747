"""The Java JMS reference clients (``examples/clients/jms/CutoverClient.java``) in the e2e tier.

- :func:`compile_client` builds the client with ``javac`` against the JMS and ActiveMQ client
  jars of Debian's ``activemq`` package (``/usr/share/java``), once per test session.
- One JVM per client (:class:`JvmClient`), each the leader of its own process group; every JVM
  is stopped by its process group (SIGTERM, which closes its connection, then SIGKILL), also
  when a test fails.
- Each client reads its broker URL from a file. :class:`ParameterMirror` copies each client's
  SSM parameter (moto, in-process) into its file every 0.2 s: **simulated** — on a host, a
  config agent (or a restart hook) keeps that file in step with Parameter Store.
- The Amazon MQ endpoint's host name resolves, for these JVMs only, through a hosts file
  (**simulated DNS**), to the ``amazonmq`` stand-in's ``ssl://127.0.0.1:61617`` connector,
  whose certificate is **simulated** too (see ``tls.py``): the TLS itself is real.

What each JVM prints is parsed into the same records as the STOMP clients' (``sent``:
``(queue, seq, at)``, ``received``: ``{"producer", "queue", "seq", "at"}``, ``switches``:
``(at, where)``, here ``where`` = ``"<connected URI> <broker name> #<connection number>"``), so
``scenario.count`` counts both alike. A producer also records the connection each send went
over (``sent_over``): :func:`sent_per_broker` tells which broker got how many. (A connection
in ``switches`` is not necessarily one a producer used: one opened for a URL that changed back
before the switch is closed unused.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from mq_cutover_cli.harness import Emulator, boto3_client
from tests.e2e.brokers import JAVA_DIR, Broker
from tests.e2e.tls import HostsFile, TlsMaterial, amazon_mq_hosts

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "examples" / "clients" / "jms" / "CutoverClient.java"
# The JMS 1.1 API and ActiveMQ's client with what it needs, as Debian's activemq ships them.
JARS = [
    "activemq-client.jar",
    "geronimo-jms_1.1_spec.jar",
    "hawtbuf.jar",
    "geronimo-j2ee-management-1.1-spec.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
]
JVM_OPTS = ["-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
MIRROR_INTERVAL = 0.2


def classpath(classes: Path) -> str:
    return os.pathsep.join([str(classes), *(str(JAVA_DIR / jar) for jar in JARS)])


def compile_client(out: Path) -> Path:
    """``javac`` the reference client into ``out``; return ``out`` (the class directory)."""
    if shutil.which("javac") is None:
        raise RuntimeError("the JMS client needs javac: apt-get install default-jdk-headless")
    missing = [jar for jar in JARS if not (JAVA_DIR / jar).exists()]
    if missing:
        raise RuntimeError(f"JMS client jars missing in {JAVA_DIR}: {missing} (apt-get activemq)")
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["javac", "-Xlint:all", "-Werror", "-cp", classpath(out), "-d", str(out), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise RuntimeError(f"javac failed:\n{result.stdout}{result.stderr}")
    return out


@dataclass
class JmsKit:
    """What every JMS scenario of a session shares: the compiled client and the trust store."""

    classes: Path
    tls: TlsMaterial


@dataclass
class JvmClient:
    """One client JVM: started with a URL file, read line by line as it prints."""

    role: str  # "produce" or "consume"
    name: str
    parameter: str
    url_file: Path
    log: Path
    sent: list[tuple[str, int, float]] = field(default_factory=list)  # (queue, seq, at)
    sent_over: list[int] = field(default_factory=list)  # each send's connection number
    received: list[dict[str, Any]] = field(default_factory=list)
    # (at, "<uri> <broker name> #<connection number>"): every connection made, and every
    # reconnection of its failover transport (see placements()).
    switches: list[tuple[float, str]] = field(default_factory=list)
    connect_millis: list[int] = field(default_factory=list)  # how long each connection took
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = None

    def start(self, command: list[str], options: list[str]) -> None:
        with self.log.open("a") as err:
            # A session of its own makes the JVM leader of a process group: stop() signals it.
            self.process = subprocess.Popen(
                [
                    *command,
                    self.role,
                    "--url-file",
                    str(self.url_file),
                    "--name",
                    self.name,
                    *options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._parse(line.split())
        self.done.set()

    def _parse(self, words: list[str]) -> None:
        if not words:
            return
        kind = words[0]
        if kind == "S" and len(words) in (3, 4):
            self.sent.append((words[1], int(words[2]), time.time()))
            self.sent_over.append(int(words[3]) if len(words) == 4 else 0)
        elif kind == "R" and len(words) == 5 and words[3].isdigit():
            self.received.append(
                {
                    "producer": words[1],
                    "queue": words[2],
                    "seq": int(words[3]),
                    "at": int(words[4]) / 1000,
                    "consumer": self.name,
                }
            )
        elif kind == "C" and len(words) == 6:
            at, took, number, uri, broker = int(words[1]) / 1000, *words[2:]
            self.switches.append((at, f"{uri} {broker} #{number}"))
            self.connect_millis.append(int(took))
        elif kind == "E":
            self.errors.append(" ".join(words[1:]))
        elif kind == "DONE":
            self.done.set()

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the JVM's process group (it closes its connection), SIGKILL after
        ``timeout``. Idempotent."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
                break
        if self.reader is not None:
            self.reader.join(timeout=5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def placements(switches: list[tuple[float, str]]) -> list[list[str]]:
    """Where each of a JMS client's connections was, in the order opened: ``"<uri> <broker>"``
    per connect (a failover reconnection adds one to its connection's list). A client moving
    opens its next connection before it closes the last one, so their lines may interleave."""
    by_number: dict[int, list[str]] = {}
    for _, where in switches:
        place, number = where.rsplit(" #", 1)
        by_number.setdefault(int(number), []).append(place)
    return [by_number[number] for number in sorted(by_number)]


def brokers_of(switches: list[tuple[float, str]]) -> dict[int, str]:
    """The broker name each connection number first reached (a producer's connection has one
    member: it stays on that broker)."""
    found: dict[int, str] = {}
    for _, where in switches:
        place, number = where.rsplit(" #", 1)
        found.setdefault(int(number), place.rsplit(" ", 1)[-1])
    return found


def sent_per_broker(producer: JvmClient) -> dict[str, int]:
    """How many of a producer's confirmed sends went to each broker (by broker name)."""
    names = brokers_of(producer.switches)
    counts: dict[str, int] = {}
    for number in producer.sent_over:
        name = names.get(number, "?")
        counts[name] = counts.get(name, 0) + 1
    return counts


def last_sent_to(producer: JvmClient) -> str:
    """The broker (name) that got the producer's last confirmed send."""
    if not producer.sent_over:
        return "-"
    return brokers_of(producer.switches).get(producer.sent_over[-1], "?")


class ParameterMirror:
    """Simulated config agent: copies each client's SSM parameter into its URL file every
    0.2 s (atomically: a client reads the old URL or the new one, whole)."""

    def __init__(self, clients: list[JvmClient]) -> None:
        self.clients = clients
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.written: dict[Path, str] = {}

    def sync(self, ssm: Any) -> None:
        for client in self.clients:
            value = str(ssm.get_parameter(Name=client.parameter)["Parameter"]["Value"])
            if self.written.get(client.url_file) != value:
                temporary = client.url_file.with_suffix(".tmp")
                temporary.write_text(value + "\n")
                temporary.replace(client.url_file)
                self.written[client.url_file] = value

    def _run(self) -> None:
        ssm = boto3_client("ssm")
        while not self.stop.wait(MIRROR_INTERVAL):
            with contextlib.suppress(Exception):  # moto busy or gone at teardown: next round
                self.sync(ssm)

    def start(self) -> None:
        self.sync(boto3_client("ssm"))  # every file exists before its JVM starts
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=5)


class JmsClients:
    """The scenario's clients as JVMs (see ``scenario.Clients``). The on-prem URL is a
    ``failover:`` URL, as a JMS application that survives a broker restart has it."""

    protocol = "openwire"
    # Passed on by the workflow into every URL it writes: a real ActiveMQ client refuses an
    # option it does not know, so this proves the URLs whole. Reconnects stay quick here.
    failover_options: ClassVar[dict[str, Any]] = {"maxReconnectDelay": 1000}

    def __init__(self, kit: JmsKit, onprem: Broker, workdir: Path, prefetch: int = 100) -> None:
        self.kit = kit
        self.on_prem_url = f"failover:({onprem.openwire_url})"
        self.workdir = workdir
        self.prefetch = prefetch
        workdir.mkdir(parents=True, exist_ok=True)
        self.hosts = HostsFile(workdir / "hosts")
        self.producers: list[JvmClient] = []
        self.consumers: list[JvmClient] = []
        self.mirror: ParameterMirror | None = None

    def _command(self) -> list[str]:
        return [
            "java",
            *JVM_OPTS,
            *self.hosts.jvm_options(),
            *self.kit.tls.jvm_options(),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath(self.kit.classes),
            "CutoverClient",
        ]

    def _on_invoke(self, function: str, event: dict[str, Any]) -> None:
        """Simulated DNS: the broker's host names exist once the workflow has its id, before
        Resolve Endpoints hands them to any client."""
        broker_id = event.get("brokerId") if isinstance(event, dict) else None
        if function in ("CheckBrokerFunction", "ResolveEndpointsFunction") and broker_id:
            self.hosts.add(amazon_mq_hosts(str(broker_id)))

    def start(
        self,
        emulator: Emulator,
        parameters: tuple[list[str], list[str]],  # (producers', consumers')
        queues: list[str],
        messages: int,
        rate: float,
    ) -> None:
        emulator.hooks.append(self._on_invoke)
        producers, consumers = parameters
        for index, parameter in enumerate(consumers):
            self.consumers.append(self._client("consume", f"c{index}", parameter))
        for index, parameter in enumerate(producers):
            self.producers.append(self._client("produce", f"p{index}", parameter))
        self.mirror = ParameterMirror([*self.consumers, *self.producers])
        self.mirror.start()
        command = self._command()
        joined = ",".join(queues)
        for consumer in self.consumers:
            consumer.start(command, ["--queues", joined, "--prefetch", str(self.prefetch)])
        for producer in self.producers:
            producer.start(
                command, ["--queues", joined, "--count", str(messages), "--rate", str(rate)]
            )

    def _client(self, role: str, name: str, parameter: str) -> JvmClient:
        return JvmClient(
            role, name, parameter, self.workdir / f"{name}.url", self.workdir / f"{name}.log"
        )

    def wait_producers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for producer in self.producers:
            producer.done.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        for client in [*self.producers, *self.consumers]:
            client.stop()
        if self.mirror is not None:
            self.mirror.close()

    def failures(self) -> str:
        """The last lines of each JVM's log and its errors, for an assertion message."""
        return "\n".join(
            f"{c.name}: errors {c.errors[-3:]}\n{c.tail(5)}"
            for c in [*self.producers, *self.consumers]
        )

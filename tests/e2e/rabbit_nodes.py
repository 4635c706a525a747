"""Real RabbitMQ nodes on loopback for the end-to-end tier (issue 14).

Uses Debian's ``rabbitmq-server`` package (3.10.8 on Debian 12), started through its own
``/usr/lib/rabbitmq/bin/rabbitmq-server`` script, as a Debian user runs it. Two nodes by
default: ``onprem``, and ``amazonmq``, which stands in for an Amazon MQ for RabbitMQ broker.

Each node lives in ``root/<name>/``, and nothing of it is shared with another node or with a
system RabbitMQ (``/etc/rabbitmq`` and ``/var/lib/rabbitmq`` are never read or written):

* ``home/.erlang.cookie`` (mode 0400): the node's own Erlang cookie. The server and
  :meth:`RabbitNode.ctl` (``rabbitmqctl``) both run with ``HOME`` set to ``home/``;
* ``rabbitmq.conf``: AMQP listener and management API on 127.0.0.1 only, statistics every
  second (:data:`STATISTICS_INTERVAL_MS`; the API's statistics still lag the queues by 3-5 s,
  :meth:`RabbitNode.queue_depths` reads the queues' own totals instead),
  the administrative user (:data:`ADMIN_USER`, a random password per node, tag
  ``administrator``, all permissions on ``/``) as the default user, so ``guest`` never exists;
* ``enabled_plugins``: :data:`PLUGINS` (management, shovel, shovel management), enabled
  offline: the server reads the file at boot;
* ``rabbitmq-env.conf``: empty, so ``/etc/rabbitmq/rabbitmq-env.conf`` is not read;
* ``mnesia/`` (``RABBITMQ_MNESIA_BASE``: the database, message stores, feature flags, PID
  file) and ``log/`` (``RABBITMQ_LOG_BASE``: ``<node name>.log``); the server's own stdout and
  stderr go to ``console.log``.

Ports (fixed, so a failure names them; none collides with the ActiveMQ tier's, which picks
free ports and 61617, nor with a system RabbitMQ's 5672/5671/15672/25672/4369):

| node       | AMQP | AMQP over TLS (with ``tls``) | management API | Erlang distribution |
|------------|------|------------------------------|----------------|---------------------|
| 1st name   | 5682 | 5684                         | 15682          | 25682               |
| 2nd name   | 5683 | 5685                         | 15683          | 25683               |
| epmd       | 4379 (shared by the nodes; started and stopped by :class:`Epmd`)                   |

TLS (**simulated** Amazon MQ certificate): :func:`make_rabbit_tls` makes a throw-away CA and a
certificate for ``*.mq.us-east-1.amazonaws.com``; a node given it (``running_rabbit_nodes(...,
tls={"amazonmq": tls})``) also serves AMQP over TLS on its ``amqps`` port. Amazon MQ's
endpoint is ``amqps://b-<id>.mq.us-east-1.amazonaws.com:5671``: a client's ``resolve`` hook
maps that host and port to ``127.0.0.1:<amqps port>`` (**simulated** DNS) and keeps TLS on,
verifying the certificate and host name against :meth:`RabbitTls.client_context`.
``NodePorts.amqps_also`` (opt-in) adds a second TLS listener, e.g. on 127.0.0.1:5671 for a
shovel that dials the Amazon MQ endpoint as written (its host name resolved by the on-prem
node's simulated DNS, ``hosts=`` and :meth:`RabbitNode.add_hosts`).

``rabbitmqctl`` itself takes a distribution port in 35672-35682 (the package's default)
while it runs. ``MQ_CUTOVER_E2E_FREE_PORTS=1`` makes :func:`running_rabbit_nodes` pick free
ports instead (for two runs on one machine; the ports are then in each node's ``ports``).

Processes: the server script (``sh``, leader of its own session), its ``beam.smp``, and
``erl_child_setup`` and ``inet_gethost`` under the VM (``erl_child_setup`` starts a session of
its own, so signalling the script's process group does not reach it). The node never starts
an epmd itself (``-start_epmd false``): :class:`Epmd` runs one in the foreground on
:data:`EPMD_PORT`, loopback only. :meth:`RabbitNode.stop` sends SIGTERM to the script (which
stops the VM cleanly), waits, then SIGKILLs whatever of the node's process tree is left, by
PID; :func:`running_rabbit_nodes` does that for every node and epmd even when the body fails.

Timings here (2 cores): a node is ready ~5-7 s after the script starts (both in parallel:
~7 s); a clean stop takes ~6 s, 5 of them in the management agent's shutdown
(``stop(kill=True)``, a crash, is immediate). Persistent messages on durable queues survive
:meth:`RabbitNode.restart` (and a crash: publisher confirms come after the write); the
management API's counters (``message_stats``) start again at 0.

API (see each docstring):

* ``running_rabbit_nodes(root, names=("onprem", "amazonmq"), ports=None, epmd_port=None,
  tls=None)``: the context manager; :func:`make_rabbit_node` and :class:`Epmd` underneath;
* :class:`RabbitNode`: ``start()``, ``stop(kill=False)``, ``restart()``, ``running``,
  ``pids()``; where it is: ``amqp_port``, ``amqps_port``, ``management_port``, ``amqp_url``
  (with the password: never print it), ``endpoint_url`` (without, as mq-cutover writes it),
  ``api_url``, ``credentials``, ``node_name``; management: ``api(method, path, body)``,
  ``ctl(*args)``, ``add_hosts(names)``, ``declare_queues(queues)``, ``queue_depths(queues)``
  (exact), ``wait_depths(expected)``, ``queue_stats()`` (the bridge's view, lagging),
  ``purge(queues)``, ``reset_topology()``; ``tail()`` for a failure message;
* :func:`make_rabbit_tls` / :class:`RabbitTls` (``client_context()``); :func:`free_node_ports`;
  :func:`process_tree`, :func:`processes_mentioning`, :func:`listening` to check processes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika

from tests.e2e.brokers import free_port

HOST = "127.0.0.1"
AMAZON_MQ_DOMAIN = "mq.us-east-1.amazonaws.com"
AMAZON_MQ_AMQPS_PORT = 5671  # the port in the endpoint the product gives RabbitMQ clients
RABBITMQ_HOME = Path("/usr/lib/rabbitmq")
SERVER_SCRIPT = RABBITMQ_HOME / "bin" / "rabbitmq-server"
CTL_SCRIPT = RABBITMQ_HOME / "bin" / "rabbitmqctl"
EPMD = Path("/usr/bin/epmd")
EPMD_PORT = 4379
PLUGINS = ("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management")
ADMIN_USER = "mqc-admin"
STATISTICS_INTERVAL_MS = 1000
DEFAULT_VHOST = "/"
FREE_PORTS_VARIABLE = "MQ_CUTOVER_E2E_FREE_PORTS"
# RabbitMQ's own exchanges in every virtual host: reset_topology() keeps them.
_BUILT_IN_EXCHANGE = re.compile(r"^(|amq\..*)$")


@dataclass(frozen=True)
class NodePorts:
    amqp: int
    management: int
    dist: int
    amqps: int = 0  # AMQP over TLS; used by a node made with TLS material only
    # A second AMQP-over-TLS listener (opt-in, TLS nodes only): AMAZON_MQ_AMQPS_PORT (5671) for
    # a stand-in that a shovel dials under the Amazon MQ endpoint as written (host name :5671).
    amqps_also: int = 0


DEFAULT_PORTS = (NodePorts(5682, 15682, 25682, 5684), NodePorts(5683, 15683, 25683, 5685))


def free_node_ports() -> NodePorts:
    """Loopback ports free now, for a node beside the fixed-port ones (e.g. a private node in
    a test while the session's nodes run); pair it with ``epmd_port=free_port()``."""
    return NodePorts(free_port(), free_port(), free_port(), free_port())


# --- simulated Amazon MQ certificate ---------------------------------------------------------


@dataclass(frozen=True)
class RabbitTls:
    """PEM files: a CA the clients trust, and the node's certificate (signed by it) and key."""

    cafile: Path
    certfile: Path
    keyfile: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client on AWS gets from its system trust store, for the simulated CA: it
        verifies the certificate and the host name."""
        return ssl.create_default_context(cafile=str(self.cafile))


def make_rabbit_tls(directory: Path, domain: str = AMAZON_MQ_DOMAIN) -> RabbitTls:
    """**Simulated** Amazon MQ TLS: a throw-away CA and a certificate for ``*.<domain>``
    (subject alternative name ``DNS:*.<domain>``, as Amazon MQ's certificate has), valid for a
    week, made with ``cryptography``. On AWS the certificate is publicly trusted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def certificate(
        subject: str, key: Any, issuer: str, signer: Any, ca: bool, names: list[str]
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = "mq-cutover e2e simulated CA"
    ca_cert = certificate(ca_name, ca_key, ca_name, ca_key, True, [])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(f"*.{domain}", key, ca_name, ca_key, False, [f"*.{domain}"])
    tls = RabbitTls(directory / "ca.pem", directory / "amazonmq.pem", directory / "amazonmq.key")
    tls.cafile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.keyfile.touch(mode=0o600)
    tls.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


RABBITMQ_CONF = """\
listeners.tcp.1 = {host}:{amqp}
management.tcp.ip = {host}
management.tcp.port = {management}
default_vhost = /
default_user = {user}
default_pass = {password}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
collect_statistics_interval = {statistics_ms}
log.file.level = info
log.console = false
"""

TLS_CONF = """\
listeners.ssl.1 = {host}:{amqps}
ssl_options.cacertfile = {cafile}
ssl_options.certfile = {certfile}
ssl_options.keyfile = {keyfile}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
"""
TLS_ALSO_CONF = "listeners.ssl.2 = {host}:{amqps_also}\n"


def ensure_installed() -> None:
    """Raise RuntimeError naming the Debian package to install if RabbitMQ is missing."""
    missing = [p for p in (SERVER_SCRIPT, CTL_SCRIPT, EPMD) if not p.exists()]
    if missing:
        raise RuntimeError(
            f"e2e RabbitMQ nodes need Debian's rabbitmq-server (missing {missing[0]}): "
            "apt-get install rabbitmq-server, or make setup-brokers"
        )


def port_open(port: int, host: str = HOST) -> bool:
    with suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


# --- processes, by PID ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pid:
    """A process, told apart from a later one with the same number by its start time."""

    pid: int
    started: int  # clock ticks after boot (/proc/<pid>/stat field 22)
    command: str

    def alive(self) -> bool:
        stat = _stat(self.pid)
        # A zombie has exited (this machine's PID 1 may never reap an orphan).
        return stat is not None and stat[1] == self.started and stat[0] != "Z"

    def signal(self, sig: int) -> None:
        if self.alive():
            with suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, start time, parent PID) of a process, None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[19]), int(fields[1])


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_tree(root_pid: int) -> list[Pid]:
    """``root_pid`` and every descendant alive now (children of children, whatever their
    session), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                parents.setdefault(stat[2], []).append(int(entry.name))
    found: list[Pid] = []
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        found.append(Pid(pid, stat[1], _command(pid)))
        todo.extend(parents.get(pid, []))
    return found


def processes_mentioning(text: str) -> list[Pid]:
    """Processes alive now whose command line contains ``text`` (e.g. a node's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        stat = _stat(int(entry.name))
        if text in cmdline and stat is not None and stat[0] != "Z":
            found.append(Pid(int(entry.name), stat[1], _command(int(entry.name))))
    return found


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP (address, port) pairs process ``pid`` listens on, read from /proc (IPv6
    addresses as ``::1`` etc.)."""
    inodes = set()
    with suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                    continue
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                # /proc prints the address as 32-bit words in host (little-endian) order.
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


def _wait_gone(pids: Iterable[Pid], timeout: float) -> list[Pid]:
    """Wait until every process has exited; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if p.alive()]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if p.alive()]
    return left


def _terminate(process: subprocess.Popen[bytes], tree: list[Pid], timeout: float) -> None:
    """SIGTERM ``process`` (it stops its own children), then SIGKILL what is left of
    ``tree``, each by PID, and reap ``process``."""
    with suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    left = _wait_gone(tree, 2.0 if process.poll() is not None else 0.0)
    for pid in left:
        pid.signal(signal.SIGKILL)
    with suppress(ProcessLookupError):
        process.kill()
    process.wait(10)
    stuck = _wait_gone(left, 10.0)
    if stuck:
        raise RuntimeError(f"processes survived SIGKILL: {stuck}")


class Epmd:
    """The Erlang port mapper the nodes register with: one foreground ``epmd`` on loopback
    and a private port, stopped by its PID."""

    def __init__(self, port: int = EPMD_PORT, log: Path | None = None) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, timeout: float = 10) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        if port_open(self.port):
            raise RuntimeError(f"{HOST}:{self.port} is taken: the e2e epmd needs it")
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [str(EPMD), "-port", str(self.port), "-address", HOST],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"epmd did not listen on {HOST}:{self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            _terminate(process, process_tree(process.pid), 5.0)


# --- one node ------------------------------------------------------------------------------


@dataclass
class RabbitNode:
    """One ``rabbitmq-server`` rooted at ``base``; see :func:`make_rabbit_node`."""

    name: str
    base: Path
    ports: NodePorts
    epmd_port: int = EPMD_PORT
    username: str = ADMIN_USER
    password: str = field(default="", repr=False)
    tls: RabbitTls | None = None  # with it, AMQP over TLS on ports.amqps too
    inetrc: Path | None = None  # simulated DNS for the node's own connections (shovels)
    hosts_file: Path | None = None  # the inetrc's hosts file, which add_hosts() extends
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tree: list[Pid] = field(default_factory=list, repr=False)

    # where clients and tests reach it

    @property
    def node_name(self) -> str:
        return f"mqc-{self.name}@localhost"

    @property
    def amqp_port(self) -> int:
        return self.ports.amqp

    @property
    def amqps_port(self) -> int:
        """The AMQP-over-TLS listener's port; 0 when the node has no TLS."""
        return self.ports.amqps if self.tls is not None else 0

    @property
    def management_port(self) -> int:
        return self.ports.management

    @property
    def listening_ports(self) -> set[int]:
        """Every TCP port the node listens on (AMQP, AMQPS if any, management, distribution)."""
        found = {self.ports.amqp, self.ports.management, self.ports.dist, self.amqps_port}
        if self.tls is not None:
            found.add(self.ports.amqps_also)
        return found - {0}

    def add_hosts(self, names: Sequence[str], address: str = HOST) -> None:
        """**Simulated** DNS records that appear while the node runs (e.g. an Amazon MQ host
        name, known once the broker exists): appended to the node's hosts file (made with
        ``hosts=``), which the running VM reads again when it changes (Erlang's ``inet_db``
        checks the file's modification time at most every ~5 s: measured 4.8 s on OTP 25)."""
        if self.hosts_file is None:
            raise RuntimeError(f"node {self.name} was made without hosts= (no hosts file)")
        with self.hosts_file.open("a") as out:
            out.write(f"{address} {' '.join(names)}\n")

    @property
    def credentials(self) -> tuple[str, str]:
        """(username, password) of the node's administrative user."""
        return (self.username, self.password)

    @property
    def amqp_url(self) -> str:
        """``amqp://user:password@127.0.0.1:port/%2F``: holds the password, never print it."""
        user, password = (urllib.parse.quote(v, safe="") for v in self.credentials)
        return f"amqp://{user}:{password}@{HOST}:{self.ports.amqp}/%2F"

    @property
    def endpoint_url(self) -> str:
        """``amqp://127.0.0.1:port``: the URL without credentials, as mq-cutover writes one
        into a client's parameter."""
        return f"amqp://{HOST}:{self.ports.amqp}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.management}"

    @property
    def log(self) -> Path:
        return self.base / "log" / f"{self.node_name}.log"

    @property
    def console_log(self) -> Path:
        return self.base / "console.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[Pid]:
        """The node's processes alive now (script, beam.smp, erl_child_setup, ...)."""
        if self.process is None:
            return []
        return process_tree(self.process.pid)

    def environment(self) -> dict[str, str]:
        """The environment of this node's server and of its rabbitmqctl."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k not in ("HOME", "NOTIFY_SOCKET")
        }
        env.update(
            HOME=str(self.base / "home"),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.ports.amqp),
            RABBITMQ_DIST_PORT=str(self.ports.dist),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            # The node neither starts an epmd nor listens for distribution beyond loopback.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
                + ("" if self.inetrc is None else f' -kernel inetrc "{self.inetrc}"')
            ),
            RABBITMQ_CTL_ERL_ARGS="-start_epmd false",
        )
        return env

    # lifecycle

    def start(self, timeout: float = 60) -> None:
        """Launch the server script and wait until the management API answers ``/api/overview``
        as this node, to the administrative user, and AMQP accepts connections."""
        if self.running:
            return
        if not port_open(self.epmd_port):
            raise RuntimeError(f"no epmd on {HOST}:{self.epmd_port}: start an Epmd first")
        for port in sorted(self.listening_ports):
            if port_open(port):
                raise RuntimeError(f"{HOST}:{port} is taken: RabbitMQ node {self.name} needs it")
        with self.console_log.open("ab") as out:
            # A session of its own: the script and the VM do not get the test's terminal signals.
            self.process = subprocess.Popen(
                [str(SERVER_SCRIPT)], cwd=self.base, env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            self._tree = process_tree(self.process.pid)
            with suppress(OSError, ValueError, RuntimeError):
                overview = self.api("GET", "/api/overview", timeout=2)
                if overview.get("node") == self.node_name and port_open(self.ports.amqp):
                    self._tree = process_tree(self.process.pid)
                    return
            time.sleep(0.2)
        code = self.process.poll()
        self.stop()
        raise RuntimeError(
            f"RabbitMQ node {self.name} not ready after {timeout}s (exit code {code}); "
            f"last lines of its logs:\n{self.tail()}"
        )

    def stop(self, timeout: float = 30, kill: bool = False) -> None:
        """Stop the node: SIGTERM to the server script (a clean shutdown), or ``kill=True``:
        SIGKILL to the VM first (a crash). Then SIGKILL, by PID, whatever of its processes is
        left after ``timeout``. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        tree = {p.pid: p for p in [*self._tree, *process_tree(process.pid)]}.values()
        if kill:
            for pid in tree:
                if pid.command == "beam.smp":
                    pid.signal(signal.SIGKILL)
        _terminate(process, list(tree), timeout)
        self._tree = []

    def restart(self, timeout: float = 60) -> None:
        self.stop()
        self.start(timeout)

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log, self.console_log):
            with suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    # management

    def api(self, method: str, path: str, body: object = None, timeout: float = 10) -> Any:
        """One management API call as the administrative user; the decoded JSON answer (None
        for an empty one). Raises RuntimeError with the status on an HTTP error."""
        data = None if body is None else json.dumps(body).encode()
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            reason = exc.read().decode(errors="replace")[:300]
            raise RuntimeError(
                f"{method} {path} on {self.name}: HTTP {exc.code} {reason}"
            ) from None
        return json.loads(raw) if raw.strip() else None

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> ARGS`` with the node's cookie and epmd; its stdout."""
        done = subprocess.run(
            [str(CTL_SCRIPT), "-n", self.node_name, *args],
            env=self.environment(), capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0] if args else ''} failed: {done.stderr}")
        return done.stdout

    def declare_queues(
        self,
        queues: Sequence[str],
        vhost: str = DEFAULT_VHOST,
        queue_type: str = "classic",
        arguments: dict[str, Any] | None = None,
    ) -> None:
        """Declare durable queues (bound to the default exchange) through the management API,
        as an operator would: the clients themselves declare nothing."""
        for queue in queues:
            self.api(
                "PUT",
                f"/api/queues/{_quote(vhost)}/{_quote(queue)}",
                {
                    "durable": True,
                    "auto_delete": False,
                    "arguments": {"x-queue-type": queue_type, **(arguments or {})},
                },
            )

    def queue_stats(self, vhost: str = DEFAULT_VHOST) -> dict[str, dict[str, int]]:
        """``{queue: figures}`` for every queue of ``vhost``, as the metrics bridge reads them:
        ``messages`` (ready + unacked), ``ready``, ``unacked``, ``consumers``, ``published``,
        ``delivered`` (the last two count since the node started). Statistics: they lag the
        queues by 3-5 s on this setup (measured), whatever :data:`STATISTICS_INTERVAL_MS`."""
        columns = (
            "name,messages,messages_ready,messages_unacknowledged,consumers,"
            "message_stats.publish,message_stats.deliver_get"
        )
        answer = self.api("GET", f"/api/queues/{_quote(vhost)}?columns={columns}")
        stats = {}
        for item in answer or []:
            counters = item.get("message_stats") or {}
            stats[str(item["name"])] = {
                "messages": int(item.get("messages") or 0),
                "ready": int(item.get("messages_ready") or 0),
                "unacked": int(item.get("messages_unacknowledged") or 0),
                "consumers": int(item.get("consumers") or 0),
                "published": int(counters.get("publish") or 0),
                "delivered": int(counters.get("deliver_get") or 0),
            }
        return stats

    def queue_depths(self, queues: Sequence[str], vhost: str = DEFAULT_VHOST) -> dict[str, int]:
        """``{queue: messages}`` (ready + unacknowledged) as the queues hold them now: the
        management API's queue totals without statistics (``disable_stats=true&
        enable_queue_totals=true``), which come from the queues themselves and do not lag like
        :meth:`queue_stats`. A queue that does not exist is left out."""
        answer = self.api(
            "GET", f"/api/queues/{_quote(vhost)}?disable_stats=true&enable_queue_totals=true"
        )
        found = {str(item["name"]): int(item.get("messages") or 0) for item in answer or []}
        return {q: found[q] for q in queues if q in found}

    def wait_depths(
        self, expected: dict[str, int], vhost: str = DEFAULT_VHOST, timeout: float = 15
    ) -> dict[str, int]:
        """Poll :meth:`queue_depths` until it equals ``expected`` (consumers and publishers may
        still be at work); return the last reading either way."""
        deadline = time.monotonic() + timeout
        while True:
            depths = self.queue_depths(list(expected), vhost)
            if depths == expected or time.monotonic() > deadline:
                return depths
            time.sleep(0.25)

    def purge(self, queues: Sequence[str], vhost: str = DEFAULT_VHOST) -> dict[str, int]:
        """Remove the ready messages of these queues (AMQP ``queue.purge``, exact counts);
        ``{queue: messages purged}``, a queue that does not exist left out. Messages a consumer
        holds unacknowledged are not ready, so not purged."""
        existing = set(self.queue_stats(vhost))
        purged: dict[str, int] = {}
        user, password = self.credentials
        parameters = pika.ConnectionParameters(
            HOST, self.ports.amqp, vhost, pika.PlainCredentials(user, password),
            connection_attempts=1, socket_timeout=5,
        )  # fmt: skip
        connection = pika.BlockingConnection(parameters)
        try:
            channel = connection.channel()
            for queue in queues:
                if queue in existing:
                    purged[queue] = int(channel.queue_purge(queue).method.message_count)
        finally:
            with suppress(Exception):
                connection.close()
        return purged

    def reset_topology(self) -> dict[str, int]:
        """Delete everything a scenario may have made: virtual hosts but ``/``, queues,
        exchanges but the built-in ones, policies, operator policies, runtime parameters
        (shovels, federation upstreams) and users but the administrative one. Returns how
        many of each were deleted."""
        deleted = dict.fromkeys(
            ("vhosts", "parameters", "policies", "operator_policies", "queues", "exchanges"), 0
        )
        deleted["users"] = 0
        for vhost in self.api("GET", "/api/vhosts") or []:
            if vhost["name"] != DEFAULT_VHOST:
                self.api("DELETE", f"/api/vhosts/{_quote(vhost['name'])}")
                deleted["vhosts"] += 1
        for parameter in self.api("GET", "/api/parameters") or []:
            path = "/".join(_quote(parameter[k]) for k in ("component", "vhost", "name"))
            self.api("DELETE", f"/api/parameters/{path}")
            deleted["parameters"] += 1
        for kind in ("policies", "operator_policies"):
            url_kind = kind.replace("_", "-")
            for policy in self.api("GET", f"/api/{url_kind}") or []:
                path = f"{_quote(policy['vhost'])}/{_quote(policy['name'])}"
                self.api("DELETE", f"/api/{url_kind}/{path}")
                deleted[kind] += 1
        for queue in self.api("GET", "/api/queues?columns=name,vhost") or []:
            self.api("DELETE", f"/api/queues/{_quote(queue['vhost'])}/{_quote(queue['name'])}")
            deleted["queues"] += 1
        for exchange in self.api("GET", "/api/exchanges?columns=name,vhost") or []:
            if not _BUILT_IN_EXCHANGE.match(exchange["name"]):
                path = f"{_quote(exchange['vhost'])}/{_quote(exchange['name'])}"
                self.api("DELETE", f"/api/exchanges/{path}")
                deleted["exchanges"] += 1
        for user in self.api("GET", "/api/users") or []:
            if user["name"] != self.username:
                self.api("DELETE", f"/api/users/{_quote(user['name'])}")
                deleted["users"] += 1
        return deleted


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def make_rabbit_node(
    root: Path,
    name: str,
    ports: NodePorts,
    epmd_port: int = EPMD_PORT,
    tls: RabbitTls | None = None,
    hosts: Mapping[str, str] | None = None,
) -> RabbitNode:
    """Write node ``name``'s configuration into ``root/name``: a random admin password and
    Erlang cookie the first time, kept (with the database) when the directory is reused.

    ``hosts`` ({host name: IPv4 address}, off by default; ``{}`` for none yet): **simulated**
    DNS for the connections the node itself opens (a shovel's destination): an Erlang ``inetrc``
    file (``-kernel inetrc``) whose ``host`` entries, and those of its ``hosts_file``
    (:meth:`RabbitNode.add_hosts`, at run time), are looked up before the system resolver."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"unsafe node name: {name!r}")
    base = (root / name).resolve()
    for sub in ("home", "mnesia", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # The default user is created on the first boot only: a reused database keeps its password.
    secret = base / "admin-password"
    if not secret.exists():
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(18))
    if tls is not None and not ports.amqps:
        raise ValueError(f"node {name} has TLS material but no amqps port")
    node = RabbitNode(name, base, ports, epmd_port, password=secret.read_text().strip(), tls=tls)
    if hosts is not None:
        node.inetrc = base / "inetrc"
        node.hosts_file = base / "hosts"
        node.hosts_file.write_text(f"{HOST} localhost\n")
        by_address: dict[str, list[str]] = {}  # one entry per address: a second would replace it
        for host, address in hosts.items():
            by_address.setdefault(address, []).append(f'"{host}"')
        entries = "".join(
            f"{{host, {{{address.replace('.', ',')}}}, [{', '.join(names)}]}}.\n"
            for address, names in by_address.items()
        )
        node.inetrc.write_text(
            entries + f'{{hosts_file, "{node.hosts_file}"}}.\n{{lookup, [file, native]}}.\n'
        )
    cookie = base / "home" / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
    config = base / "rabbitmq.conf"
    config.touch(mode=0o600)
    config.write_text(
        RABBITMQ_CONF.format(
            host=HOST,
            amqp=ports.amqp,
            management=ports.management,
            user=ADMIN_USER,
            password=node.password,
            statistics_ms=STATISTICS_INTERVAL_MS,
        )
        + (
            ""
            if tls is None
            else TLS_CONF.format(
                host=HOST,
                amqps=ports.amqps,
                cafile=tls.cafile,
                certfile=tls.certfile,
                keyfile=tls.keyfile,
            )
            + (
                TLS_ALSO_CONF.format(host=HOST, amqps_also=ports.amqps_also)
                if ports.amqps_also
                else ""
            )
        )
    )
    (base / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
    (base / "rabbitmq-env.conf").write_text(
        "# empty: /etc/rabbitmq/rabbitmq-env.conf is not read\n"
    )
    return node


@contextmanager
def running_rabbit_nodes(
    root: Path,
    names: Sequence[str] = ("onprem", "amazonmq"),
    ports: Sequence[NodePorts] | None = None,
    epmd_port: int | None = None,
    tls: Mapping[str, RabbitTls] | None = None,
    hosts: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[list[RabbitNode]]:
    """Start epmd and one node per name (the i-th on ``ports[i]``), the nodes in parallel;
    on exit, whatever happened, stop every node and epmd by PID.

    Without ``ports``/``epmd_port``: :data:`DEFAULT_PORTS` and :data:`EPMD_PORT`, or free
    ports when the environment sets ``MQ_CUTOVER_E2E_FREE_PORTS=1`` (two runs on one machine).
    ``tls`` gives a node (by name) an AMQP-over-TLS listener on its ``amqps`` port; ``hosts``
    gives a node (by name) simulated DNS entries (see :func:`make_rabbit_node`)."""
    ensure_installed()
    free = os.environ.get(FREE_PORTS_VARIABLE) == "1"
    if ports is None:
        ports = [free_node_ports() for _ in names] if free else DEFAULT_PORTS
    if epmd_port is None:
        epmd_port = free_port() if free else EPMD_PORT
    if len(ports) < len(names):
        raise ValueError(f"{len(names)} nodes need {len(names)} NodePorts, got {len(ports)}")
    root.mkdir(parents=True, exist_ok=True)
    epmd = Epmd(epmd_port, root / "epmd.log")
    tls = tls or {}
    nodes = [
        make_rabbit_node(root, name, port, epmd_port, tls.get(name), (hosts or {}).get(name))
        for name, port in zip(names, ports[: len(names)], strict=True)
    ]
    try:
        epmd.start()
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            for future in [pool.submit(node.start) for node in nodes]:
                future.result()
        yield nodes
    finally:
        failures: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            for future in [pool.submit(node.stop) for node in nodes]:
                if future.exception() is not None:
                    failures.append(future.exception())  # type: ignore[arg-type]
        try:
            epmd.stop()
        finally:
            if failures:
                raise failures[0]

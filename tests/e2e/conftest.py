"""Session fixtures of the e2e tier: the two brokers (started once, stopped by PID at the end,
even on failure), the compiled JMS reference client, and the two RabbitMQ nodes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.brokers import Broker, ensure_installed, running_brokers
from tests.e2e.jms import JmsKit, compile_client
from tests.e2e.rabbit_nodes import RabbitNode, RabbitTls, make_rabbit_tls, running_rabbit_nodes
from tests.e2e.tls import AMAZON_MQ_OPENWIRE_PORT, TlsMaterial, make_tls


@pytest.fixture(scope="session")
def e2e_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mq-cutover-e2e-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def tls(e2e_root: Path) -> TlsMaterial:
    """The simulated Amazon MQ certificate (see tls.py)."""
    return make_tls(e2e_root / "tls")


@pytest.fixture(scope="session")
def brokers(e2e_root: Path, tls: TlsMaterial) -> Iterator[list[Broker]]:
    """`onprem`, and `amazonmq` standing in for Amazon MQ, with its OpenWire+TLS endpoint."""
    ensure_installed()
    stand_in = {"amazonmq": (tls, AMAZON_MQ_OPENWIRE_PORT)}
    with running_brokers(e2e_root / "brokers", ["onprem", "amazonmq"], stand_in) as started:
        yield started


@pytest.fixture
def fresh(brokers: list[Broker]) -> list[Broker]:
    """Each scenario starts with the on-prem broker running (a previous one stopped it)."""
    onprem = brokers[0]
    if onprem.process is None or onprem.process.poll() is not None:
        onprem.start()
    return brokers


@pytest.fixture(scope="session")
def jms_kit(e2e_root: Path, tls: TlsMaterial) -> JmsKit:
    """The Java reference client, compiled with javac against Debian's ActiveMQ client jars."""
    return JmsKit(compile_client(e2e_root / "jms-classes"), tls)


@pytest.fixture(scope="session")
def rabbit_tls(e2e_root: Path) -> RabbitTls:
    """The simulated Amazon MQ certificate for the RabbitMQ stand-in (PEM; see rabbit_nodes.py)."""
    return make_rabbit_tls(e2e_root / "rabbit-tls")


@pytest.fixture(scope="session")
def rabbit_nodes(e2e_root: Path, rabbit_tls: RabbitTls) -> Iterator[list[RabbitNode]]:
    """RabbitMQ `onprem`, and `amazonmq` standing in for Amazon MQ for RabbitMQ, which also
    serves AMQP over TLS with the simulated certificate (see rabbit_nodes.py: AMQP 5682/5683,
    AMQPS 5685, management 15682/15683, epmd 4379); every process is stopped by PID at the end
    of the session, even on failure."""
    names, tls = ["onprem", "amazonmq"], {"amazonmq": rabbit_tls}
    with running_rabbit_nodes(e2e_root / "rabbit", names, tls=tls) as started:
        yield started


@pytest.fixture
def fresh_rabbit(rabbit_nodes: list[RabbitNode]) -> list[RabbitNode]:
    """Both RabbitMQ nodes running (a previous scenario may have stopped one), with nothing on
    them but the defaults: no queues, exchanges, policies, shovels, other vhosts or users."""
    for node in rabbit_nodes:
        if not node.running:
            node.start()
        node.reset_topology()
    return rabbit_nodes

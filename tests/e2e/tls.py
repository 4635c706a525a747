"""Simulated Amazon MQ TLS and DNS for the JMS clients of the end-to-end tier.

The product hands OpenWire clients Amazon MQ's endpoint, ``ssl://<brokerId>-1.mq.us-east-1.
amazonaws.com:61617``. On this machine (no internet) that host is made to exist, for the JMS
clients only:

- **TLS (simulated certificate)**: ``keytool`` makes a self-signed key pair for
  ``*.mq.us-east-1.amazonaws.com`` (subject alternative name ``DNS:*.mq.us-east-1.amazonaws.
  com``, as Amazon MQ's certificate has). The ``amazonmq`` stand-in broker serves it on
  ``ssl://127.0.0.1:61617``; the client JVMs trust it through ``javax.net.ssl.trustStore``
  (on AWS the certificate is publicly trusted). ActiveMQ clients verify the host name against
  the certificate, so a wrong host fails the handshake here as it would on AWS.
- **DNS (simulated)**: each client JVM runs with ``-Djdk.net.hosts.file=<file>``: the JDK then
  resolves every name from that file only. :class:`HostsFile` starts it with ``localhost`` and
  this machine's name, and adds ``<brokerId>-1`` and ``-2`` as soon as the workflow has
  created the broker (before any client is pointed at it). The JDK reads the file at each
  lookup, so JVMs started earlier see the new names.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

AMAZON_MQ_DOMAIN = "mq.us-east-1.amazonaws.com"
AMAZON_MQ_OPENWIRE_PORT = 61617  # the port in the endpoint the product gives clients
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TlsMaterial:
    """A key store for the stand-in broker and a trust store for the clients (PKCS12)."""

    keystore: Path
    truststore: Path
    password: str = ""

    def jvm_options(self) -> list[str]:
        return [
            f"-Djavax.net.ssl.trustStore={self.truststore}",
            f"-Djavax.net.ssl.trustStorePassword={self.password}",
            "-Djavax.net.ssl.trustStoreType=PKCS12",
        ]


def make_tls(directory: Path) -> TlsMaterial:
    """Generate the simulated Amazon MQ certificate with ``keytool`` (a few seconds)."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(12)
    keystore, truststore, certificate = (
        directory / "amazonmq-keystore.p12",
        directory / "clients-truststore.p12",
        directory / "amazonmq.crt",
    )
    common = ["-storetype", "PKCS12", "-storepass", password]
    for command in (
        [
            "keytool", "-genkeypair", "-alias", "amazonmq", "-keyalg", "RSA", "-keysize", "2048",
            "-validity", "7", "-dname", f"CN=*.{AMAZON_MQ_DOMAIN}",
            "-ext", f"SAN=DNS:*.{AMAZON_MQ_DOMAIN}", "-keystore", str(keystore),
            "-keypass", password, *common,
        ],
        [
            "keytool", "-exportcert", "-alias", "amazonmq", "-keystore", str(keystore),
            "-file", str(certificate), *common,
        ],
        [
            "keytool", "-importcert", "-noprompt", "-alias", "amazonmq", "-file",
            str(certificate), "-keystore", str(truststore), *common,
        ],
    ):  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    return TlsMaterial(keystore, truststore, password)


def amazon_mq_hosts(broker_id: str) -> list[str]:
    """The instance host names of an Amazon MQ broker (active/standby has -1 and -2)."""
    return [f"{broker_id}-{index}.{AMAZON_MQ_DOMAIN}" for index in (1, 2)]


class HostsFile:
    """The name table the client JVMs resolve with (``-Djdk.net.hosts.file``): simulated DNS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._names: dict[str, str] = {"localhost": LOOPBACK, socket.gethostname(): LOOPBACK}
        self._write()

    def add(self, names: list[str], address: str = LOOPBACK) -> None:
        with self._lock:
            if all(self._names.get(name) == address for name in names):
                return
            self._names.update(dict.fromkeys(names, address))
            self._write()

    def _write(self) -> None:
        text = "".join(f"{address} {name}\n" for name, address in self._names.items())
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.path)  # a JVM reading it sees the old or the new file, whole

    def jvm_options(self) -> list[str]:
        return [f"-Djdk.net.hosts.file={self.path}"]

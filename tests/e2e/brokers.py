"""Real Apache ActiveMQ brokers on loopback for the end-to-end test tier.

Uses Debian's ``activemq`` package (5.17, no web console, no Jolokia) plus ``libjetty9-java`` and
``libjolokia-core-java``. Each broker gets its own base directory ``root/<name>`` with:

* ``conf/activemq.xml``: the broker (OpenWire + STOMP on 127.0.0.1, persistent KahaDB in
  ``data/``, JMX on the platform MBean server without an RMI connector, no scheduler) and a
  Jetty ``Server`` Spring bean serving ``org.jolokia.http.AgentServlet`` at ``/api/jolokia/*``;
* ``conf/log4j.properties``: Debian's broker logs through slf4j-log4j12 and log4j 1.2, so the
  upstream ``log4j2.properties`` is ignored; ``activemq.jar`` puts ``activemq.conf`` on the
  classpath, which is where log4j 1.2 finds this file;
* ``lib/web/``: symlinks to the Jetty, servlet-api and Jolokia jars. ``activemq.jar`` adds
  ``${activemq.base}/lib/{,camel,optional,web,extra}`` to its class loader when the base differs
  from ``activemq.home``, so nothing under ``/usr/share`` is touched.

With a key store (``make_broker(..., tls=..., ssl_port=61617)``) a broker also serves OpenWire
over TLS: the ``amazonmq`` stand-in does, on the port of Amazon MQ's endpoint (see ``tls.py``
for the simulated certificate and DNS).

Messages survive :meth:`Broker.restart`; JMX counters such as ``EnqueueCount`` start again at 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.tls import TlsMaterial

HOST = "127.0.0.1"
ACTIVEMQ_HOME = Path("/usr/share/activemq")
JAVA_DIR = Path("/usr/share/java")
# Jetty 9.4 server + servlet support and the javax.servlet 4 API it needs, then Jolokia and the
# json-simple it parses requests with. commons-codec is already in activemq's lib/optional.
# fmt: off
WEB_JARS = [
    "jetty9-server.jar", "jetty9-servlet.jar", "jetty9-security.jar", "jetty9-http.jar",
    "jetty9-io.jar", "jetty9-util.jar", "servlet-api.jar", "jolokia-core.jar", "json-simple.jar",
]
BROKER_MBEAN = "org.apache.activemq:type=Broker,brokerName="
QUEUE_ATTRIBUTES = ["QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount", "ConsumerCount"]
# The add-opens flags are the ones upstream's bin/activemq passes on Java 17. This setup (no RMI
# JMX connector) also starts without them; they are kept for the reflective corners of 5.17.
JVM_OPTS = [
    "-Xms64m", "-Xmx256m",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
]
# fmt: on

ACTIVEMQ_XML = """\
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
         http://www.springframework.org/schema/beans/spring-beans.xsd
         http://activemq.apache.org/schema/core
         http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="{name}" useJmx="true"
          persistent="true" schedulerSupport="false" dataDirectory="{base}/data">
    <managementContext><managementContext createConnector="false"/></managementContext>
    <persistenceAdapter><kahaDB directory="{base}/data/kahadb"/></persistenceAdapter>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
      <storeUsage><storeUsage limit="1 gb"/></storeUsage>
      <tempUsage><tempUsage limit="256 mb"/></tempUsage>
    </systemUsage></systemUsage>
{ssl_context}    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{host}:{openwire_port}"/>
      <transportConnector name="stomp" uri="stomp://{host}:{stomp_port}"/>
{ssl_connector}    </transportConnectors>
  </broker>
  <bean id="jolokia" class="org.eclipse.jetty.server.Server"
        init-method="start" destroy-method="stop">
    <constructor-arg><bean class="java.net.InetSocketAddress">
      <constructor-arg type="java.lang.String" value="{host}"/>
      <constructor-arg type="int" value="{jolokia_port}"/>
    </bean></constructor-arg>
    <property name="handler"><bean class="org.eclipse.jetty.servlet.ServletContextHandler">
      <property name="contextPath" value="/api"/>
      <property name="servletHandler"><bean class="org.eclipse.jetty.servlet.ServletHandler">
        <property name="servlets"><list><bean class="org.eclipse.jetty.servlet.ServletHolder">
          <property name="name" value="jolokia"/>
          <property name="className" value="org.jolokia.http.AgentServlet"/>
        </bean></list></property>
        <property name="servletMappings"><list>
          <bean class="org.eclipse.jetty.servlet.ServletMapping">
            <property name="servletName" value="jolokia"/>
            <property name="pathSpec" value="/jolokia/*"/>
          </bean>
        </list></property>
      </bean></property>
    </bean></property>
  </bean>
</beans>
"""

# The stand-in for Amazon MQ's OpenWire endpoint (see tls.py): real TLS with a simulated
# certificate, on the port Amazon MQ's endpoint has.
SSL_CONTEXT = """\
    <sslContext><sslContext keyStore="file:{keystore}" keyStorePassword="{password}"
                            keyStoreType="PKCS12"/></sslContext>
"""
SSL_CONNECTOR = """\
      <transportConnector name="ssl" uri="ssl://{host}:{ssl_port}"/>
"""

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, out
log4j.logger.org.eclipse.jetty=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{ISO8601} %-5p %c{1} - %m%n
"""

_handed_out: set[int] = set()


def ensure_installed() -> None:
    """Raise RuntimeError naming the Debian packages to install if any piece is missing."""
    needed = {
        ACTIVEMQ_HOME / "bin" / "activemq.jar": "activemq",
        JAVA_DIR / "jolokia-core.jar": "libjolokia-core-java",
        JAVA_DIR / "jetty9-server.jar": "libjetty9-java",
        Path("/usr/bin/java"): "default-jre-headless",
    }
    missing = sorted({pkg for path, pkg in needed.items() if not path.exists()})
    if missing:
        raise RuntimeError(f"e2e brokers need Debian packages: apt-get install {' '.join(missing)}")


def free_port() -> int:
    """Return a loopback TCP port that is free now and not handed out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _port_open(port: int) -> bool:
    with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


@dataclass
class Broker:
    """One ActiveMQ JVM rooted at ``base``; see :func:`make_broker`."""

    name: str
    base: Path
    stomp_port: int
    openwire_port: int
    jolokia_port: int
    ssl_port: int = 0  # 0: no ssl:// connector
    process: subprocess.Popen[bytes] | None = None

    @property
    def stomp_address(self) -> tuple[str, int]:
        return (HOST, self.stomp_port)

    @property
    def stomp_url(self) -> str:
        return f"stomp://{HOST}:{self.stomp_port}"

    @property
    def openwire_url(self) -> str:
        return f"tcp://{HOST}:{self.openwire_port}"

    @property
    def jolokia_url(self) -> str:
        return f"http://{HOST}:{self.jolokia_port}/api/jolokia"

    @property
    def log(self) -> Path:
        return self.base / "broker.log"

    def jolokia(self, request: Mapping[str, object], timeout: float = 5) -> dict[str, Any]:
        """POST one Jolokia request; return the decoded JSON reply (check its ``status``)."""
        body = json.dumps(request).encode()
        req = urllib.request.Request(
            self.jolokia_url + "/", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.load(resp))

    def start(self, timeout: float = 60) -> None:
        """Launch the JVM and wait until STOMP accepts connections and Jolokia sees the broker."""
        if self.process is not None and self.process.poll() is None:
            return
        conf = self.base / "conf"
        command = [
            "java", *JVM_OPTS, f"-Djava.io.tmpdir={self.base / 'tmp'}",
            f"-Dactivemq.home={ACTIVEMQ_HOME}", f"-Dactivemq.base={self.base}",
            f"-Dactivemq.conf={conf}", f"-Dactivemq.data={self.base / 'data'}",
            "-jar", str(ACTIVEMQ_HOME / "bin" / "activemq.jar"),
            "start", f"xbean:file:{conf / 'activemq.xml'}",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            # A session of its own makes the JVM leader of a process group: stop() signals it.
            self.process = subprocess.Popen(
                command, cwd=self.base, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        probe = {"type": "read", "mbean": BROKER_MBEAN + self.name, "attribute": "BrokerName"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if _port_open(self.stomp_port):
                with suppress(OSError, ValueError):
                    if self.jolokia(probe, timeout=2).get("status") == 200:
                        return
            time.sleep(0.25)
        code = self.process.poll()
        self.stop()
        raise RuntimeError(
            f"broker {self.name} not ready after {timeout}s (exit code {code}); "
            f"last lines of {self.log}:\n{self.tail()}"
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker's process group, SIGKILL it after ``timeout``. Idempotent."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
                return

    def restart(self, timeout: float = 60) -> None:
        self.stop()
        self.start(timeout)

    def queue_stats(self) -> dict[str, dict[str, int]]:
        """``{queue name: {attribute: value}}`` for every queue, from one Jolokia read."""
        mbean = f"{BROKER_MBEAN}{self.name},destinationType=Queue,destinationName=*"
        reply = self.jolokia({"type": "read", "mbean": mbean, "attribute": QUEUE_ATTRIBUTES})
        if reply.get("status") == 404:  # InstanceNotFoundException: no queue MBean exists yet
            return {}
        if reply.get("status") != 200:
            raise RuntimeError(f"Jolokia read failed on {self.name}: {reply}")
        stats: dict[str, dict[str, int]] = {}
        for object_name, values in (reply.get("value") or {}).items():
            keys = dict(part.split("=", 1) for part in object_name.split(":", 1)[1].split(","))
            stats[keys["destinationName"]] = {k: int(v) for k, v in values.items()}
        return stats

    def purge(self, queues: list[str]) -> dict[str, int]:
        """Remove every message from these queues; ``{queue: messages it held}``."""
        before = self.queue_stats()
        for queue in queues:
            if queue in before:
                mbean = f"{BROKER_MBEAN}{self.name},destinationType=Queue,destinationName={queue}"
                reply = self.jolokia({"type": "exec", "mbean": mbean, "operation": "purge"})
                if reply.get("status") != 200:
                    raise RuntimeError(f"Jolokia purge of {queue} failed on {self.name}: {reply}")
        return {q: before[q]["QueueSize"] for q in queues if q in before}

    def tail(self, lines: int = 40) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def make_broker(root: Path, name: str, tls: TlsMaterial | None = None, ssl_port: int = 0) -> Broker:
    """Write the configuration of broker ``name`` into ``root/name`` (ports picked now). With
    ``tls``, it also serves OpenWire over TLS on ``ssl_port`` with that key store."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"unsafe broker name: {name!r}")
    base = (root / name).resolve()
    broker = Broker(name, base, free_port(), free_port(), free_port())
    ssl_context = ssl_connector = ""
    if tls is not None:
        if _port_open(ssl_port):
            raise RuntimeError(f"{HOST}:{ssl_port} is taken: the {name} stand-in needs it")
        broker.ssl_port = ssl_port
        ssl_context = SSL_CONTEXT.format(keystore=tls.keystore, password=tls.password)
        ssl_connector = SSL_CONNECTOR.format(host=HOST, ssl_port=ssl_port)
    for sub in ("conf", "data", "tmp", "lib/web"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for jar in WEB_JARS:
        link = base / "lib" / "web" / jar
        if not link.is_symlink():
            link.symlink_to(JAVA_DIR / jar)
    ports = {k: v for k, v in vars(broker).items() if k.endswith("_port")}
    ports.pop("ssl_port")
    xml = ACTIVEMQ_XML.format(
        name=name,
        base=base,
        host=HOST,
        ssl_context=ssl_context,
        ssl_connector=ssl_connector,
        **ports,
    )
    (base / "conf" / "activemq.xml").write_text(xml)
    (base / "conf" / "log4j.properties").write_text(LOG4J_PROPERTIES)
    return broker


@contextmanager
def running_brokers(
    root: Path, names: list[str], tls: Mapping[str, tuple[TlsMaterial, int]] | None = None
) -> Iterator[list[Broker]]:
    """Start one broker per name in parallel; always stop every one of them on exit. ``tls``
    gives a broker (by name) an ssl:// connector: its key store and port."""
    ensure_installed()
    tls = tls or {}
    brokers = [make_broker(root, name, *tls.get(name, (None, 0))) for name in names]
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(brokers))) as pool:
            for future in [pool.submit(b.start) for b in brokers]:
                future.result()
        yield brokers
    finally:
        for broker in brokers:
            broker.stop()

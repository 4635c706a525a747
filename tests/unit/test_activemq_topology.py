"""ActiveMQ topology copy: the on-prem destinations read through Jolokia become an Amazon MQ
configuration revision, associated with the broker and applied by a reboot; a second run after
the reboot changes nothing."""

# ruff: noqa: E501 - the recorded Jolokia answers below keep their ObjectNames whole

from __future__ import annotations

import base64
import copy
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from mq_cutover.activemq_topology import (
    AUTHORIZATION_NOTE,
    OnPremDestinations,
    apply,
    configuration_xml,
    jolokia_requests,
    listed_destinations,
    read_destinations,
)
from mq_cutover.broker_api import Endpoint
from mq_cutover.errors import BrokerApiFailed, TopologyCopyFailed

MIGRATION = "orders-2024-q3"

# Recorded from a real broker: Debian's ActiveMQ 5.17.2 with Jolokia 1.7.1 (the e2e tier's
# setup, tests/e2e/brokers.py), answering `jolokia_requests()` after addQueue of "orders",
# "billing in", "weird:name=x,y" and "ünïcode", addTopic of "prices", and a STOMP client that
# sent to /queue/sent.by.stomp and subscribed to a /temp-queue/ (whose advisory topics and
# TempQueue MBean the broker then had). Note the ObjectName of "weird:name=x,y": ActiveMQ encodes
# it, only the Name attribute holds the real name. Only the timestamps were left as they were.
RECORDED = json.loads(
    """[
 {"request": {"mbean": "org.apache.activemq:brokerName=*,type=Broker", "attribute": "BrokerName",
   "type": "read"},
  "value": {"org.apache.activemq:brokerName=onprem,type=Broker": {"BrokerName": "onprem"}},
  "timestamp": 1795822053, "status": 200},
 {"request": {"mbean":
   "org.apache.activemq:brokerName=*,destinationName=*,destinationType=Queue,type=Broker",
   "attribute": "Name", "type": "read"},
  "value": {
   "org.apache.activemq:brokerName=onprem,destinationName=weird_name&amp;x_y,destinationType=Queue,type=Broker": {"Name": "weird:name=x,y"},
   "org.apache.activemq:brokerName=onprem,destinationName=sent.by.stomp,destinationType=Queue,type=Broker": {"Name": "sent.by.stomp"},
   "org.apache.activemq:brokerName=onprem,destinationName=ünïcode,destinationType=Queue,type=Broker": {"Name": "ünïcode"},
   "org.apache.activemq:brokerName=onprem,destinationName=billing in,destinationType=Queue,type=Broker": {"Name": "billing in"},
   "org.apache.activemq:brokerName=onprem,destinationName=orders,destinationType=Queue,type=Broker": {"Name": "orders"}},
  "timestamp": 1795822053, "status": 200},
 {"request": {"mbean":
   "org.apache.activemq:brokerName=*,destinationName=*,destinationType=Topic,type=Broker",
   "attribute": "Name", "type": "read"},
  "value": {
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.MasterBroker,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.MasterBroker"},
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.Queue,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.Queue"},
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.Consumer.Queue.ID_vm-40777-1795822051568-3_3_1,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.Consumer.Queue.ID:vm-40777-1795822051568-3:3:1"},
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.Topic,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.Topic"},
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.TempQueue,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.TempQueue"},
   "org.apache.activemq:brokerName=onprem,destinationName=prices,destinationType=Topic,type=Broker": {"Name": "prices"},
   "org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.Connection,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.Connection"}},
  "timestamp": 1795822053, "status": 200}
]"""
)
# Recorded from the same kind of broker just after it started: no queue MBean exists yet, so
# Jolokia answers the queue pattern with 404 InstanceNotFoundException (stack trace left out).
RECORDED_EMPTY = json.loads(
    """[
 {"request": {"mbean": "org.apache.activemq:brokerName=*,type=Broker", "attribute": "BrokerName",
   "type": "read"},
  "value": {"org.apache.activemq:brokerName=onprem,type=Broker": {"BrokerName": "onprem"}},
  "timestamp": 1795822061, "status": 200},
 {"request": {"mbean":
   "org.apache.activemq:brokerName=*,destinationName=*,destinationType=Queue,type=Broker",
   "attribute": "Name", "type": "read"},
  "error_type": "javax.management.InstanceNotFoundException",
  "error": "javax.management.InstanceNotFoundException : No MBean with pattern org.apache.activemq:type=Broker,brokerName=*,destinationType=Queue,destinationName=* found for reading attributes",
  "status": 404},
 {"request": {"mbean":
   "org.apache.activemq:brokerName=*,destinationName=*,destinationType=Topic,type=Broker",
   "attribute": "Name", "type": "read"},
  "value": {"org.apache.activemq:brokerName=onprem,destinationName=ActiveMQ.Advisory.MasterBroker,destinationType=Topic,type=Broker": {"Name": "ActiveMQ.Advisory.MasterBroker"}},
  "timestamp": 1795822061, "status": 200}
]"""
)


class RecordedJolokia(BaseHTTPRequestHandler):
    """Answers POST /api/jolokia/ with `answer` (a recorded reply), after checking that the
    request is the one `read_destinations` sends, with Basic credentials."""

    answer: ClassVar[Any] = None
    status: ClassVar[int] = 200
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        payload = json.dumps(type(self).answer).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "text/plain")  # what Jolokia's servlet answers with
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def jolokia() -> Iterator[Endpoint]:
    RecordedJolokia.answer = copy.deepcopy(RECORDED)
    RecordedJolokia.status = 200
    RecordedJolokia.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordedJolokia)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/jolokia"
        yield Endpoint(url, "admin", "jolokia-pw")
    finally:
        server.shutdown()
        server.server_close()


def test_read_destinations_from_a_recorded_jolokia_answer(jolokia: Endpoint) -> None:
    found = read_destinations(jolokia, "onprem")
    assert found.broker_name == "onprem"
    assert found.queues == ("billing in", "orders", "sent.by.stomp", "weird:name=x,y", "ünïcode")
    assert found.topics == ("prices",)  # no advisory topic, no temporary destination
    assert found.advisory_topics_skipped == 6
    assert found.authorization == AUTHORIZATION_NOTE
    assert "not readable through Jolokia" in found.as_dict()["authorization"]
    (request,) = RecordedJolokia.requests
    assert request["path"] == "/api/jolokia/"
    assert request["body"] == jolokia_requests()
    token = base64.b64encode(b"admin:jolokia-pw").decode()
    assert request["auth"] == f"Basic {token}"
    # the one broker of the JVM, when the plan does not name it
    assert read_destinations(jolokia, None) == found


def test_a_broker_without_queues_reads_as_empty(jolokia: Endpoint) -> None:
    RecordedJolokia.answer = copy.deepcopy(RECORDED_EMPTY)
    found = read_destinations(jolokia, None)
    assert (found.queues, found.topics, found.advisory_topics_skipped) == ((), (), 1)


def _two_brokers() -> list[dict[str, Any]]:
    """The recorded answer with a second broker in the same JVM (derived: each destination of
    broker "onprem" copied under brokerName=edge with an "edge." prefix)."""
    answer = copy.deepcopy(RECORDED)
    answer[0]["value"]["org.apache.activemq:brokerName=edge,type=Broker"] = {"BrokerName": "edge"}
    for reply in answer[1:]:
        for object_name, attributes in list(reply["value"].items()):
            edge = object_name.replace("brokerName=onprem", "brokerName=edge")
            reply["value"][edge] = {"Name": "edge." + attributes["Name"]}
    return answer


def test_several_brokers_in_one_jvm(jolokia: Endpoint) -> None:
    RecordedJolokia.answer = _two_brokers()
    with pytest.raises(BrokerApiFailed, match=r"2 brokers in this JVM \(edge, onprem\)"):
        read_destinations(jolokia, None)
    onprem, edge = read_destinations(jolokia, "onprem"), read_destinations(jolokia, "edge")
    assert "orders" in onprem.queues and "edge.orders" not in onprem.queues
    assert edge.queues == tuple(sorted("edge." + q for q in onprem.queues))
    with pytest.raises(BrokerApiFailed, match=r"no broker named 'central' \(found: edge, onprem\)"):
        read_destinations(jolokia, "central")


def test_jolokia_failures_are_named(jolokia: Endpoint) -> None:
    RecordedJolokia.status = 401
    with pytest.raises(BrokerApiFailed, match="on-prem broker API POST /: HTTP 401") as failed:
        read_destinations(jolokia, "onprem")
    assert "jolokia-pw" not in str(failed.value)
    RecordedJolokia.status = 200
    RecordedJolokia.answer = copy.deepcopy(RECORDED)
    RecordedJolokia.answer[1] = {"status": 403, "error": "access denied by jolokia-access.xml"}
    with pytest.raises(BrokerApiFailed, match=r"read failed \(status 403\): access denied"):
        read_destinations(jolokia, "onprem")
    RecordedJolokia.answer = {"status": 200, "value": {}}  # not a bulk answer
    with pytest.raises(BrokerApiFailed, match="did not get a list"):
        read_destinations(jolokia, "onprem")


# --- configuration_xml ---------------------------------------------------------------------

# An Amazon MQ for ActiveMQ configuration a user wrote: an authorization map, a destination
# policy, a plugin, and one destination already listed (kept, although not on-prem).
BASE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<broker xmlns="http://activemq.apache.org/schema/core" schedulePeriodForDestinationPurge="10000">
  <destinationPolicy>
    <policyMap>
      <policyEntries>
        <policyEntry queue="&gt;" gcInactiveDestinations="true" inactiveTimoutBeforeGC="600000"/>
      </policyEntries>
    </policyMap>
  </destinationPolicy>
  <destinations>
    <!-- created at start for the nightly batch -->
    <queue physicalName="batch.nightly"/>
    <tempQueue physicalName="ignored.temp"/>
  </destinations>
  <plugins>
    <authorizationPlugin>
      <map>
        <authorizationMap>
          <authorizationEntries>
            <authorizationEntry admin="admins" read="admins,apps" write="admins,apps" queue="&gt;"/>
            <authorizationEntry admin="admins" read="admins,apps" write="admins" topic="&gt;"/>
          </authorizationEntries>
        </authorizationMap>
      </map>
    </authorizationPlugin>
    <statisticsBrokerPlugin/>
  </plugins>
</broker>
"""
NS = "{http://activemq.apache.org/schema/core}"


def on_prem(queues: list[str], topics: list[str]) -> OnPremDestinations:
    return OnPremDestinations("onprem", tuple(sorted(queues)), tuple(sorted(topics)))


def _without_destinations(xml: str) -> list[tuple[str, dict[str, str], str]]:
    """Every element (tag, attributes, text) except <destinations> and what is in it."""
    root = ET.fromstring(xml.encode())
    skip = set()
    for element in root.iter(f"{NS}destinations"):
        skip.update(id(e) for e in element.iter())
    return [
        (e.tag, dict(e.attrib), (e.text or "").strip())
        for e in root.iter()
        if id(e) not in skip and isinstance(e.tag, str)
    ]


def test_configuration_lists_the_destinations_and_keeps_everything_else() -> None:
    destinations = on_prem(["orders", "billing in", "ünïcode"], ["prices"])
    rendered = configuration_xml(BASE, destinations)
    root = ET.fromstring(rendered.xml.encode())
    (element,) = root.findall(f"{NS}destinations")
    assert [(e.tag.removeprefix(NS), e.get("physicalName")) for e in element] == [
        ("queue", "batch.nightly"),
        ("queue", "billing in"),
        ("queue", "orders"),
        ("queue", "ünïcode"),
        ("topic", "prices"),
        ("tempQueue", "ignored.temp"),
    ]
    assert rendered.not_on_prem == ["queue batch.nightly"]
    assert rendered.refused == []
    assert _without_destinations(rendered.xml) == _without_destinations(BASE)
    assert "<!-- created at start for the nightly batch -->" in rendered.xml  # comments kept
    assert 'xmlns="http://activemq.apache.org/schema/core"' in rendered.xml  # no ns0: prefixes
    # the same input renders the same bytes, and rendering the result again changes nothing
    assert configuration_xml(BASE, destinations).xml == rendered.xml
    assert configuration_xml(rendered.xml, destinations).xml == rendered.xml


def test_destinations_element_goes_where_activemq_orders_it() -> None:
    base = BASE.replace(BASE[BASE.index("  <destinations>") : BASE.index("  <plugins>")], "")
    rendered = configuration_xml(base, on_prem(["orders"], []))
    children = [e.tag.removeprefix(NS) for e in ET.fromstring(rendered.xml.encode())]
    assert children == ["destinationPolicy", "destinations", "plugins"]
    assert (
        '  </destinationPolicy>\n  <destinations>\n    <queue physicalName="orders" />\n'
        "  </destinations>\n  <plugins>" in rendered.xml
    )


def test_names_activemq_would_not_read_as_one_destination_are_refused() -> None:
    destinations = on_prem(
        ["orders", "orders.*", "audit.>", "a,b", "bell\x07", ""], ["prices", "prices.>"]
    )
    rendered = configuration_xml(BASE, destinations)
    assert rendered.refused == [
        "queue with an empty name",
        "queue 'a,b': a comma makes an ActiveMQ composite destination (several names)",
        "queue 'audit.>': * and > are ActiveMQ wildcards (a pattern, not one destination)",
        "queue 'bell\\x07': holds a character XML 1.0 cannot carry",
        "queue 'orders.*': * and > are ActiveMQ wildcards (a pattern, not one destination)",
        "topic 'prices.>': * and > are ActiveMQ wildcards (a pattern, not one destination)",
    ]
    assert listed_destinations(rendered.xml) == {
        "queue": {"batch.nightly", "orders"},
        "topic": {"prices"},
    }


def test_a_doctype_or_no_broker_is_refused() -> None:
    evil = '<?xml version="1.0"?><!DOCTYPE b [<!ENTITY x "y">]><broker>&x;</broker>'
    with pytest.raises(TopologyCopyFailed, match="DOCTYPE"):
        configuration_xml(evil, on_prem(["orders"], []))
    with pytest.raises(TopologyCopyFailed, match="no <broker> element"):
        configuration_xml("<beans/>", on_prem(["orders"], []))
    with pytest.raises(TopologyCopyFailed, match="not XML"):
        configuration_xml("<broker>", on_prem(["orders"], []))


# --- apply, on moto ---------------------------------------------------------------------------


def activemq_broker(mq: Any, configuration: dict[str, Any] | None = None) -> str:
    request: dict[str, Any] = {
        "BrokerName": "orders-mq",
        "EngineType": "ACTIVEMQ",
        "EngineVersion": "5.18",
        "DeploymentMode": "SINGLE_INSTANCE",
        "HostInstanceType": "mq.m5.large",
        "PubliclyAccessible": False,
        "AutoMinorVersionUpgrade": True,
        "Users": [{"Username": "admin", "Password": "x" * 12}],
    }
    if configuration is not None:
        request["Configuration"] = configuration
    return str(mq.create_broker(**request)["BrokerId"])


def revisions(mq: Any, configuration_id: str) -> list[dict[str, Any]]:
    return list(mq.list_configuration_revisions(ConfigurationId=configuration_id)["Revisions"])


def revision_xml(mq: Any, configuration_id: str, revision: int) -> str:
    data = mq.describe_configuration_revision(
        ConfigurationId=configuration_id, ConfigurationRevision=str(revision)
    )["Data"]
    return base64.b64decode(data).decode()


class SimulatedConfigurationLifecycle:
    """Amazon MQ's configuration lifecycle as its documentation gives it, around moto's client:
    SIMULATED. UpdateBroker makes a revision Pending (moto makes it Current at once); RebootBroker
    is accepted only while RUNNING, the broker is then REBOOT_IN_PROGRESS and applies Pending when
    the reboot ends (`finish_reboot`). Optionally a simulated sanitizer removes the queues whose
    name holds `sanitize` from every revision written and answers with warnings, as Amazon MQ does
    with what it does not accept."""

    def __init__(self, mq: Any, sanitize: str | None = None) -> None:
        self.mq = mq
        self.sanitize = sanitize
        self.applied: dict[str, dict[str, Any]] = {}  # broker -> its Current while one is Pending
        self.pending: dict[str, dict[str, Any]] = {}
        self.rebooting: set[str] = set()
        self.calls: list[str] = []

    def describe_broker(self, BrokerId: str) -> dict[str, Any]:
        answer = dict(self.mq.describe_broker(BrokerId=BrokerId))
        configurations = dict(answer["Configurations"])
        if BrokerId in self.pending:
            configurations["Current"] = self.applied[BrokerId]
            configurations["Pending"] = self.pending[BrokerId]
        answer["Configurations"] = configurations
        if BrokerId in self.rebooting:
            answer["BrokerState"] = "REBOOT_IN_PROGRESS"
        return answer

    def update_broker(self, BrokerId: str, Configuration: dict[str, Any]) -> Any:
        self.calls.append("UpdateBroker")
        current = self.describe_broker(BrokerId=BrokerId)["Configurations"]["Current"]
        self.applied.setdefault(BrokerId, current)
        self.pending[BrokerId] = Configuration
        return self.mq.update_broker(BrokerId=BrokerId, Configuration=Configuration)

    def reboot_broker(self, BrokerId: str) -> Any:
        self.calls.append("RebootBroker")
        assert self.describe_broker(BrokerId=BrokerId)["BrokerState"] == "RUNNING"
        self.rebooting.add(BrokerId)
        return self.mq.reboot_broker(BrokerId=BrokerId)

    def finish_reboot(self, broker_id: str) -> None:
        self.rebooting.discard(broker_id)
        self.pending.pop(broker_id, None)
        self.applied.pop(broker_id, None)

    def update_configuration(self, ConfigurationId: str, Data: str, Description: str) -> Any:
        self.calls.append("UpdateConfiguration")
        warnings = []
        if self.sanitize:
            root = ET.fromstring(base64.b64decode(Data))
            for destinations in root.iter(f"{NS}destinations"):
                for queue in list(destinations.iter(f"{NS}queue")):
                    if self.sanitize in (queue.get("physicalName") or ""):
                        destinations.remove(queue)
                        warnings.append(
                            {
                                "ElementName": "queue",
                                "AttributeName": "physicalName",
                                "Reason": "INVALID_ATTRIBUTE_VALUE_REMOVED",
                            }
                        )
            Data = base64.b64encode(ET.tostring(root)).decode()
        answer = dict(
            self.mq.update_configuration(
                ConfigurationId=ConfigurationId, Data=Data, Description=Description
            )
        )
        return {**answer, "Warnings": warnings}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.mq, name)


def test_apply_on_a_broker_with_its_default_configuration(aws: Any) -> None:
    mq = aws("mq")
    broker_id = activemq_broker(mq)  # Amazon MQ (and moto) give it a default configuration
    configuration_id = mq.describe_broker(BrokerId=broker_id)["Configurations"]["Current"]["Id"]
    destinations = on_prem(["orders", "billing in", "orders.*"], ["prices"])

    first = apply(mq, broker_id, destinations, MIGRATION)

    assert first["revisionWritten"] and first["rebootStarted"] and not first["matches"]
    assert first["awaitingReboot"]
    assert (first["configurationId"], first["revision"]) == (configuration_id, 2)
    assert first["counts"] == {"queues": 2, "topics": 1}
    assert first["refused"] == [
        "queue 'orders.*': * and > are ActiveMQ wildcards (a pattern, not one destination)"
    ]
    assert first["refusedCount"] == 1
    assert first["differences"] == ["queue billing in", "queue orders", "topic prices"]
    assert "reboot started" in first["summary"]
    assert first["authorization"] == AUTHORIZATION_NOTE
    (_, latest) = revisions(mq, configuration_id)
    assert MIGRATION in latest["Description"]
    assert listed_destinations(revision_xml(mq, configuration_id, 2)) == {
        "queue": {"billing in", "orders"},
        "topic": {"prices"},
    }
    # the default configuration's destination policy is still there
    assert "gcInactiveDestinations" in revision_xml(mq, configuration_id, 2)
    current = mq.describe_broker(BrokerId=broker_id)["Configurations"]["Current"]
    assert current == {"Id": configuration_id, "Revision": 2}

    # after the reboot (moto: the associated revision is Current at once), nothing to do
    second = apply(mq, broker_id, destinations, MIGRATION)
    assert second["matches"] and not second["revisionWritten"] and not second["rebootStarted"]
    assert not second["awaitingReboot"]
    assert second["differences"] == [] and second["differenceCount"] == 0
    assert second["summary"] == f"2 queues, 1 topics in configuration {configuration_id} revision 2"
    assert len(revisions(mq, configuration_id)) == 2
    json.dumps(second)  # JSON-ready


def test_apply_keeps_an_explicit_configuration_and_its_authorization_map(aws: Any) -> None:
    mq = aws("mq")
    configuration = mq.create_configuration(
        Name="orders-mq-config", EngineType="ACTIVEMQ", EngineVersion="5.18"
    )
    mq.update_configuration(
        ConfigurationId=configuration["Id"],
        Data=base64.b64encode(BASE.encode()).decode(),
        Description="written by hand",
    )
    broker_id = activemq_broker(mq, {"Id": configuration["Id"], "Revision": 2})

    result = apply(mq, broker_id, on_prem(["orders"], ["prices"]), MIGRATION)

    assert result["revision"] == 3 and result["notOnPrem"] == ["queue batch.nightly"]
    written = revision_xml(mq, configuration["Id"], 3)
    assert _without_destinations(written) == _without_destinations(BASE)
    assert "authorizationEntry" in written
    assert listed_destinations(written)["queue"] == {"batch.nightly", "orders"}
    assert apply(mq, broker_id, on_prem(["orders"], ["prices"]), MIGRATION)["matches"]


def test_pending_revision_is_applied_by_the_reboot_then_nothing_more_is_done(aws: Any) -> None:
    mq = SimulatedConfigurationLifecycle(aws("mq"))
    broker_id = activemq_broker(mq.mq)
    configuration_id = mq.describe_broker(BrokerId=broker_id)["Configurations"]["Current"]["Id"]
    destinations = on_prem(["orders"], ["prices"])

    first = apply(mq, broker_id, destinations, MIGRATION)
    assert first["rebootStarted"] and first["revision"] == 2
    assert mq.calls == ["UpdateConfiguration", "UpdateBroker", "RebootBroker"]
    configurations = mq.describe_broker(BrokerId=broker_id)["Configurations"]
    assert configurations["Pending"] == {"Id": configuration_id, "Revision": 2}
    assert configurations["Current"] == {"Id": configuration_id, "Revision": 1}

    # called again while the broker reboots: nothing written, no second reboot
    during = apply(mq, broker_id, destinations, MIGRATION)
    assert not during["matches"] and not during["rebootStarted"] and not during["revisionWritten"]
    assert during["awaitingReboot"]  # the workflow keeps waiting for RUNNING
    assert "REBOOT_IN_PROGRESS" in during["summary"]
    assert during["differences"] == ["queue orders", "topic prices"]
    assert mq.calls == ["UpdateConfiguration", "UpdateBroker", "RebootBroker"]

    mq.finish_reboot(broker_id)
    after = apply(mq, broker_id, destinations, MIGRATION)
    assert after["matches"] and (after["configurationId"], after["revision"]) == (
        configuration_id,
        2,
    )
    assert mq.calls == ["UpdateConfiguration", "UpdateBroker", "RebootBroker"]
    assert len(revisions(mq.mq, configuration_id)) == 2


def test_a_revision_associated_but_never_rebooted_is_rebooted_not_rewritten(aws: Any) -> None:
    mq = SimulatedConfigurationLifecycle(aws("mq"))
    broker_id = activemq_broker(mq.mq)
    destinations = on_prem(["orders"], [])
    apply(mq, broker_id, destinations, MIGRATION)
    mq.rebooting.clear()  # the reboot never happened (say, the call failed after UpdateBroker)
    mq.calls.clear()
    again = apply(mq, broker_id, destinations, MIGRATION)
    assert mq.calls == ["RebootBroker"] and again["rebootStarted"] and not again["matches"]
    assert "associated, not yet applied" in again["summary"]

    # more destinations on-prem meanwhile: a new revision on top of the pending one
    mq.rebooting.clear()
    mq.calls.clear()
    more = apply(mq, broker_id, on_prem(["orders", "refunds"], []), MIGRATION)
    assert mq.calls == ["UpdateConfiguration", "UpdateBroker", "RebootBroker"]
    assert more["revision"] == 3


def test_destinations_amazon_mq_removes_fail_the_copy_before_association(aws: Any) -> None:
    mq = SimulatedConfigurationLifecycle(aws("mq"), sanitize=" ")
    broker_id = activemq_broker(mq.mq)
    with pytest.raises(TopologyCopyFailed) as failed:
        apply(mq, broker_id, on_prem(["orders", "billing in"], []), MIGRATION)
    message = str(failed.value)
    assert "Amazon MQ removed 1 destinations" in message and "queue billing in" in message
    assert "(not associated)" in message
    assert "queue/physicalName: INVALID_ATTRIBUTE_VALUE_REMOVED" in message
    assert mq.calls == ["UpdateConfiguration"]
    assert "Pending" not in mq.describe_broker(BrokerId=broker_id)["Configurations"]


def test_a_thousand_destinations_fit_in_one_revision(aws: Any) -> None:
    mq = aws("mq")
    broker_id = activemq_broker(mq)
    queues = [f"com.example.orders.region-{i % 7}.service-{i:04d}.inbound" for i in range(700)]
    topics = [f"com.example.events.region-{i % 7}.service-{i:04d}.changed" for i in range(300)]
    refused = [f"com.example.wildcard.{i}.>" for i in range(30)]
    result = apply(mq, broker_id, on_prem(queues + refused, topics), MIGRATION)

    assert result["counts"] == {"queues": 700, "topics": 300}
    assert result["differenceCount"] == 1000 and len(result["differences"]) == 20
    assert result["refusedCount"] == 30 and len(result["refused"]) == 20
    # Amazon MQ documents no size limit for a configuration's data (its quotas list 300
    # revisions per configuration); 1,000 destinations make about 85 kB of XML here.
    assert 60_000 < result["configurationBytes"] < 100_000
    written = listed_destinations(revision_xml(mq, result["configurationId"], result["revision"]))
    assert written == {"queue": set(queues), "topic": set(topics)}
    assert len(json.dumps(result)) < 8_000  # the result stays small for the state machine
    assert apply(mq, broker_id, on_prem(queues + refused, topics), MIGRATION)["matches"]


def test_a_rabbitmq_broker_is_not_an_activemq_one(aws: Any) -> None:
    mq = aws("mq")
    broker_id = mq.create_broker(
        BrokerName="rabbit",
        EngineType="RABBITMQ",
        EngineVersion="3.13",
        DeploymentMode="SINGLE_INSTANCE",
        HostInstanceType="mq.m5.large",
        PubliclyAccessible=False,
        AutoMinorVersionUpgrade=True,
        Users=[{"Username": "admin", "Password": "x" * 12}],
    )["BrokerId"]
    with pytest.raises(TopologyCopyFailed, match="runs RABBITMQ, not ActiveMQ"):
        apply(mq, broker_id, on_prem(["orders"], []), MIGRATION)

"""The on-prem ActiveMQ broker's destinations, copied to the Amazon MQ broker as a configuration
revision (issue 14, ActiveMQ's part of the topology copy).

- `read_destinations` reads the on-prem broker's queues and topics through Jolokia: one bulk
  request reads the `Name` attribute of every `destinationType=Queue` and `destinationType=Topic`
  MBean (the MBean's `destinationName` key is encoded by ActiveMQ, `a:b=c,d` becomes
  `a_b&amp;c_d`; `Name` is the real name). Advisory topics (`ActiveMQ.Advisory.*`, the broker's
  own) are left out; temporary destinations are other MBean types (`TempQueue`, `TempTopic`)
  and are never read.
- Authorization entries are NOT read: ActiveMQ 5.x registers no MBean that exposes its
  authorization map (`AuthorizationBroker` implements `SecurityAdminMBean`, which has only
  add/remove operations, and never registers it), so Jolokia cannot read them. The result says
  so; the user copies `<authorizationPlugin>` into the Amazon MQ configuration by hand.
- `configuration_xml` puts the destinations into the Amazon MQ configuration's
  `<broker><destinations>` (queue and topic `physicalName`, both permitted by Amazon MQ), keeping
  every other element of the base revision. Names ActiveMQ would read as something other than
  one destination (wildcards, composites) or that XML cannot carry are refused and listed.
- `apply` writes a new revision only when the broker's configuration lacks a destination,
  associates it (UpdateBroker) and reboots the broker: Amazon MQ applies a configuration
  revision at the next reboot (or maintenance window). Called again after the reboot, it finds
  everything in place and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET  # a DOCTYPE is refused before parsing: no entities
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.broker_api import Endpoint, call
from mq_cutover.errors import BrokerApiFailed, TopologyCopyFailed

ACTIVEMQ_NAMESPACE = "http://activemq.apache.org/schema/core"
ADVISORY_PREFIX = "ActiveMQ.Advisory."
AUTHORIZATION_NOTE = (
    "authorization entries: not readable through Jolokia (ActiveMQ exposes no MBean for its "
    "authorization map); copy them by hand into the Amazon MQ configuration's "
    "<authorizationPlugin>"
)
LIST_LIMIT = 20  # lists in a result are cut to this many; the counts say how many there are
# ActiveMQ's elements are written without a prefix, as Amazon MQ's own revisions are (ElementTree
# keeps the registration in a module-wide map; it only concerns this namespace).
ET.register_namespace("", ACTIVEMQ_NAMESPACE)
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Characters XML 1.0 can carry (escaped or not); anything else cannot be in a physicalName.
_XML_CHAR = re.compile("^[\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")
_DOCTYPE = re.compile(r"<!DOCTYPE", re.IGNORECASE)


@dataclass(frozen=True)
class OnPremDestinations:
    """What `read_destinations` found on the on-prem broker (names sorted)."""

    broker_name: str
    queues: tuple[str, ...]
    topics: tuple[str, ...]
    advisory_topics_skipped: int = 0
    authorization: str = AUTHORIZATION_NOTE

    def as_dict(self) -> dict[str, Any]:
        return {
            "brokerName": self.broker_name,
            "counts": {"queues": len(self.queues), "topics": len(self.topics)},
            "queues": list(self.queues[:LIST_LIMIT]),
            "topics": list(self.topics[:LIST_LIMIT]),
            "advisoryTopicsSkipped": self.advisory_topics_skipped,
            "authorization": self.authorization,
        }


@dataclass(frozen=True)
class Rendered:
    """An Amazon MQ configuration with the destinations in it."""

    xml: str
    refused: list[str]
    queues: tuple[str, ...] = ()  # what the rendered <destinations> lists (on-prem and the base's)
    topics: tuple[str, ...] = ()
    not_on_prem: list[str] = field(default_factory=list)  # kept from the base revision


# --- Reading the on-prem broker ------------------------------------------------------------


def jolokia_requests() -> list[dict[str, Any]]:
    """The one bulk Jolokia request `read_destinations` sends (every broker of the JVM)."""
    pattern = "org.apache.activemq:type=Broker,brokerName=*"
    name = {"attribute": "Name"}
    return [
        {"type": "read", "mbean": pattern, "attribute": "BrokerName"},
        {"type": "read", "mbean": f"{pattern},destinationType=Queue,destinationName=*", **name},
        {"type": "read", "mbean": f"{pattern},destinationType=Topic,destinationName=*", **name},
    ]


def read_destinations(api: Endpoint, broker_name: str | None) -> OnPremDestinations:
    """The on-prem broker's queues and topics, without advisory topics and temporary
    destinations. `broker_name` None: the JVM must hold exactly one broker. Raises
    BrokerApiFailed when Jolokia does not answer as documented or the broker is not there."""
    requests = jolokia_requests()
    answers = call(api, "POST", "/", requests)
    if not isinstance(answers, list) or len(answers) != len(requests):
        raise BrokerApiFailed(f"{api.side} Jolokia: a bulk request did not get a list of answers")
    brokers = _values(api, answers[0], "BrokerName")
    # ObjectName key (as ActiveMQ encodes it) -> the broker's name
    names = {_key(object_name, "brokerName"): value for object_name, value in brokers.items()}
    if broker_name is None:
        if len(names) != 1:
            raise BrokerApiFailed(
                f"{api.side} Jolokia: {len(names)} brokers in this JVM "
                f"({', '.join(sorted(names.values()))}); name the one to copy"
            )
        [(key, chosen)] = names.items()
    else:
        keys = [k for k, v in names.items() if v == broker_name]
        if not keys:
            raise BrokerApiFailed(
                f"{api.side} Jolokia: no broker named {broker_name!r} "
                f"(found: {', '.join(sorted(names.values())) or 'none'})"
            )
        key, chosen = keys[0], broker_name
    queues = _destinations(api, answers[1], key)
    topics = _destinations(api, answers[2], key)
    advisory = [t for t in topics if t.startswith(ADVISORY_PREFIX)]
    return OnPremDestinations(
        broker_name=chosen,
        queues=tuple(sorted(queues)),
        topics=tuple(sorted(set(topics) - set(advisory))),
        advisory_topics_skipped=len(advisory),
    )


def _values(api: Endpoint, answer: Any, attribute: str) -> dict[str, str]:
    """{ObjectName: attribute value} of one pattern read; {} when the pattern matched nothing."""
    if not isinstance(answer, dict):
        raise BrokerApiFailed(f"{api.side} Jolokia: answered {type(answer).__name__}, not a reply")
    status = answer.get("status")
    if status == 404 and "InstanceNotFound" in str(answer.get("error_type", "")):
        return {}  # the pattern matched no MBean (a broker without queues, say)
    if status != 200 or not isinstance(answer.get("value"), dict):
        error = str(answer.get("error") or "")[:300]
        raise BrokerApiFailed(f"{api.side} Jolokia read failed (status {status}): {error}")
    found: dict[str, str] = {}
    for object_name, attributes in answer["value"].items():
        if not isinstance(attributes, dict) or not isinstance(attributes.get(attribute), str):
            raise BrokerApiFailed(f"{api.side} Jolokia: {object_name} has no {attribute}")
        found[str(object_name)] = attributes[attribute]
    return found


def _destinations(api: Endpoint, answer: Any, broker_key: str) -> list[str]:
    return [
        name
        for object_name, name in _values(api, answer, "Name").items()
        if _key(object_name, "brokerName") == broker_key
    ]


def _key(object_name: str, key: str) -> str:
    """One key's value of an ObjectName (quoted values unquoted)."""
    _, _, properties = object_name.partition(":")
    for match in re.finditer(r'([^,=]+)=("(?:[^"\\]|\\.)*"|[^,]*)', properties):
        if match.group(1) == key:
            value = match.group(2)
            if value.startswith('"'):
                return re.sub(r"\\(.)", r"\1", value[1:-1])
            return value
    return ""


# --- Rendering the Amazon MQ configuration -------------------------------------------------


def refusal(kind: str, name: str) -> str | None:
    """Why a destination name cannot be one `<queue|topic physicalName>`, or None."""
    if not name:
        return f"{kind} with an empty name"
    if "*" in name or ">" in name:
        return f"{kind} {name!r}: * and > are ActiveMQ wildcards (a pattern, not one destination)"
    if "," in name:
        return f"{kind} {name!r}: a comma makes an ActiveMQ composite destination (several names)"
    if not _XML_CHAR.match(name):
        return f"{kind} {name!r}: holds a character XML 1.0 cannot carry"
    return None


def configuration_xml(base_xml: str, destinations: OnPremDestinations) -> Rendered:
    """`base_xml` (an Amazon MQ for ActiveMQ configuration) with a `<destinations>` element in
    its `<broker>` listing every queue and topic: the on-prem ones plus those the base already
    lists. Everything else of the base is kept. The output is the same for the same input
    (names sorted), so a re-run renders the same bytes."""
    root = _parse(base_xml)
    broker = _broker(root)
    namespace = _namespace(broker.tag)
    refused = []
    wanted: dict[str, set[str]] = {"queue": set(), "topic": set()}
    for kind, names in (("queue", destinations.queues), ("topic", destinations.topics)):
        for name in names:
            reason = refusal(kind, name)
            if reason:
                refused.append(reason)
            else:
                wanted[kind].add(name)

    element = _child(broker, "destinations")
    existing: dict[tuple[str, str], ET.Element] = {}
    others: list[ET.Element] = []  # tempQueue, tempTopic, comments: kept as they are
    if element is None:
        element = ET.Element(_tag(namespace, "destinations"))
        _insert_sorted(broker, element)
    else:
        for child in list(element):
            kind = _local(child.tag) if isinstance(child.tag, str) else ""
            physical = child.get("physicalName")
            if kind in wanted and physical is not None:
                existing[(kind, physical)] = child
            else:
                others.append(child)
            element.remove(child)
    indent = _indent_of(broker)
    entries = []
    for kind in ("queue", "topic"):
        for physical in sorted(wanted[kind] | {n for k, n in existing if k == kind}):
            kept = existing.get((kind, physical))
            entries.append(kept if kept is not None else _new(namespace, kind, physical))
    for child in [*entries, *others]:
        child.tail = indent + "  "
        element.append(child)
    if len(element):
        element.text = indent + "  "
        element[-1].tail = indent
    not_on_prem = sorted(
        f"{kind} {name}" for kind, name in existing if name not in wanted.get(kind, set())
    )
    body = ET.tostring(root, encoding="unicode")
    queues = tuple(sorted(wanted["queue"] | {n for k, n in existing if k == "queue"}))
    topics = tuple(sorted(wanted["topic"] | {n for k, n in existing if k == "topic"}))
    return Rendered(XML_DECLARATION + body + "\n", refused, queues, topics, not_on_prem)


def listed_destinations(configuration_xml_text: str) -> dict[str, set[str]]:
    """{"queue": names, "topic": names} the configuration's `<broker><destinations>` lists."""
    broker = _broker(_parse(configuration_xml_text))
    found: dict[str, set[str]] = {"queue": set(), "topic": set()}
    element = _child(broker, "destinations")
    for child in element if element is not None else []:
        kind = _local(child.tag) if isinstance(child.tag, str) else ""
        name = child.get("physicalName")
        if kind in found and name is not None:
            found[kind].add(name)
    return found


def _parse(text: str) -> ET.Element:
    # A configuration never needs a DOCTYPE; refusing one rules out entity expansion.
    if _DOCTYPE.search(text):
        raise TopologyCopyFailed("the Amazon MQ configuration holds a DOCTYPE: refused")
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # noqa: S314 (see above)
    try:
        parser.feed(text)
        return parser.close()
    except ET.ParseError as exc:
        raise TopologyCopyFailed(f"the Amazon MQ configuration is not XML: {exc}") from None


def _broker(root: ET.Element) -> ET.Element:
    """The `<broker>` element: the root (Amazon MQ's form) or a child of a Spring `<beans>`."""
    if _local(root.tag) == "broker":
        return root
    for child in root:
        if isinstance(child.tag, str) and _local(child.tag) == "broker":
            return child
    raise TopologyCopyFailed("the Amazon MQ configuration has no <broker> element")


def _child(parent: ET.Element, local: str) -> ET.Element | None:
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == local:
            return child
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _tag(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}" if namespace else local


def _new(namespace: str, kind: str, name: str) -> ET.Element:
    return ET.Element(_tag(namespace, kind), {"physicalName": name})


def _indent_of(broker: ET.Element) -> str:
    """The whitespace before the broker's children ("\\n  " in Amazon MQ's default)."""
    text = broker.text or ""
    return text[text.rfind("\n") :] if "\n" in text else "\n  "


def _insert_sorted(broker: ET.Element, element: ET.Element) -> None:
    """Insert `element` before the first child element whose name sorts after it (ActiveMQ's
    schema for <broker> once required its children in alphabetical order), keeping the
    surrounding whitespace as it was."""
    name = _local(element.tag).lower()
    children = list(broker)
    position = len(children)
    for index, child in enumerate(children):
        if isinstance(child.tag, str) and _local(child.tag).lower() > name:
            position = index
            # a comment right before that element belongs to it
            while position > 0 and not isinstance(children[position - 1].tag, str):
                position -= 1
            break
    indent = _indent_of(broker)
    if position == 0:
        element.tail = broker.text or indent
        broker.text = indent
    else:
        previous = children[position - 1]
        element.tail = previous.tail or indent
        previous.tail = indent
    broker.insert(position, element)


# --- Applying it to the Amazon MQ broker ----------------------------------------------------


def apply(
    mq: Any, broker_id: str, destinations: OnPremDestinations, migration_id: str
) -> dict[str, Any]:
    """Make the Amazon MQ broker's configuration list the on-prem destinations.

    - The broker's pending configuration (associated, waiting for a reboot) if it has one, else
      its current one, is the base. When it already lists every destination, nothing is written.
    - Otherwise: a new revision (UpdateConfiguration, its description names the migration),
      read back to see that Amazon MQ kept every destination (it removes what it does not
      accept, and answers with warnings: TopologyCopyFailed names them), then associated
      (UpdateBroker).
    - While a revision waits for its reboot (`awaitingReboot`), the broker is rebooted when it
      is RUNNING (`rebootStarted`); the caller waits for RUNNING again and calls `apply` again,
      which then answers `matches: true` without writing anything.
    """
    broker = _aws(mq.describe_broker, "DescribeBroker", BrokerId=broker_id)
    engine = str(broker.get("EngineType", "")).upper()
    if engine != "ACTIVEMQ":
        raise TopologyCopyFailed(f"broker {broker_id} runs {engine or 'no engine'}, not ActiveMQ")
    configurations = broker.get("Configurations") or {}
    current, pending = configurations.get("Current"), configurations.get("Pending")
    if not current or not current.get("Id"):
        raise TopologyCopyFailed(f"broker {broker_id} reports no configuration")
    if pending and pending.get("Id") and _same(pending, current):
        pending = None
    running_xml = _revision_xml(mq, current)
    target = pending or current
    base_xml = _revision_xml(mq, pending) if pending else running_xml
    rendered = configuration_xml(base_xml, destinations)
    on_prem = accepted(destinations)
    missing = _missing(on_prem, listed_destinations(base_xml))
    written = False
    size = len(rendered.xml.encode())
    if missing:
        target = _write_revision(mq, target["Id"], rendered, destinations, migration_id)
        _aws(
            mq.update_broker,
            "UpdateBroker",
            BrokerId=broker_id,
            Configuration={"Id": target["Id"], "Revision": int(target["Revision"])},
        )
        written = True
    waiting = written or pending is not None
    state = str(broker.get("BrokerState", ""))
    reboot = waiting and state == "RUNNING"
    if reboot:
        _aws(mq.reboot_broker, "RebootBroker", BrokerId=broker_id)
    differences = _missing(on_prem, listed_destinations(running_xml))
    counts = {"queues": len(on_prem["queue"]), "topics": len(on_prem["topic"])}
    where = f"configuration {target['Id']} revision {target['Revision']}"
    what = f"{counts['queues']} queues, {counts['topics']} topics"
    if not waiting and not differences:
        summary = f"{what} in {where}"
    elif written:
        summary = f"{what}: {where} written and associated"
    else:
        summary = f"{what}: {where} associated, not yet applied"
    if waiting:
        summary += (
            "; reboot started (Amazon MQ applies a configuration revision on reboot): call "
            "again once the broker is RUNNING"
            if reboot
            else f"; the broker is {state}: call again once it is RUNNING to reboot it"
        )
    return {
        "engine": "ACTIVEMQ",
        "matches": not waiting and not differences,
        "summary": summary,
        "counts": counts,
        "differences": differences[:LIST_LIMIT],
        "differenceCount": len(differences),
        "refused": rendered.refused[:LIST_LIMIT],
        "refusedCount": len(rendered.refused),
        "notOnPrem": rendered.not_on_prem[:LIST_LIMIT],
        "notOnPremCount": len(rendered.not_on_prem),
        "awaitingReboot": waiting,
        "rebootStarted": reboot,
        "revisionWritten": written,
        "configurationId": target["Id"],
        "revision": int(target["Revision"]),
        "configurationBytes": size,
        "advisoryTopicsSkipped": destinations.advisory_topics_skipped,
        "authorization": destinations.authorization,
    }


def _write_revision(
    mq: Any,
    configuration_id: str,
    rendered: Rendered,
    destinations: OnPremDestinations,
    migration_id: str,
) -> dict[str, Any]:
    """A new revision holding `rendered`; raises TopologyCopyFailed if Amazon MQ dropped any
    destination from it (the revision then stays unassociated)."""
    description = (
        f"mq-cutover {migration_id}: {len(rendered.queues)} queues, {len(rendered.topics)} "
        f"topics from on-prem broker {destinations.broker_name}"
    )[:250]
    size = len(rendered.xml.encode())
    try:
        answer = mq.update_configuration(
            ConfigurationId=configuration_id,
            Data=base64.b64encode(rendered.xml.encode()).decode(),
            Description=description,
        )
    except ClientError as exc:
        raise_if_throttled(exc)
        raise TopologyCopyFailed(
            f"Amazon MQ refused a revision of configuration {configuration_id} "
            f"({len(rendered.queues)} queues, {len(rendered.topics)} topics, {size} bytes): "
            f"{exc.response.get('Error', {}).get('Message') or exc}"
        ) from None
    revision = {"Id": configuration_id, "Revision": int(answer["LatestRevision"]["Revision"])}
    kept = listed_destinations(_revision_xml(mq, revision))
    wanted = {"queue": set(rendered.queues), "topic": set(rendered.topics)}
    lost = _missing(wanted, kept)
    if lost:
        warnings = [
            f"{w.get('ElementName') or '?'}/{w.get('AttributeName') or '-'}: {w.get('Reason')}"
            for w in answer.get("Warnings") or []
        ]
        raise TopologyCopyFailed(
            f"Amazon MQ removed {len(lost)} destinations from configuration {configuration_id} "
            f"revision {revision['Revision']} (not associated): {', '.join(lost[:LIST_LIMIT])}"
            + (f"; its warnings: {'; '.join(warnings[:LIST_LIMIT])}" if warnings else "")
        )
    return revision


def _revision_xml(mq: Any, revision: dict[str, Any]) -> str:
    answer = _aws(
        mq.describe_configuration_revision,
        "DescribeConfigurationRevision",
        ConfigurationId=revision["Id"],
        ConfigurationRevision=str(revision["Revision"]),
    )
    data = str(answer.get("Data") or "")
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        # Amazon MQ documents Data as base64; moto answers an auto-created revision 1 with the
        # XML itself, which cannot be base64 ('<' is not in its alphabet): take it as it is.
        if data.lstrip().startswith("<"):
            return data
        raise TopologyCopyFailed(
            f"configuration {revision['Id']} revision {revision['Revision']}: Data is not base64"
        ) from None


def _aws(method: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return dict(method(**kwargs))
    except ClientError as exc:
        raise_if_throttled(exc)
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        raise TopologyCopyFailed(f"{operation} failed: {message}") from None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("Id") == b.get("Id") and str(a.get("Revision")) == str(b.get("Revision"))


def _missing(wanted: dict[str, set[str]], present: dict[str, set[str]]) -> list[str]:
    return [
        f"{kind} {name}"
        for kind in ("queue", "topic")
        for name in sorted(wanted[kind] - present.get(kind, set()))
    ]


def accepted(destinations: OnPremDestinations) -> dict[str, set[str]]:
    """The on-prem destinations a configuration can list (those `refusal` lets through)."""
    return {
        "queue": {n for n in destinations.queues if refusal("queue", n) is None},
        "topic": {n for n in destinations.topics if refusal("topic", n) is None},
    }

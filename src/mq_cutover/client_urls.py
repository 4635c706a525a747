"""The broker URLs clients get at each step of a cutover (pure functions, no AWS calls)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mq_cutover.plan import Protocol

# The URL scheme Amazon MQ gives each protocol's endpoint.
_SCHEMES = {
    Protocol.OPENWIRE: ("ssl://",),
    Protocol.AMQP: ("amqp+ssl://", "amqps://"),
    Protocol.STOMP: ("stomp+ssl://",),
    Protocol.MQTT: ("mqtt+ssl://",),
    Protocol.WSS: ("wss://",),
}

_FAILOVER = re.compile(r"^failover:\((?P<inner>[^)]*)\)(?:\?(?P<options>.*))?$")


def pick_endpoints(instances: list[dict[str, list[str]]], protocol: Protocol) -> list[str]:
    """One endpoint per broker instance (active/standby has two), for the given protocol."""
    picked: list[str] = []
    for instance in instances:
        for endpoint in instance.get("Endpoints", []):
            if endpoint.startswith(_SCHEMES[protocol]) and endpoint not in picked:
                picked.append(endpoint)
                break
    return picked


def _query(options: Mapping[str, bool | int | float | str], **ours: str) -> str:
    """`?k=v&...` for a failover URL: mq-cutover's own options first, then the plan's."""
    pairs = [f"{name}={value}" for name, value in ours.items()]
    pairs += [
        f"{name}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in options.items()
    ]
    return f"?{'&'.join(pairs)}" if pairs else ""


def broker_url(
    endpoints: list[str],
    protocol: Protocol,
    options: Mapping[str, bool | int | float | str] | None = None,
) -> str:
    """What a client of the new broker connects to.

    OpenWire clients always get the failover transport, also for a single-instance broker: a
    bare `ssl://` connection does not come back by itself after an Amazon MQ maintenance
    reboot. Other protocols have no failover: URI (RabbitMQ's AMQP among them): one endpoint.
    """
    if protocol != Protocol.OPENWIRE:
        return endpoints[0] if len(endpoints) == 1 else failover(endpoints, options)
    return failover(endpoints, options)


def failover(
    members: list[str], options: Mapping[str, bool | int | float | str] | None = None, **ours: str
) -> str:
    return f"failover:({','.join(members)}){_query(options or {}, **ours)}"


def failover_members(url: str) -> list[str]:
    """The URIs inside a failover:(...) URL, or the URL itself."""
    match = _FAILOVER.match(url)
    if not match:
        return [url]
    return [part.strip() for part in match.group("inner").split(",") if part.strip()]


def widened_url(
    on_prem_url: str,
    endpoints: list[str],
    index: int,
    options: Mapping[str, bool | int | float | str] | None = None,
) -> str:
    """Unordered mode: consumer number `index` may read from either broker while producers
    move, and is placed by design: `randomize=false` connects to the first reachable member,
    and the member order alternates by consumer (even: on-prem first, odd: Amazon MQ first),
    so every queue read by two or more consumers has a reader on each broker."""
    on_prem = failover_members(on_prem_url)
    amazon_mq = [e for e in endpoints if e not in on_prem]
    members = on_prem + amazon_mq if index % 2 == 0 else amazon_mq + on_prem
    return failover(members, options, randomize="false")


def narrowed_url(
    endpoints: list[str], options: Mapping[str, bool | int | float | str] | None = None
) -> str:
    """Unordered mode, after drain: consumers only on Amazon MQ (still a failover: URL so that
    clients reconnect through the same transport they were given when widened)."""
    return failover(endpoints, options)

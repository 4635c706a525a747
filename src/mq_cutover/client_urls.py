"""The broker URLs clients get at each step of a cutover (pure functions, no AWS calls)."""

from __future__ import annotations

import re

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


def broker_url(endpoints: list[str], protocol: Protocol) -> str:
    """What a client of the new broker connects to.

    Several ActiveMQ endpoints (active/standby) need the failover transport; a single endpoint
    and any RabbitMQ (AMQP) endpoint are used as they are: AMQP clients have no failover: URI.
    """
    if len(endpoints) == 1 or protocol != Protocol.OPENWIRE:
        return endpoints[0]
    return f"failover:({','.join(endpoints)})"


def failover_members(url: str) -> list[str]:
    """The URIs inside a failover:(...) URL, or the URL itself."""
    match = _FAILOVER.match(url)
    if not match:
        return [url]
    return [part.strip() for part in match.group("inner").split(",") if part.strip()]


def widened_url(on_prem_url: str, endpoints: list[str]) -> str:
    """Unordered mode: consumers may connect to either broker while producers move."""
    members = failover_members(on_prem_url) + [e for e in endpoints if e not in on_prem_url]
    return f"failover:({','.join(members)})?randomize=true"


def narrowed_url(endpoints: list[str]) -> str:
    """Unordered mode, after drain: consumers only on Amazon MQ (still a failover: URL so that
    clients reconnect through the same transport they were given when widened)."""
    return f"failover:({','.join(endpoints)})"

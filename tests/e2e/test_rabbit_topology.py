"""Copy Topology between two real RabbitMQ nodes (issue 14 item 1): `onprem` holds a vhost with
direct, topic and fanout exchanges, durable queues (two matched by a classic mirroring policy),
bindings, a max-length policy and a dynamic shovel; copy_topology makes `amazonmq` (the stand-in
for Amazon MQ for RabbitMQ) carry them, mirrored queues as quorum queues; a second run changes
nothing; the on-prem node is only read; a binding deleted on `amazonmq` is the one difference
compare_topology names."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from mq_cutover.broker_api import Endpoint
from mq_cutover.rabbit_topology import compare_topology, copy_topology
from tests.e2e.rabbit_nodes import RabbitNode

pytestmark = pytest.mark.e2e

VHOST = "mqc-topology"
SHOVEL_SECRET = "shovel-pw-never-shown"  # in the shovel's URI only


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def endpoint(node: RabbitNode, side: str) -> Endpoint:
    user, password = node.credentials
    return Endpoint(node.api_url, user, password, side)


def declare_on_prem(node: RabbitNode) -> None:
    """What an operator made on the old broker, through its management API."""
    v = q(VHOST)
    node.api("PUT", f"/api/vhosts/{v}", {"description": "orders and events"})
    for name, kind in (("orders", "direct"), ("events", "topic"), ("broadcast", "fanout")):
        node.api("PUT", f"/api/exchanges/{v}/{name}", {"type": kind, "durable": True})
    queues: dict[str, dict[str, Any]] = {
        "orders.created": {"x-queue-mode": "lazy"},
        "orders.shipped": {},
        "audit": {},
        "notifications": {"x-message-ttl": 60000},
    }
    for name, arguments in queues.items():
        node.api("PUT", f"/api/queues/{v}/{q(name)}", {"durable": True, "arguments": arguments})
    node.api(
        "PUT",
        f"/api/policies/{v}/ha-orders",
        {
            "pattern": "^orders\\.",
            "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"},
            "apply-to": "queues",
            "priority": 1,
        },
    )
    node.api(
        "PUT",
        f"/api/policies/{v}/audit-limit",
        {"pattern": "^audit$", "definition": {"max-length": 1000}, "apply-to": "queues"},
    )
    bindings = (
        ("orders", "q", "orders.created", "created"),
        ("orders", "q", "orders.shipped", "shipped"),
        ("events", "q", "audit", "#"),
        ("events", "e", "orders", "orders.*"),
        ("broadcast", "q", "notifications", ""),
    )
    for source, kind, destination, key in bindings:
        node.api(
            "POST",
            f"/api/bindings/{v}/e/{q(source)}/{kind}/{q(destination)}",
            {"routing_key": key, "arguments": {}},
        )
    # A dynamic shovel towards a host that never answers (TEST-NET-1): it is only ever a
    # definition here, never a connection.
    node.api(
        "PUT",
        f"/api/parameters/shovel/{v}/audit-archive",
        {
            "value": {
                "src-protocol": "amqp091",
                "src-uri": f"amqp://archiver:{SHOVEL_SECRET}@192.0.2.1:5672",
                "src-queue": "audit",
                "dest-protocol": "amqp091",
                "dest-uri": f"amqp://archiver:{SHOVEL_SECRET}@192.0.2.1:5672",
                "dest-queue": "audit-archive",
                "reconnect-delay": 30,
            }
        },
    )


def snapshot(node: RabbitNode) -> dict[str, Any]:
    """The node's definitions that the copy could touch, users left out (their hashes)."""
    return {
        "vhosts": sorted(v["name"] for v in node.api("GET", "/api/vhosts")),
        "/": node.api("GET", "/api/definitions/%2F"),
        VHOST: node.api("GET", f"/api/definitions/{q(VHOST)}"),
        "permissions": node.api("GET", "/api/permissions"),
    }


def queue_types(node: RabbitNode) -> dict[str, str]:
    return {
        x["name"]: x["type"] for x in node.api("GET", f"/api/queues/{q(VHOST)}?columns=name,type")
    }


def delete_vhost(node: RabbitNode) -> None:
    if any(v["name"] == VHOST for v in node.api("GET", "/api/vhosts")):
        node.api("DELETE", f"/api/vhosts/{q(VHOST)}")


def test_copy_topology_between_two_real_nodes(fresh_rabbit: list[RabbitNode]) -> None:
    onprem, amazonmq = fresh_rabbit
    source, target = endpoint(onprem, "on-prem"), endpoint(amazonmq, "Amazon MQ")
    try:
        declare_on_prem(onprem)
        before = snapshot(onprem)

        first = copy_topology(source, target, [VHOST])

        assert first["matches"] is True, first["differences"]
        assert first["summary"] == "4 queues, 3 exchanges, 5 bindings, 1 policy match on 1 vhost"
        assert first["differences"] == [] and first["differenceCount"] == 0
        assert first["changes"] == [
            f"queue orders.created on {VHOST}: classic mirrored (policy ha-orders) → quorum "
            "(dropped x-queue-mode lazy)",
            f"queue orders.shipped on {VHOST}: classic mirrored (policy ha-orders) → quorum",
            f"policy ha-orders on {VHOST}: only ha-mode, ha-sync-mode → not copied (quorum "
            "queues replicate themselves; Amazon MQ for RabbitMQ 4 has no classic mirroring)",
        ]
        # The shovel, and the grants on the vhost (users come from Secrets Manager).
        grants = [p for p in before["permissions"] if p["vhost"] == VHOST]
        assert first["refusedCount"] == 1 + len(grants)
        assert sorted(r.split(":")[0] for r in first["refused"] if r.startswith("permissions")) == [
            f"permissions of {p['user']} on {VHOST}" for p in grants
        ]
        shovel = [r for r in first["refused"] if r.startswith("shovel audit-archive")]
        assert shovel == [
            f"shovel audit-archive on {VHOST}: not copied (a dynamic shovel names on-prem "
            "hosts; recreate it on Amazon MQ if still needed)"
        ]
        assert SHOVEL_SECRET not in json.dumps(first)

        # The stand-in for Amazon MQ has them, mirrored queues as quorum queues.
        assert queue_types(amazonmq) == {
            "orders.created": "quorum",
            "orders.shipped": "quorum",
            "audit": "classic",
            "notifications": "classic",
        }
        copied = amazonmq.api("GET", f"/api/definitions/{q(VHOST)}")
        assert [(p["name"], p["definition"]) for p in copied["policies"]] == [
            ("audit-limit", {"max-length": 1000})
        ]
        assert copied["parameters"] == []
        assert sorted(e["name"] for e in copied["exchanges"]) == ["broadcast", "events", "orders"]
        assert len(copied["bindings"]) == 5

        # Again: the same result, nothing changed on either side.
        second = copy_topology(source, target, [VHOST])
        assert second == first
        assert amazonmq.api("GET", f"/api/definitions/{q(VHOST)}") == copied
        assert snapshot(onprem) == before

        # As after an import cut short: what is missing is added again, the rest left alone.
        amazonmq.api("DELETE", f"/api/queues/{q(VHOST)}/orders.created")
        amazonmq.api("DELETE", f"/api/policies/{q(VHOST)}/audit-limit")
        assert compare_topology(source, target, [VHOST])["differenceCount"] == 3
        assert copy_topology(source, target, [VHOST]) == first
        assert queue_types(amazonmq)["orders.created"] == "quorum"

        # A binding removed on the Amazon MQ side is the one difference a re-check names.
        amazonmq.api("DELETE", f"/api/bindings/{q(VHOST)}/e/orders/q/orders.shipped/shipped")
        recheck = compare_topology(source, target, [VHOST])
        assert recheck["matches"] is False
        assert recheck["differences"] == [
            f"binding orders → orders.shipped (routing key 'shipped') on {VHOST}: "
            "missing on Amazon MQ"
        ]
        assert recheck["summary"] == (
            f"1 difference: binding orders → orders.shipped (routing key 'shipped') on {VHOST}: "
            "missing on Amazon MQ"
        )
        assert snapshot(onprem) == before
    finally:
        for node in (onprem, amazonmq):
            delete_vhost(node)

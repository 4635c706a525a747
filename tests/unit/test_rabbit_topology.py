"""Copying a RabbitMQ topology to Amazon MQ (issue 14 item 1): transform and compare on a
realistic RabbitMQ 3.x export; export, import and copy against a simulated management API served
over real HTTP on loopback (the e2e tier runs the same against two real RabbitMQ nodes)."""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mq_cutover.broker_api import Endpoint
from mq_cutover.errors import TopologyCopyFailed
from mq_cutover.rabbit_topology import (
    LIST_LIMIT,
    Comparison,
    compare,
    compare_topology,
    copy_topology,
    export_definitions,
    import_definitions,
    normalise,
    result,
    transform,
)

SHOVEL_PASSWORD = "shovel-s3cret"  # must never appear in a result


def on_prem_export() -> dict[str, Any]:
    """A RabbitMQ 3.10 cluster-wide export (GET /api/definitions) as an on-prem broker has it."""
    return {
        "rabbit_version": "3.10.8",
        "rabbitmq_version": "3.10.8",
        "product_name": "RabbitMQ",
        "product_version": "3.10.8",
        "users": [
            {
                "name": "admin",
                "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
                "limits": {},
            },
            {
                "name": "orders-app",
                "password_hash": "Wm1eXjW4ypb7NpqLDd5MZXHgvI3uKHxAzJsvqnn8pJE3cw9S",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
                "limits": {},
            },
        ],
        "vhosts": [
            {"name": "/", "limits": [], "metadata": {"description": "Default", "tags": []}},
            {"name": "shop", "limits": [], "metadata": {"description": "Shop", "tags": ["prod"]}},
        ],
        "permissions": [
            {"user": "admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
            {
                "user": "orders-app",
                "vhost": "shop",
                "configure": "^orders\\.",
                "write": ".*",
                "read": ".*",
            },
        ],
        "topic_permissions": [
            {
                "user": "orders-app",
                "vhost": "shop",
                "exchange": "events",
                "write": "^orders\\.",
                "read": ".*",
            }
        ],
        "parameters": [
            {
                "value": {
                    "src-protocol": "amqp091",
                    "src-uri": f"amqp://archiver:{SHOVEL_PASSWORD}@rabbit-old.corp:5672/shop",
                    "src-queue": "audit",
                    "dest-protocol": "amqp091",
                    "dest-uri": f"amqp://archiver:{SHOVEL_PASSWORD}@archive.corp:5672",
                    "dest-queue": "audit-archive",
                },
                "vhost": "shop",
                "component": "shovel",
                "name": "audit-to-archive",
            }
        ],
        "global_parameters": [
            {"name": "cluster_name", "value": "rabbit@rabbit-old"},
            {"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-3WJ0Yc9Uq2UaXlYF0q0bNg"},
        ],
        "policies": [
            {
                "vhost": "shop",
                "name": "ha-orders",
                "pattern": "^orders\\.",
                "apply-to": "queues",
                "definition": {"ha-mode": "all", "ha-sync-mode": "automatic", "max-length": 100000},
                "priority": 1,
            },
            {
                "vhost": "shop",
                "name": "ha-all",
                "pattern": ".*",
                "apply-to": "all",
                "definition": {"ha-mode": "exactly", "ha-params": 2},
                "priority": 0,
            },
            {
                "vhost": "shop",
                "name": "lazy-audit",
                "pattern": "^audit$",
                "apply-to": "queues",
                "definition": {"queue-mode": "lazy", "message-ttl": 86400000},
                "priority": 5,
            },
            {
                "vhost": "shop",
                "name": "AWS-DEFAULT-POLICY-SINGLE-INSTANCE",
                "pattern": ".*",
                "apply-to": "all",
                "definition": {"max-length": 5},
                "priority": 0,
            },
        ],
        "queues": [
            {
                "name": "orders.created",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-mode": "lazy", "x-dead-letter-exchange": "orders-dlx"},
            },
            {
                "name": "orders.priority",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-max-priority": 10},
            },
            {
                "name": "orders.dlx-overflow",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "classic", "x-overflow": "reject-publish-dlx"},
            },
            {
                "name": "audit",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "arguments": {},
            },
            {
                "name": "payments",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 5},
            },
            {
                "name": "rpc.reply",
                "vhost": "shop",
                "durable": False,
                "auto_delete": True,
                "arguments": {},
            },
            {
                "name": "session.42",
                "vhost": "shop",
                "durable": True,
                "auto_delete": False,
                "exclusive": True,
                "arguments": {},
            },
            {
                "name": "scratch",
                "vhost": "shop",
                "durable": False,
                "auto_delete": False,
                "arguments": {},
            },
            {
                "name": "legacy",
                "vhost": "/",
                "durable": True,
                "auto_delete": False,
                "arguments": {},
            },
        ],
        "exchanges": [
            _exchange("events", "shop", "topic"),
            _exchange("orders", "shop", "direct"),
            _exchange("orders-dlx", "shop", "fanout"),
            _exchange("delayed", "shop", "x-delayed-message", {"x-delayed-type": "direct"}),
            _exchange("amq.topic", "shop", "topic"),
        ],
        "bindings": [
            _binding("orders", "orders.created", "created", "shop"),
            _binding("events", "audit", "#", "shop"),
            _binding("events", "orders", "orders.*", "shop", kind="exchange"),
            _binding("delayed", "orders.created", "later", "shop"),
            _binding("events", "rpc.reply", "rpc.#", "shop"),
            _binding("amq.topic", "legacy", "legacy.#", "/"),
            _binding("", "audit", "audit", "shop"),
        ],
    }


def _exchange(
    name: str, vhost: str, kind: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": args or {},
    }


def _binding(
    source: str, destination: str, key: str, vhost: str, kind: str = "queue"
) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": key,
        "arguments": {},
    }


def by_name(items: list[dict[str, Any]], name: str, vhost: str = "shop") -> dict[str, Any]:
    found = [i for i in items if i.get("name") == name and i.get("vhost") == vhost]
    assert len(found) == 1, f"{name} on {vhost}: {found}"
    return found[0]


def names(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["name"]) for i in items}


# ---------------------------------------------------------------------------------------------
# transform


def test_users_permissions_and_topic_permissions_are_never_copied_and_are_named() -> None:
    out = transform(on_prem_export())
    assert set(out.definitions) == {"vhosts", "exchanges", "queues", "bindings", "policies"}
    text = json.dumps(out.definitions)
    assert "password_hash" not in text and "orders-app" not in text
    assert out.refused[0].startswith("users (2: admin, orders-app): not copied")
    assert "Secrets Manager" in out.refused[0]
    assert (
        "permissions of orders-app on shop: not copied (configure '^orders\\\\.', write '.*', "
        "read '.*'); grant them on Amazon MQ"
    ) in out.refused
    assert any(
        r.startswith("topic permissions of orders-app on exchange events on shop")
        for r in out.refused
    )


def test_a_classic_mirrored_queue_becomes_quorum_without_its_classic_only_arguments() -> None:
    out = transform(on_prem_export())
    queue = by_name(out.definitions["queues"], "orders.created")
    assert queue["arguments"] == {"x-queue-type": "quorum", "x-dead-letter-exchange": "orders-dlx"}
    assert (
        "queue orders.created on shop: classic mirrored (policy ha-orders) → quorum "
        "(dropped x-queue-mode lazy)"
    ) in out.changes


def test_the_highest_priority_policy_decides_whether_a_queue_is_mirrored() -> None:
    # ha-all (priority 0) matches audit, but lazy-audit (priority 5) is the one that applies.
    out = transform(on_prem_export())
    assert by_name(out.definitions["queues"], "audit")["arguments"] == {}
    assert not any(c.startswith("queue audit on shop") for c in out.changes)
    # Without lazy-audit, ha-all applies and audit becomes quorum.
    document = on_prem_export()
    document["policies"] = [p for p in document["policies"] if p["name"] != "lazy-audit"]
    audit = by_name(transform(document).definitions["queues"], "audit")
    assert audit["arguments"] == {"x-queue-type": "quorum"}


def test_a_priority_queue_stays_classic_and_says_so_in_its_declaration() -> None:
    out = transform(on_prem_export())
    queue = by_name(out.definitions["queues"], "orders.priority")
    assert queue["arguments"] == {"x-max-priority": 10, "x-queue-type": "classic"}
    change = next(c for c in out.changes if c.startswith("queue orders.priority on shop"))
    assert "declared x-queue-type classic" in change
    assert "classic mirrored (policy ha-orders) stays classic" in change
    assert "x-max-priority 10: quorum queues have no x-max-priority" in change


def test_reject_publish_dlx_keeps_a_mirrored_queue_classic() -> None:
    out = transform(on_prem_export())
    queue = by_name(out.definitions["queues"], "orders.dlx-overflow")
    assert queue["arguments"] == {"x-queue-type": "classic", "x-overflow": "reject-publish-dlx"}
    change = next(c for c in out.changes if c.startswith("queue orders.dlx-overflow on shop"))
    assert "declared x-queue-type" not in change  # it already was
    assert "x-overflow reject-publish-dlx: quorum queues do not support it" in change


def test_quorum_queues_are_kept_as_they_are() -> None:
    out = transform(on_prem_export())
    assert by_name(out.definitions["queues"], "payments")["arguments"] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
    }
    assert not any("payments" in c for c in out.changes)


def test_queues_of_a_connection_are_not_copied_nor_their_bindings() -> None:
    out = transform(on_prem_export())
    copied = names(out.definitions["queues"])
    assert {"rpc.reply", "session.42", "scratch"}.isdisjoint(copied)
    assert any(r.startswith("queue rpc.reply on shop: auto-delete") for r in out.refused)
    assert any(r.startswith("queue session.42 on shop: exclusive") for r in out.refused)
    assert any(r.startswith("queue scratch on shop: non-durable") for r in out.refused)
    assert (
        "binding events → rpc.reply (routing key 'rpc.#') on shop: not copied "
        "(queue rpc.reply not copied)"
    ) in out.refused


def test_plugin_exchanges_amazon_mq_lacks_are_refused_and_built_in_ones_never_copied() -> None:
    out = transform(on_prem_export())
    assert names(out.definitions["exchanges"]) == {"events", "orders", "orders-dlx"}
    assert any(
        r.startswith("exchange delayed on shop: type x-delayed-message comes from a plugin")
        for r in out.refused
    )
    assert (
        "binding delayed → orders.created (routing key 'later') on shop: not copied "
        "(exchange delayed not copied)"
    ) in out.refused
    # Bindings from a built-in exchange are copied (it exists on every vhost); the default
    # exchange's are implicit.
    sources = {(b["source"], b["destination"]) for b in out.definitions["bindings"]}
    assert ("amq.topic", "legacy") in sources
    assert ("", "audit") not in sources
    assert ("events", "orders") in sources


def test_a_313_export_with_listed_types_keeps_what_each_queue_is() -> None:
    # RabbitMQ 3.13+ lists each queue's type; a queue declared without one took its vhost's
    # default (quorum here) and keeps that type on Amazon MQ.
    document = on_prem_export()
    document["queues"] = [
        {"name": "by-default", "vhost": "/", "durable": True, "auto_delete": False,
         "arguments": {}, "type": "quorum"},
        {"name": "urgent", "vhost": "/", "durable": True, "auto_delete": False,
         "arguments": {"x-max-priority": 3}, "type": "classic"},
    ]  # fmt: skip
    queues = transform(document).definitions["queues"]
    assert by_name(queues, "by-default", "/")["arguments"] == {"x-queue-type": "quorum"}
    assert by_name(queues, "urgent", "/")["arguments"] == {
        "x-max-priority": 3,
        "x-queue-type": "classic",
    }


def test_consistent_hash_exchanges_are_copied() -> None:
    document = on_prem_export()
    document["exchanges"].append(_exchange("shards", "shop", "x-consistent-hash"))
    assert "shards" in names(transform(document).definitions["exchanges"])


def test_shovels_are_refused_without_repeating_their_uris() -> None:
    out = transform(on_prem_export())
    line = next(r for r in out.refused if r.startswith("shovel audit-to-archive on shop"))
    assert "names on-prem hosts" in line
    everything = json.dumps([out.definitions, out.changes, out.refused])
    assert SHOVEL_PASSWORD not in everything and "rabbit-old.corp" not in everything


def test_policies_lose_mirroring_and_lazy_mode_and_split_for_quorum_queues() -> None:
    out = transform(on_prem_export())
    policies = {p["name"]: p for p in out.definitions["policies"]}
    assert set(policies) == {"ha-orders", "ha-orders-quorum", "lazy-audit"}
    assert policies["ha-orders"]["apply-to"] == "classic_queues"
    assert policies["ha-orders"]["definition"] == {"max-length": 100000}
    assert policies["ha-orders-quorum"] == {
        "name": "ha-orders-quorum",
        "vhost": "shop",
        "pattern": "^orders\\.",
        "apply-to": "quorum_queues",
        "definition": {"max-length": 100000},
        "priority": 2,
    }
    assert policies["lazy-audit"]["definition"] == {"message-ttl": 86400000}
    assert policies["lazy-audit"]["apply-to"] == "queues"
    assert any(
        c.startswith("policy ha-all on shop: only ha-mode, ha-params → not copied")
        for c in out.changes
    )
    assert (
        "policy lazy-audit on shop: queue-mode removed (classic mirroring / lazy mode)"
        in out.changes
    )
    assert any(
        c.startswith("policy ha-orders on shop: split for quorum queue(s) orders.created")
        for c in out.changes
    )
    assert (
        "policy AWS-DEFAULT-POLICY-SINGLE-INSTANCE on shop: the name is reserved for "
        "Amazon MQ's own policies"
    ) in out.refused


def test_without_queue_type_scopes_a_policy_is_kept_whole() -> None:
    document = on_prem_export()
    document["policies"][0]["definition"]["queue-master-locator"] = "min-masters"
    out = transform(document, queue_type_scopes=False)
    policies = {p["name"]: p for p in out.definitions["policies"]}
    assert "ha-orders-quorum" not in policies
    assert policies["ha-orders"]["apply-to"] == "queues"
    assert policies["ha-orders"]["definition"] == {
        "max-length": 100000,
        "queue-master-locator": "min-masters",
    }
    assert (
        "policy ha-orders on shop: does not apply to quorum queue(s) orders.created "
        "(quorum queues do not take queue-master-locator)"
    ) in out.changes


def test_vhosts_keep_description_and_tags() -> None:
    vhosts = transform(on_prem_export()).definitions["vhosts"]
    assert vhosts == [
        {"name": "/", "description": "Default"},
        {"name": "shop", "description": "Shop", "tags": ["prod"]},
    ]


def test_only_the_listed_vhosts_are_transformed_and_the_input_is_not_changed() -> None:
    document = on_prem_export()
    document["vhosts"] = [v for v in document["vhosts"] if v["name"] == "/"]
    before = copy.deepcopy(document)
    out = transform(document)
    assert document == before
    assert names(out.definitions["queues"]) == {"legacy"}
    assert {b["vhost"] for b in out.definitions["bindings"]} == {"/"}
    assert out.definitions["policies"] == []


# ---------------------------------------------------------------------------------------------
# compare


def target_of(expected: dict[str, Any]) -> dict[str, Any]:
    """What a target holds after a faithful import: the same items, as RabbitMQ lists them."""
    actual = copy.deepcopy(expected)
    for queue in actual["queues"]:
        queue["type"] = queue["arguments"].get("x-queue-type", "classic")
    return actual


def test_identical_definitions_match_with_counts() -> None:
    expected = transform(on_prem_export()).definitions
    comparison = compare(expected, target_of(expected))
    assert comparison.differences == []
    assert comparison.matches
    assert (comparison.vhosts, comparison.queues, comparison.exchanges) == (2, 6, 3)
    assert (comparison.bindings, comparison.policies) == (4, 3)


def test_each_difference_is_named() -> None:
    expected = transform(on_prem_export()).definitions
    actual = target_of(expected)
    actual["queues"] = [q for q in actual["queues"] if q["name"] != "audit"]
    created = by_name(actual["queues"], "orders.created")
    created["type"] = "classic"
    del created["arguments"]["x-queue-type"]
    created["arguments"]["x-dead-letter-exchange"] = "elsewhere"
    actual["bindings"] = [b for b in actual["bindings"] if b["destination"] != "orders.created"]
    by_name(actual["exchanges"], "events")["type"] = "direct"
    by_name(actual["policies"], "lazy-audit")["definition"]["message-ttl"] = 1000
    comparison = compare(expected, actual)
    assert sorted(comparison.differences) == sorted(
        [
            "queue audit on shop: missing on Amazon MQ",
            "queue orders.created on shop: type classic on Amazon MQ, quorum expected",
            "queue orders.created on shop: argument x-dead-letter-exchange 'elsewhere' on "
            "Amazon MQ, 'orders-dlx' expected",
            "binding orders → orders.created (routing key 'created') on shop: missing on Amazon MQ",
            "exchange events on shop: type 'direct' on Amazon MQ, 'topic' expected",
            "policy lazy-audit on shop: key message-ttl 1000 on Amazon MQ, 86400000 expected",
        ]
    )
    assert not comparison.matches
    assert comparison.queues == 4


def test_numbers_compare_whatever_their_json_form() -> None:
    assert normalise({"x-max-length": "1000", "a": [1.0, "2"]}) == {
        "x-max-length": 1000,
        "a": [1, 2],
    }
    assert normalise(True) is True and normalise("lazy") == "lazy"
    expected = transform(on_prem_export()).definitions
    actual = target_of(expected)
    by_name(actual["policies"], "ha-orders")["definition"]["max-length"] = "100000"
    by_name(actual["queues"], "payments")["arguments"]["x-delivery-limit"] = 5.0
    assert compare(expected, actual).differences == []


def test_amazon_mq_own_policies_and_its_ha_keys_are_not_differences() -> None:
    expected = transform(on_prem_export()).definitions
    actual = target_of(expected)
    # Amazon MQ's RabbitMQ 3 clusters append ha-mode/ha-sync-mode to custom policies.
    by_name(actual["policies"], "lazy-audit")["definition"].update(
        {"ha-mode": "all", "ha-sync-mode": "automatic"}
    )
    actual["policies"].append(
        {
            "vhost": "shop",
            "name": "AWS-DEFAULT-POLICY-CLUSTER-MULTI-AZ",
            "pattern": ".*",
            "apply-to": "all",
            "definition": {"max-length": 8000000},
            "priority": 1,
        }
    )
    actual["queues"].append(
        {
            "name": "only-here",
            "vhost": "shop",
            "durable": True,
            "auto_delete": False,
            "arguments": {},
        }
    )
    comparison = compare(expected, actual)
    assert comparison.matches
    assert comparison.extra == ["queue only-here on shop: on Amazon MQ only"]


def test_an_untyped_queue_may_take_the_broker_default_type_and_nothing_else() -> None:
    expected = transform(on_prem_export()).definitions
    actual = target_of(expected)
    by_name(actual["queues"], "legacy", "/")["type"] = "quorum"  # Amazon MQ's default
    assert compare(expected, actual).matches
    by_name(actual["queues"], "legacy", "/")["type"] = "stream"
    assert compare(expected, actual).differences == [
        "queue legacy on /: type stream on Amazon MQ, classic or quorum expected"
    ]
    # A declared type is kept to: the queue that stayed classic must not come out quorum.
    by_name(actual["queues"], "legacy", "/")["type"] = "classic"
    by_name(actual["queues"], "orders.priority")["type"] = "quorum"
    assert compare(expected, actual).differences == [
        "queue orders.priority on shop: type quorum on Amazon MQ, classic expected"
    ]


def test_a_missing_vhost_is_named() -> None:
    expected = transform(on_prem_export()).definitions
    actual = target_of(expected)
    actual["vhosts"] = [v for v in actual["vhosts"] if v["name"] != "/"]
    actual["queues"] = [q for q in actual["queues"] if q["vhost"] != "/"]
    actual["bindings"] = [b for b in actual["bindings"] if b["vhost"] != "/"]
    assert compare(expected, actual).differences == [
        "vhost /: missing on Amazon MQ",
        "queue legacy on /: missing on Amazon MQ",
        "binding amq.topic → legacy (routing key 'legacy.#') on /: missing on Amazon MQ",
    ]


def test_the_result_line_for_a_match_and_for_differences() -> None:
    transformed = transform(on_prem_export())
    matched = result(
        Comparison(vhosts=1, queues=3, exchanges=2, bindings=4, policies=1), transformed
    )
    assert matched["summary"] == "3 queues, 2 exchanges, 4 bindings, 1 policy match on 1 vhost"
    assert matched["matches"] is True
    assert matched["changeCount"] == len(transformed.changes)
    assert matched["refusedCount"] == len(transformed.refused)
    differing = result(Comparison(differences=["a", "b", "c", "d", "e"]), transformed)
    assert differing["summary"] == "5 differences: a; b; c; and 2 more"
    assert differing["matches"] is False


# ---------------------------------------------------------------------------------------------
# A simulated RabbitMQ management API (test only), served over HTTP on loopback


class SimulatedRabbitManagementApi:
    """The few management API calls the copy makes, with RabbitMQ's import semantics: a merge
    (existing queues, exchanges and bindings are kept as they are, policies are overwritten),
    unknown exchange types refused with HTTP 400 and RabbitMQ's reason. Records every request."""

    def __init__(self, version: str = "3.13.7", skip_queues: bool = False) -> None:
        self.version = version
        self.skip_queues = skip_queues  # as a node below its target cluster size does
        self.vhosts: dict[str, dict[str, Any]] = {"/": {"name": "/", "tags": []}}
        self.items: dict[str, dict[str, list[dict[str, Any]]]] = {"/": self._empty()}
        self.requests: list[tuple[str, str]] = []
        self.exchange_types = {"direct", "fanout", "topic", "headers"}

    @staticmethod
    def _empty() -> dict[str, list[dict[str, Any]]]:
        return {k: [] for k in ("queues", "exchanges", "bindings", "policies", "parameters")}

    def load(self, document: dict[str, Any]) -> None:
        for vhost in document.get("vhosts") or []:
            self.vhosts[vhost["name"]] = {"name": vhost["name"], "tags": []}
            self.items.setdefault(vhost["name"], self._empty())
        for kind in ("queues", "exchanges", "bindings", "policies", "parameters"):
            for item in document.get(kind) or []:
                vhost = item.get("vhost", "/")
                self.items[vhost][kind].append({k: v for k, v in item.items() if k != "vhost"})

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        parts = [urllib.parse.unquote(p) for p in path.split("/")[2:]]
        if parts == ["overview"]:
            return 200, {"rabbitmq_version": self.version}
        if parts == ["vhosts"] and method == "GET":
            return 200, list(self.vhosts.values())
        if parts[0] == "vhosts" and len(parts) == 2 and method == "PUT":
            self.vhosts[parts[1]] = {"name": parts[1], **body}
            self.items.setdefault(parts[1], self._empty())
            return 201, None
        if parts[0] == "vhosts" and len(parts) == 3:
            return 200, []
        if parts[0] == "definitions" and len(parts) == 2:
            vhost = parts[1]
            if vhost not in self.vhosts:
                return 404, {"error": "Object Not Found", "reason": "Not Found"}
            if method == "GET":
                return 200, {"rabbit_version": self.version, **copy.deepcopy(self.items[vhost])}
            return self._import(vhost, body)
        return 404, {"error": "Object Not Found", "reason": "Not Found"}

    def _import(self, vhost: str, body: dict[str, Any]) -> tuple[int, Any]:
        held = self.items[vhost]
        for exchange in body.get("exchanges") or []:
            if exchange["type"] not in self.exchange_types:
                reason = f"Invalid argument, '{exchange['type']}' is not a valid exchange type"
                return 400, {"error": "bad_request", "reason": reason}
        for exchange in body.get("exchanges") or []:
            if exchange["name"] not in names(held["exchanges"]):
                held["exchanges"].append(exchange)
        for policy in body.get("policies") or []:
            held["policies"] = [p for p in held["policies"] if p["name"] != policy["name"]]
            held["policies"].append(policy)
        if self.skip_queues:
            return 204, None
        for queue in body.get("queues") or []:
            if queue["name"] not in names(held["queues"]):
                kind = queue["arguments"].get("x-queue-type", "classic")
                held["queues"].append({**queue, "type": kind})
        for binding in body.get("bindings") or []:
            if binding not in held["bindings"]:
                held["bindings"].append(binding)
        return 204, None


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(api: SimulatedRabbitManagementApi) -> Endpoint:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = api.handle(self.command, self.path.split("?")[0], body)
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Endpoint(f"http://127.0.0.1:{server.server_port}", "admin", "pw", "simulated")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_export_reads_only_and_never_reads_users(serve: Any) -> None:
    on_prem = SimulatedRabbitManagementApi("3.10.8")
    on_prem.load(on_prem_export())
    exported = export_definitions(serve(on_prem), ["shop"])
    assert {m for m, _ in on_prem.requests} == {"GET"}
    assert not any("/api/users" in p or p == "/api/definitions" for _, p in on_prem.requests)
    assert {q["vhost"] for q in exported["queues"]} == {"shop"}
    assert len(exported["queues"]) == 8
    assert "users" not in exported


def test_export_names_a_vhost_the_broker_lacks(serve: Any) -> None:
    with pytest.raises(TopologyCopyFailed, match="has no vhost nope \\(it has: /\\)"):
        export_definitions(serve(SimulatedRabbitManagementApi()), ["nope"])


def test_import_creates_vhosts_first_and_twice_is_the_same_as_once(serve: Any) -> None:
    target = SimulatedRabbitManagementApi()
    endpoint = serve(target)
    transformed = transform(on_prem_export())
    import_definitions(endpoint, transformed)
    once = copy.deepcopy(target.items)
    creations = [r for r in target.requests if r[0] == "PUT"]
    assert creations == [("PUT", "/api/vhosts/shop")]
    assert target.requests.index(creations[0]) < target.requests.index(
        ("POST", "/api/definitions/shop")
    )
    import_definitions(endpoint, transformed)
    assert target.items == once
    assert [r for r in target.requests if r[0] == "PUT"] == creations  # the vhost exists now
    assert compare(transformed.definitions, export_definitions(endpoint, ["/", "shop"])).matches


def test_a_refused_import_names_rabbitmq_reason(serve: Any) -> None:
    document = on_prem_export()
    document["exchanges"].append(_exchange("shards", "shop", "x-consistent-hash"))
    with pytest.raises(TopologyCopyFailed) as failure:
        import_definitions(serve(SimulatedRabbitManagementApi()), transform(document))
    message = str(failure.value)
    assert "refused the exchanges of vhost shop" in message
    assert "'x-consistent-hash' is not a valid exchange type" in message
    assert "HTTP 400" in message


def test_copy_topology_matches_and_the_old_broker_is_only_read(serve: Any) -> None:
    on_prem = SimulatedRabbitManagementApi("3.10.8")
    on_prem.load(on_prem_export())
    target = SimulatedRabbitManagementApi("3.13.7")
    first = copy_topology(serve(on_prem), serve(target), [])
    assert first["matches"] is True, first["differences"]
    assert first["summary"] == "6 queues, 3 exchanges, 4 bindings, 3 policies match on 2 vhosts"
    assert {m for m, _ in on_prem.requests} == {"GET"}
    again = copy_topology(serve(on_prem), serve(target), [])
    assert again == first
    assert compare_topology(serve(on_prem), serve(target), []) == first


def test_copy_topology_to_an_older_target_keeps_policies_whole(serve: Any) -> None:
    on_prem = SimulatedRabbitManagementApi("3.10.8")
    on_prem.load(on_prem_export())
    target = SimulatedRabbitManagementApi("3.10.8")
    outcome = copy_topology(serve(on_prem), serve(target), ["shop"])
    assert outcome["matches"] is True
    assert {p["name"] for p in target.items["shop"]["policies"]} == {"ha-orders", "lazy-audit"}


def many_queues(count: int) -> dict[str, Any]:
    return {
        "vhosts": [{"name": "/"}],
        "policies": [
            {
                "vhost": "/",
                "name": "ha-all",
                "pattern": ".*",
                "apply-to": "all",
                "definition": {"ha-mode": "all"},
                "priority": 0,
            }
        ],
        "queues": [
            {
                "name": f"queue-{i:04d}-" + "x" * 240,
                "vhost": "/",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-mode": "lazy"},
            }
            for i in range(count)
        ],
        "exchanges": [_exchange("fan", "/", "fanout")],
        "bindings": [_binding("fan", f"queue-{i:04d}-" + "x" * 240, "", "/") for i in range(count)],
    }


def test_the_result_stays_small_with_a_thousand_queues(serve: Any) -> None:
    on_prem = SimulatedRabbitManagementApi("3.10.8")
    on_prem.load(many_queues(1000))
    # A target below its cluster size skips queues and bindings: 2,000 differences.
    target = SimulatedRabbitManagementApi("3.13.7", skip_queues=True)
    outcome = copy_topology(serve(on_prem), serve(target), [])
    assert outcome["matches"] is False
    assert outcome["differenceCount"] == 2000
    assert outcome["changeCount"] == 1001  # 1,000 queues to quorum, 1 policy dropped
    assert len(outcome["differences"]) == LIST_LIMIT
    assert len(outcome["changes"]) == LIST_LIMIT
    entries = outcome["differences"] + outcome["changes"]
    assert all(len(entry) <= 300 for entry in entries)
    assert any(len(entry) == 300 and entry.endswith("...") for entry in entries)  # a cut one
    assert outcome["summary"].startswith("2000 differences: queue queue-0000-")
    assert outcome["summary"].endswith("; and 1997 more")
    assert len(json.dumps(outcome)) < 16_000
    # Imported in batches: 1 request for the exchange, 5 each for queues and bindings.
    assert target.requests.count(("POST", "/api/definitions/%2F")) == 11

"""Copy the on-prem RabbitMQ broker's topology to the Amazon MQ for RabbitMQ broker, then compare
both: export (read only) → transform (pure) → import (merge only) → read the target → compare.

Nothing on-prem is changed: the on-prem side is only ever read (GET). Importing is a merge
([DEFS]: what exists on the target and is not in the document is left alone; queues, exchanges
and bindings that exist are kept as they are; policies are overwritten with the same value), so
running the copy again, or after a partial import, gives the same result.

What each rule rests on (cited at the rule as [KEY]):

- [DEFS] RabbitMQ, "Schema Definition Export and Import" (rabbitmq.com/docs/definitions), the
  HTTP API reference and the management plugin's `rabbit_mgmt_wm_definitions`: GET and POST
  `/api/definitions[/{vhost}]` need the `administrator` tag; a per-vhost export leaves out users
  and the `vhost` field of each item; an import merges; a node with fewer nodes than its target
  cluster size skips queues and bindings without an error (the comparison names them).
- [QQ] RabbitMQ, "Quorum Queues" (rabbitmq.com/docs/quorum-queues): feature matrix (no
  non-durable or exclusive quorum queues, no message priority, lazy mode does not apply, no
  `x-overflow: reject-publish-dlx`) and the policy keys quorum queues adhere to.
- [AMQ-QQ-POLICY] Amazon MQ, "Policy configurations for quorum queues": remove every `ha-*` key
  and `queue-mode`, change `overflow: reject-publish-dlx`; a policy cannot apply to both
  classic mirrored and quorum queues, so quorum queues get their own `apply-to: quorum_queues`
  policy (a RabbitMQ 3.12+ scope; Amazon MQ runs quorum queues on 3.13 and later only).
- [AMQ-DEFAULTS] Amazon MQ, "Broker defaults" and "Applying policies": its own policies are named
  `AWS-DEFAULT-POLICY-*`, `AWS-DEFAULT-QUORUM-QUEUES-POLICY-*`, `ha-all-AWS-OWNED-DO-NOT-DELETE`
  (operator policy `default_operator_policy_AWS_managed`); on RabbitMQ 3 cluster brokers it
  appends `ha-mode`/`ha-sync-mode` to custom policies; it sets its own vhost limits.
- [AMQ-PLUGINS] Amazon MQ, "Plugins": management, shovel (dynamic only), federation, consistent
  hash exchange, JMS topic exchange, ...; no other exchange-type plugin; RabbitMQ 4 on Amazon MQ
  has no local random exchange. RabbitMQ 4 removed classic queue mirroring ("RabbitMQ 4" page).
- [RQM] amazon-mq/rabbitmq-queue-migration (MIGRATION_GUIDE, rqm_compat_checker): a classic
  queue becomes quorum with `x-queue-mode`, `x-queue-master-locator`, `x-queue-version` removed;
  exclusive queues and `x-overflow: reject-publish-dlx` are unsuitable; a policy applies to a
  quorum queue only when quorum queues support every key in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mq_cutover import broker_api
from mq_cutover.broker_api import Endpoint
from mq_cutover.errors import BrokerApiFailed, TopologyCopyFailed

LIST_LIMIT = 20  # entries of each list in the result (the counts say how many there were)
ENTRY_LIMIT = 300  # characters of one entry
SUMMARY_DIFFERENCES = 3  # differences named in the summary line
IMPORT_BATCH = 200  # items per import request (quorum queues take a while each to declare)

KINDS = ("exchanges", "queues", "bindings", "policies")  # what is imported, per vhost

# [AMQ-PLUGINS] exchange types an Amazon MQ broker has: RabbitMQ's own, and the two exchange-type
# plugins Amazon MQ offers. Any other type comes from a plugin it does not run.
AMAZON_MQ_EXCHANGE_TYPES = frozenset(
    {"direct", "fanout", "topic", "headers", "x-consistent-hash", "x-jms-topic"}
)
# [QQ] [RQM] queue arguments that only mean something to classic queues: dropped when a queue
# becomes quorum (quorum queues keep their messages on disk, elect their own leader, have one
# storage version).
CLASSIC_ONLY_ARGUMENTS = ("x-queue-mode", "x-queue-master-locator", "x-queue-version")
# [AMQ-QQ-POLICY] policy keys removed from every copied policy: classic mirroring (gone in
# RabbitMQ 4; Amazon MQ's RabbitMQ 3 clusters add their own) and lazy mode (no effect since
# RabbitMQ 3.12's classic queues v2; quorum queues ignore a policy that holds it).
CLASSIC_ONLY_POLICY_KEYS = frozenset({"queue-mode"})
# [QQ] the policy keys quorum queues adhere to (a policy holding any other key does not apply).
QUORUM_POLICY_KEYS = frozenset(
    {
        "max-length",
        "max-length-bytes",
        "overflow",
        "expires",
        "message-ttl",
        "dead-letter-exchange",
        "dead-letter-routing-key",
        "dead-letter-strategy",
        "max-in-memory-length",
        "max-in-memory-bytes",
        "delivery-limit",
        "queue-leader-locator",
        "target-group-size",
    }
)
# Amazon MQ changes this argument itself ("Best practices for quorum queues": it goes back to a
# replication factor of 3), so it is not compared.
TARGET_OWNED_ARGUMENTS = frozenset({"x-quorum-initial-group-size"})


# ---------------------------------------------------------------------------------------------
# Export


def export_definitions(
    api: Endpoint, vhosts: list[str], *, with_permissions: bool = True
) -> dict[str, Any]:
    """The broker's definitions of `vhosts` (empty: every vhost), read only, as one document of
    the cluster-wide form (each item names its `vhost`). Read per vhost with
    GET /api/definitions/{vhost} [DEFS], so users and their password hashes are never read;
    each vhost's permissions (GET /api/vhosts/{vhost}/permissions, no secrets in them) are, so
    the refusal can name what to grant on Amazon MQ. Needs the `administrator` tag."""
    listed = broker_api.call(api, "GET", "/api/vhosts") or []
    present = {str(v["name"]): v for v in listed if isinstance(v, dict) and "name" in v}
    wanted = list(dict.fromkeys(vhosts)) if vhosts else sorted(present)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise TopologyCopyFailed(
            f"the {api.side} broker has no vhost {', '.join(missing)} "
            f"(it has: {', '.join(sorted(present)) or 'none'})"
        )
    document: dict[str, Any] = {
        "rabbit_version": None,
        "vhosts": [],
        "permissions": [],
        "topic_permissions": [],
        "parameters": [],
        **{kind: [] for kind in KINDS},
    }
    for name in wanted:
        part = broker_api.call(api, "GET", f"/api/definitions/{broker_api.quote(name)}") or {}
        document["rabbit_version"] = part.get("rabbitmq_version") or part.get("rabbit_version")
        document["vhosts"].append(_vhost_entry(present[name]))
        for kind in (*KINDS, "parameters"):
            document[kind].extend({**item, "vhost": name} for item in part.get(kind) or [])
        if with_permissions:
            for kind, path in (
                ("permissions", "permissions"),
                ("topic_permissions", "topic-permissions"),
            ):
                document[kind].extend(_listing(api, f"/api/vhosts/{broker_api.quote(name)}/{path}"))
    return document


def _listing(api: Endpoint, path: str) -> list[dict[str, Any]]:
    """A list the broker may not serve (an older or partial management API): none then."""
    try:
        return list(broker_api.call(api, "GET", path) or [])
    except BrokerApiFailed as exc:
        if ": HTTP 404" in str(exc):
            return []
        raise


def _vhost_entry(listed: dict[str, Any]) -> dict[str, Any]:
    raw = listed.get("metadata")
    metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
    tags = listed.get("tags", metadata.get("tags"))
    entry: dict[str, Any] = {"name": listed["name"]}
    description = listed.get("description") or metadata.get("description")
    if description:
        entry["description"] = description
    if tags:
        entry["tags"] = (
            list(tags) if isinstance(tags, list) else [t for t in str(tags).split(",") if t]
        )
    default_type = listed.get("default_queue_type") or metadata.get("default_queue_type")
    if default_type and default_type != "undefined":
        entry["default_queue_type"] = default_type
    return entry


# ---------------------------------------------------------------------------------------------
# Transform (pure)


@dataclass(frozen=True)
class Transformed:
    """What will be imported (`definitions`: vhosts, exchanges, queues, bindings, policies, each
    item naming its vhost), what was changed on the way, and what is not copied and why."""

    definitions: dict[str, Any]
    changes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def transform(definitions: dict[str, Any], *, queue_type_scopes: bool = True) -> Transformed:
    """The on-prem definitions as the Amazon MQ broker takes them. `queue_type_scopes`: the
    target knows `apply-to: classic_queues / quorum_queues` (RabbitMQ 3.12+; every Amazon MQ
    broker that runs quorum queues), so a policy that reaches quorum queues is split
    [AMQ-QQ-POLICY]; without it such a policy is kept whole and the change says it will not
    apply to them."""
    changes: list[str] = []
    refused: list[str] = []
    _refuse_access(definitions, refused)
    vhosts = [_vhost_entry(v) for v in definitions.get("vhosts") or []]
    names = [str(v["name"]) for v in vhosts]
    out: dict[str, Any] = {"vhosts": vhosts, **{kind: [] for kind in KINDS}}

    for parameter in _in(definitions, "parameters", names):
        refused.append(_parameter_refusal(parameter))

    for vhost in names:
        policies = [p for p in _in(definitions, "policies", names) if p["vhost"] == vhost]
        exchanges = _exchanges(definitions, vhost, names, out, refused)
        queues = _queues(definitions, vhost, names, policies, out, changes, refused)
        _policies(vhost, policies, queues, out, changes, refused, queue_type_scopes)
        _bindings(definitions, vhost, names, exchanges, set(queues), out, refused)
    return Transformed(out, changes, refused)


def _in(definitions: dict[str, Any], kind: str, vhosts: list[str]) -> list[dict[str, Any]]:
    return [i for i in definitions.get(kind) or [] if i.get("vhost", "/") in vhosts]


def _refuse_access(definitions: dict[str, Any], refused: list[str]) -> None:
    """Users, permissions and topic permissions are never copied: the Amazon MQ broker's users
    come from Secrets Manager (the README says what to create and grant)."""
    users = [str(u.get("name")) for u in definitions.get("users") or []]
    if users:
        shown = ", ".join(users[:10]) + (", ..." if len(users) > 10 else "")
        refused.append(
            f"users ({len(users)}: {shown}): not copied - Amazon MQ broker users come from "
            "Secrets Manager; create the ones clients use on Amazon MQ"
        )
    for p in definitions.get("permissions") or []:
        refused.append(
            f"permissions of {p.get('user')} on {p.get('vhost')}: not copied (configure "
            f"{p.get('configure')!r}, write {p.get('write')!r}, read {p.get('read')!r}); "
            "grant them on Amazon MQ"
        )
    for p in definitions.get("topic_permissions") or []:
        refused.append(
            f"topic permissions of {p.get('user')} on exchange {p.get('exchange')} on "
            f"{p.get('vhost')}: not copied (write {p.get('write')!r}, read {p.get('read')!r}); "
            "grant them on Amazon MQ"
        )


def _parameter_refusal(parameter: dict[str, Any]) -> str:
    """Runtime parameters are never copied: shovels and federation upstreams name on-prem hosts
    (their URIs may hold credentials, never repeated here); vhost limits are Amazon MQ's own
    [AMQ-DEFAULTS]; any other component belongs to a plugin the target may not run."""
    component = str(parameter.get("component"))
    where = f"{component} {parameter.get('name')} on {parameter.get('vhost')}"
    if component == "shovel":
        reason = "a dynamic shovel names on-prem hosts; recreate it on Amazon MQ if still needed"
    elif component.startswith("federation"):
        reason = "federation names on-prem hosts; recreate it on Amazon MQ if still needed"
    elif component == "vhost-limits":
        reason = "Amazon MQ sets its own vhost limits for the broker's instance size"
    else:
        reason = "a runtime parameter of a plugin the Amazon MQ broker may not run"
    return f"{where}: not copied ({reason})"


def _builtin_exchange(name: str) -> bool:
    """The default exchange and `amq.*` exist on every vhost; RabbitMQ refuses to declare them."""
    return name == "" or name.startswith("amq.")


def _exchanges(
    definitions: dict[str, Any],
    vhost: str,
    vhosts: list[str],
    out: dict[str, Any],
    refused: list[str],
) -> set[str]:
    copied: set[str] = set()
    for exchange in _in(definitions, "exchanges", vhosts):
        name = str(exchange["name"])
        if exchange["vhost"] != vhost or _builtin_exchange(name):
            continue
        kind = str(exchange.get("type"))
        if kind not in AMAZON_MQ_EXCHANGE_TYPES:  # [AMQ-PLUGINS]
            refused.append(
                f"exchange {name} on {vhost}: type {kind} comes from a plugin Amazon MQ does not "
                "offer (it has direct, fanout, topic, headers, x-consistent-hash, x-jms-topic)"
            )
            continue
        out["exchanges"].append(
            _item(
                exchange,
                ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"),
            )
        )
        copied.add(name)
    return copied


def _item(source: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: source[k] for k in keys if k in source}


def declared_type(queue: dict[str, Any]) -> str | None:
    """The type the queue was declared with (`x-queue-type`); None when the declaration names
    none (the broker's default queue type decides)."""
    declared = (queue.get("arguments") or {}).get("x-queue-type")
    return str(declared) if declared else None


def queue_type(queue: dict[str, Any]) -> str:
    """The type the queue has: the `type` RabbitMQ 3.13+ lists, else its declaration."""
    return str(queue.get("type") or declared_type(queue) or "classic")


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None  # RabbitMQ's PCRE, unanchored
    except re.error:
        return False


def effective_policy(
    policies: list[dict[str, Any]], name: str, scopes: tuple[str, ...]
) -> dict[str, Any] | None:
    """The policy RabbitMQ applies to `name`: the highest priority one whose pattern matches and
    whose apply-to is in `scopes` (only one policy applies to an object)."""
    candidates = [
        p
        for p in policies
        if str(p.get("apply-to", "all")) in scopes and _matches(str(p.get("pattern")), name)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (int(p.get("priority") or 0), str(p.get("name"))))


def _queues(
    definitions: dict[str, Any],
    vhost: str,
    vhosts: list[str],
    policies: list[dict[str, Any]],
    out: dict[str, Any],
    changes: list[str],
    refused: list[str],
) -> dict[str, str | None]:
    """The copied queues of `vhost` and their type on the target."""
    copied: dict[str, str | None] = {}
    for queue in _in(definitions, "queues", vhosts):
        if queue["vhost"] != vhost:
            continue
        name = str(queue["name"])
        where = f"queue {name} on {vhost}"
        # [QQ] [RQM] queues that belong to a connection, or do not outlive a restart, are
        # declared by their clients on whichever broker they connect to.
        if queue.get("exclusive"):
            refused.append(
                f"{where}: exclusive (it belongs to its client's connection; "
                "the client declares it)"
            )
            continue
        if queue.get("auto_delete"):
            refused.append(
                f"{where}: auto-delete (it goes with its last consumer; its client declares it)"
            )
            continue
        if not queue.get("durable", True):
            refused.append(
                f"{where}: non-durable (lost on every restart, so its client declares it)"
            )
            continue
        arguments = dict(queue.get("arguments") or {})
        declared = declared_type(queue)
        if declared is None and queue_type(queue) != "classic":
            # A queue that took a non-classic default type on-prem (RabbitMQ 3.13+) keeps it.
            declared = arguments["x-queue-type"] = queue_type(queue)
        if declared in (None, "classic"):
            arguments, declared = _classic(where, arguments, declared, policies, name, changes)
        out["queues"].append(
            {
                "name": name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": arguments,
            }
        )
        copied[name] = declared
    return copied


def _classic(
    where: str,
    arguments: dict[str, Any],
    declared: str | None,
    policies: list[dict[str, Any]],
    name: str,
    changes: list[str],
) -> tuple[dict[str, Any], str | None]:
    policy = effective_policy(policies, name, ("all", "queues", "classic_queues"))
    definition = (policy or {}).get("definition") or {}
    mirrored = "ha-mode" in definition
    blockers = []  # [QQ] [RQM] what quorum queues cannot hold
    if "x-max-priority" in arguments:
        blockers.append(
            f"x-max-priority {arguments['x-max-priority']}: quorum queues have no x-max-priority"
        )
    if arguments.get("x-overflow") == "reject-publish-dlx":
        blockers.append("x-overflow reject-publish-dlx: quorum queues do not support it")
    if blockers:
        # Kept classic, and said so in its declaration: a broker whose default queue type is
        # quorum (Amazon MQ's) would otherwise refuse it or make it quorum.
        said = []
        if declared is None:
            arguments["x-queue-type"] = "classic"
            said.append("declared x-queue-type classic")
        if mirrored and policy is not None:
            said.append(
                f"classic mirrored (policy {policy.get('name')}) stays classic, and Amazon MQ "
                "for RabbitMQ 4 does not replicate classic queues"
            )
        if said:
            changes.append(f"{where}: {'; '.join(said)} ({'; '.join(blockers)})")
        return arguments, "classic"
    if not mirrored or policy is None:
        return arguments, declared
    dropped = [f"{key} {arguments.pop(key)}" for key in CLASSIC_ONLY_ARGUMENTS if key in arguments]
    arguments["x-queue-type"] = "quorum"
    changes.append(
        f"{where}: classic mirrored (policy {policy.get('name')}) → quorum"
        + (f" (dropped {', '.join(dropped)})" if dropped else "")
    )
    return arguments, "quorum"


def amazon_mq_owned(policy_name: str) -> bool:
    """[AMQ-DEFAULTS] one of Amazon MQ's own policies: never copied over, changed or compared."""
    upper = policy_name.upper()
    return upper.startswith("AWS-") or "AWS-OWNED" in upper or "AWS_MANAGED" in upper


def _policies(
    vhost: str,
    policies: list[dict[str, Any]],
    queues: dict[str, str | None],
    out: dict[str, Any],
    changes: list[str],
    refused: list[str],
    queue_type_scopes: bool,
) -> None:
    names = {str(p.get("name")) for p in policies}
    for policy in policies:
        name = str(policy.get("name"))
        where = f"policy {name} on {vhost}"
        if amazon_mq_owned(name):
            refused.append(f"{where}: the name is reserved for Amazon MQ's own policies")
            continue
        definition = dict(policy.get("definition") or {})
        # [AMQ-QQ-POLICY] classic mirroring and lazy mode go from every policy.
        removed = sorted(
            k for k in definition if k.startswith("ha-") or k in CLASSIC_ONLY_POLICY_KEYS
        )
        for key in removed:
            del definition[key]
        if removed and not definition:
            changes.append(
                f"{where}: only {', '.join(removed)} → not copied (quorum queues replicate "
                "themselves; Amazon MQ for RabbitMQ 4 has no classic mirroring)"
            )
            continue
        if removed:
            changes.append(f"{where}: {', '.join(removed)} removed (classic mirroring / lazy mode)")
        copy = {
            "name": name,
            "vhost": vhost,
            "pattern": policy.get("pattern"),
            "apply-to": policy.get("apply-to", "all"),
            "definition": definition,
            "priority": int(policy.get("priority") or 0),
        }
        reached = sorted(
            q
            for q, kind in queues.items()
            if kind == "quorum" and _matches(str(copy["pattern"]), q)
        )
        if not reached or copy["apply-to"] not in ("all", "queues"):
            out["policies"].append(copy)
            continue
        _split(where, copy, reached, names, out, changes, queue_type_scopes)


def _split(
    where: str,
    copy: dict[str, Any],
    reached: list[str],
    names: set[str],
    out: dict[str, Any],
    changes: list[str],
    queue_type_scopes: bool,
) -> None:
    """[AMQ-QQ-POLICY] a policy that reaches quorum queues: classic queues keep it, quorum queues
    get a copy scoped `quorum_queues` holding only the keys they adhere to."""
    shown = ", ".join(reached[:3]) + (", ..." if len(reached) > 3 else "")
    definition = copy["definition"]
    quorum = {k: v for k, v in definition.items() if k in QUORUM_POLICY_KEYS}
    left_out = sorted(set(definition) - set(quorum))
    if quorum.get("overflow") == "reject-publish-dlx":
        quorum["overflow"] = "reject-publish"
        left_out.append("overflow reject-publish-dlx (quorum copy: reject-publish)")
    quorum_name = f"{copy['name']}-quorum"
    if not queue_type_scopes or not quorum or quorum_name in names:
        out["policies"].append(copy)
        if left_out:
            changes.append(
                f"{where}: does not apply to quorum queue(s) {shown} "
                f"(quorum queues do not take {', '.join(left_out)})"
            )
        return
    if copy["apply-to"] == "queues":
        copy["apply-to"] = "classic_queues"
    out["policies"].append(copy)
    out["policies"].append(
        {
            **copy,
            "name": quorum_name,
            "apply-to": "quorum_queues",
            "definition": quorum,
            "priority": copy["priority"] + 1,
        }
    )
    changes.append(
        f"{where}: split for quorum queue(s) {shown}: {copy['name']} ({copy['apply-to']}) and "
        f"{quorum_name} (quorum_queues, priority {copy['priority'] + 1})"
        + (f", which leaves out {', '.join(left_out)}" if left_out else "")
    )


def _bindings(
    definitions: dict[str, Any],
    vhost: str,
    vhosts: list[str],
    exchanges: set[str],
    queues: set[str],
    out: dict[str, Any],
    refused: list[str],
) -> None:
    for binding in _in(definitions, "bindings", vhosts):
        source = str(binding.get("source"))
        if binding["vhost"] != vhost or source == "":  # default-exchange bindings are implicit
            continue
        destination = str(binding.get("destination"))
        to_queue = binding.get("destination_type", "queue") == "queue"
        missing = []
        if not _builtin_exchange(source) and source not in exchanges:
            missing.append(f"exchange {source}")
        if to_queue and destination not in queues:
            missing.append(f"queue {destination}")
        if not to_queue and not _builtin_exchange(destination) and destination not in exchanges:
            missing.append(f"exchange {destination}")
        if missing:
            refused.append(
                f"{describe_binding(binding)}: not copied ({' and '.join(missing)} not copied)"
            )
            continue
        out["bindings"].append(
            _item(
                binding,
                ("source", "vhost", "destination", "destination_type", "routing_key", "arguments"),
            )
        )


def describe_binding(binding: dict[str, Any]) -> str:
    destination = str(binding.get("destination"))
    if binding.get("destination_type", "queue") != "queue":
        destination = f"exchange {destination}"
    key = binding.get("routing_key", "")
    text = f"binding {binding.get('source')} → {destination} (routing key {key!r}"
    if binding.get("arguments"):
        text += f", arguments {json.dumps(binding['arguments'], sort_keys=True)}"
    return f"{text}) on {binding.get('vhost', '/')}"


# ---------------------------------------------------------------------------------------------
# Import


def import_definitions(api: Endpoint, transformed: Transformed) -> None:
    """Create the vhosts the target lacks (PUT /api/vhosts/{vhost}), then import each vhost's
    exchanges, policies, queues and bindings (POST /api/definitions/{vhost}) [DEFS], in that
    order and in batches of IMPORT_BATCH items, so that no request declares so many quorum
    queues that it outlasts the API call's timeout. A merge: run twice, or after a partial
    import, the result is the same. The target's refusal (HTTP 400) becomes TopologyCopyFailed
    with RabbitMQ's reason."""
    present = {str(v.get("name")) for v in broker_api.call(api, "GET", "/api/vhosts") or []}
    definitions = transformed.definitions
    for vhost in definitions.get("vhosts") or []:
        name = str(vhost["name"])
        path = broker_api.quote(name)
        if name not in present:
            body: dict[str, Any] = {
                k: vhost[k] for k in ("description", "default_queue_type") if k in vhost
            }
            if vhost.get("tags"):
                body["tags"] = ",".join(vhost["tags"])
            _refusable(api, "PUT", f"/api/vhosts/{path}", body, f"creating vhost {name}")
        for kind in ("exchanges", "policies", "queues", "bindings"):
            items = [
                {k: v for k, v in item.items() if k != "vhost"}
                for item in definitions.get(kind) or []
                if item.get("vhost") == name
            ]
            for start in range(0, len(items), IMPORT_BATCH):
                _refusable(
                    api,
                    "POST",
                    f"/api/definitions/{path}",
                    {kind: items[start : start + IMPORT_BATCH]},
                    f"the {kind} of vhost {name}",
                )


def _refusable(api: Endpoint, method: str, path: str, body: Any, what: str) -> None:
    try:
        broker_api.call(api, method, path, body)
    except BrokerApiFailed as exc:
        if ": HTTP 400" in str(exc):
            raise TopologyCopyFailed(f"the {api.side} broker refused {what}: {exc}") from None
        raise


# ---------------------------------------------------------------------------------------------
# Compare


@dataclass(frozen=True)
class Comparison:
    """What was copied, compared with what the target has. `differences` fail the match; `extra`
    (objects only the target has: its own queues, policies, ...) is information, not a failure:
    the copy only adds, and Amazon MQ brings objects of its own."""

    vhosts: int = 0
    queues: int = 0
    exchanges: int = 0
    bindings: int = 0
    policies: int = 0
    differences: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences


def normalise(value: Any) -> Any:
    """A definition value as compared: numbers whatever their JSON form ("1000", 1000, 1000.0),
    lists and objects element by element."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return normalise(float(value))
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    return value


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> Comparison:
    """Compare what was copied (`expected`, a `Transformed.definitions`) with the target's
    definitions of the same vhosts (`export_definitions` of the target). Only what was copied is
    compared; Amazon MQ's own policies are never looked at."""
    differences: list[str] = []
    extra: list[str] = []
    vhosts = [str(v["name"]) for v in expected.get("vhosts") or []]
    found = {str(v["name"]): v for v in actual.get("vhosts") or []}
    matched = {"vhosts": 0}
    for vhost in vhosts:
        if vhost in found:
            matched["vhosts"] += 1
        else:
            differences.append(f"vhost {vhost}: missing on Amazon MQ")
    defaults = {v: str(found.get(v, {}).get("default_queue_type") or "classic") for v in vhosts}
    for kind in ("exchanges", "queues", "policies"):
        mine = {(i.get("vhost"), i.get("name")): i for i in expected.get(kind) or []}
        theirs = {
            (i.get("vhost"), i.get("name")): i
            for i in actual.get(kind) or []
            if i.get("vhost") in vhosts and not _ignored(kind, i)
        }
        matched[kind] = 0
        for key, item in mine.items():
            where = f"{kind[:-1] if kind != 'policies' else 'policy'} {key[1]} on {key[0]}"
            if key not in theirs:
                differences.append(f"{where}: missing on Amazon MQ")
                continue
            found_differences = _differ(kind, item, theirs[key], defaults)
            differences.extend(f"{where}: {d}" for d in found_differences)
            matched[kind] += not found_differences
        singular = "policy" if kind == "policies" else kind[:-1]
        extra.extend(
            f"{singular} {k[1]} on {k[0]}: on Amazon MQ only" for k in theirs if k not in mine
        )
    mine_b = {_binding_key(b): b for b in expected.get("bindings") or []}
    theirs_b = {
        _binding_key(b): b
        for b in actual.get("bindings") or []
        if b.get("vhost") in vhosts and b.get("source") != ""
    }
    matched["bindings"] = sum(1 for k in mine_b if k in theirs_b)
    differences.extend(
        f"{describe_binding(b)}: missing on Amazon MQ"
        for k, b in mine_b.items()
        if k not in theirs_b
    )
    extra.extend(
        f"{describe_binding(b)}: on Amazon MQ only" for k, b in theirs_b.items() if k not in mine_b
    )
    return Comparison(
        vhosts=matched["vhosts"],
        queues=matched["queues"],
        exchanges=matched["exchanges"],
        bindings=matched["bindings"],
        policies=matched["policies"],
        differences=differences,
        extra=extra,
    )


def _differ(
    kind: str, expected: dict[str, Any], actual: dict[str, Any], defaults: dict[str, str]
) -> list[str]:
    if kind == "queues":
        return _differ_queue(expected, actual, defaults)
    if kind == "exchanges":
        return _differ_exchange(expected, actual)
    return _differ_policy(expected, actual)


def _ignored(kind: str, item: dict[str, Any]) -> bool:
    name = str(item.get("name"))
    if kind == "policies":
        return amazon_mq_owned(name)
    return kind == "exchanges" and _builtin_exchange(name)


def _arguments(expected: dict[str, Any], actual: dict[str, Any], skip: frozenset[str]) -> list[str]:
    mine = {k: normalise(v) for k, v in (expected or {}).items() if k not in skip}
    theirs = {k: normalise(v) for k, v in (actual or {}).items() if k not in skip}
    out = []
    for key in sorted(set(mine) | set(theirs)):
        if key not in theirs:
            out.append(f"argument {key} missing on Amazon MQ ({mine[key]!r} expected)")
        elif key not in mine:
            out.append(f"argument {key} {theirs[key]!r} on Amazon MQ only")
        elif mine[key] != theirs[key]:
            out.append(f"argument {key} {theirs[key]!r} on Amazon MQ, {mine[key]!r} expected")
    return out


def _fields(expected: dict[str, Any], actual: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    out = []
    for key, default in fields.items():
        mine, theirs = normalise(expected.get(key, default)), normalise(actual.get(key, default))
        if mine != theirs:
            out.append(f"{key} {theirs!r} on Amazon MQ, {mine!r} expected")
    return out


def _differ_exchange(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    fields = {"type": None, "durable": True, "auto_delete": False, "internal": False}
    return _fields(expected, actual, fields) + _arguments(
        expected.get("arguments") or {}, actual.get("arguments") or {}, frozenset()
    )


def _differ_queue(
    expected: dict[str, Any], actual: dict[str, Any], defaults: dict[str, str]
) -> list[str]:
    out = []
    mine, theirs = declared_type(expected), queue_type(actual)
    # A declaration without a type takes the broker's default queue type: classic, or quorum
    # (Amazon MQ's new brokers, set for the node or for the vhost), as it would for the client.
    allowed = (
        {mine}
        if mine
        else {"classic", "quorum", defaults.get(str(expected.get("vhost")), "classic")}
    )
    if theirs not in allowed:
        out.append(f"type {theirs} on Amazon MQ, {' or '.join(sorted(allowed))} expected")
    out += _fields(expected, actual, {"durable": True, "auto_delete": False})
    return out + _arguments(
        expected.get("arguments") or {},
        actual.get("arguments") or {},
        TARGET_OWNED_ARGUMENTS | {"x-queue-type"},
    )


def _differ_policy(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    out = _fields(expected, actual, {"pattern": None, "apply-to": "all", "priority": 0})
    # [AMQ-DEFAULTS] Amazon MQ's RabbitMQ 3 clusters add ha-mode/ha-sync-mode to custom policies.
    theirs = {k: v for k, v in (actual.get("definition") or {}).items() if not k.startswith("ha-")}
    for difference in _arguments(expected.get("definition") or {}, theirs, frozenset()):
        out.append(difference.replace("argument ", "key ", 1))
    return out


def _binding_key(binding: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(binding.get("vhost")),
        str(binding.get("source")),
        str(binding.get("destination_type", "queue")),
        str(binding.get("destination")),
        str(binding.get("routing_key", "")),
        json.dumps(normalise(binding.get("arguments") or {}), sort_keys=True),
    )


# ---------------------------------------------------------------------------------------------
# The step


def target_knows_queue_type_scopes(api: Endpoint) -> bool:
    """Whether the target takes `apply-to: classic_queues / quorum_queues` (RabbitMQ 3.12+)."""
    overview = broker_api.call(api, "GET", "/api/overview") or {}
    numbers = re.findall(r"\d+", str(overview.get("rabbitmq_version") or ""))[:2]
    if len(numbers) < 2:
        return True  # Amazon MQ runs quorum queues on RabbitMQ 3.13 and later only
    return (int(numbers[0]), int(numbers[1])) >= (3, 12)


def copy_topology(source: Endpoint, target: Endpoint, vhosts: list[str]) -> dict[str, Any]:
    """Export the on-prem definitions, transform them, import them into the Amazon MQ broker,
    read the broker again and compare. Returns the result (`contracts.TopologyResult`); a
    remaining difference is `matches: false`, for the caller to decide. Raises
    TopologyCopyFailed when the target refuses the import, BrokerApiFailed when an API fails."""
    transformed = transform(
        export_definitions(source, vhosts), queue_type_scopes=target_knows_queue_type_scopes(target)
    )
    import_definitions(target, transformed)
    return _compared(target, transformed)


def compare_topology(source: Endpoint, target: Endpoint, vhosts: list[str]) -> dict[str, Any]:
    """The same comparison without importing anything (a later re-check)."""
    transformed = transform(
        export_definitions(source, vhosts), queue_type_scopes=target_knows_queue_type_scopes(target)
    )
    return _compared(target, transformed)


def _compared(target: Endpoint, transformed: Transformed) -> dict[str, Any]:
    names = [str(v["name"]) for v in transformed.definitions["vhosts"]]
    present = {str(v.get("name")) for v in broker_api.call(target, "GET", "/api/vhosts") or []}
    actual = export_definitions(target, [n for n in names if n in present], with_permissions=False)
    return result(compare(transformed.definitions, actual), transformed)


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _bounded(entries: list[str]) -> list[str]:
    return [
        e if len(e) <= ENTRY_LIMIT else e[: ENTRY_LIMIT - 3] + "..." for e in entries[:LIST_LIMIT]
    ]


def result(comparison: Comparison, transformed: Transformed) -> dict[str, Any]:
    """The step's JSON-ready result: lists cut to LIST_LIMIT entries, counts whole."""
    c = comparison
    counts = {
        "vhosts": c.vhosts,
        "queues": c.queues,
        "exchanges": c.exchanges,
        "bindings": c.bindings,
        "policies": c.policies,
        "extraOnAmazonMq": len(c.extra),
    }
    if c.matches:
        summary = (
            f"{_plural(c.queues, 'queue')}, {_plural(c.exchanges, 'exchange')}, "
            f"{_plural(c.bindings, 'binding')}, {_plural(c.policies, 'policy')} match on "
            f"{_plural(c.vhosts, 'vhost')}"
        )
        if c.extra:
            summary += f" ({len(c.extra)} more on Amazon MQ only, not compared)"
    else:
        named = _bounded(c.differences[:SUMMARY_DIFFERENCES])
        more = len(c.differences) - len(named)
        summary = f"{_plural(len(c.differences), 'difference')}: " + "; ".join(named)
        if more:
            summary += f"; and {more} more"
    return {
        "engine": "RABBITMQ",
        "matches": c.matches,
        "summary": summary,
        "counts": counts,
        "differences": _bounded(c.differences),
        "differenceCount": len(c.differences),
        "changes": _bounded(transformed.changes),
        "changeCount": len(transformed.changes),
        "refused": _bounded(transformed.refused),
        "refusedCount": len(transformed.refused),
    }

"""**Simulated** brokers' HTTP APIs for offline runs (moto has no brokers): what Copy Topology
reads and writes, answered in-process.

- A RabbitMQ management API (`SimulatedRabbitApi`): one per broker, a definitions store with
  the real API's semantics for what the product calls: GET/POST `/api/definitions[/{vhost}]`,
  GET `/api/overview`, GET/PUT/DELETE `/api/vhosts/{vhost}` (and GET its `permissions` and
  `topic-permissions`), GET `/api/{queues|exchanges|bindings|policies}[/{vhost}]`,
  GET/PUT/DELETE a queue, an exchange or a policy, and DELETE a binding. No messages: queue
  depths come from the world's simulated metrics.
  **Simulated shovels** (the RabbitMQ no-interruption procedure): GET/PUT/DELETE
  `/api/parameters/shovel/{vhost}[/{name}]`, GET `/api/shovels[/{vhost}]`, GET `/api/whoami`,
  and per-queue message counters for the queues a test gives messages (`publish`,
  `client_ack`): a queue listing then carries `messages`, `consumers` and `message_stats`
  (`publish`, `ack`). Nothing moves by itself: `tick()` moves each shovel's queue, whole, to
  the `SimulatedRabbitApi` registered in `shovel_peers` for the shovel's destination host (its
  credentials checked), as a shovel with ack-mode on-confirm would; a destination it cannot
  reach leaves the shovel `starting`.
- ActiveMQ's Jolokia (`SimulatedJolokia`): the broker's destinations, answering the pattern
  `read`s of the broker's and its destinations' MBeans as Jolokia answers them.

`SimulatedBrokerApis` is a urllib handler: the product's broker calls (`mq_cutover.broker_api`,
through `urllib.request.urlopen`) reach these objects instead of the network while the handler
is installed (`install()`, undone by the returned callable). Every host not simulated still
goes to the network, unchanged.
"""

from __future__ import annotations

import base64
import email.message
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VHOST = "/"
BUILT_IN_EXCHANGES = {
    "": "direct",
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.headers": "headers",
    "amq.match": "headers",
    "amq.topic": "topic",
    "amq.rabbitmq.trace": "topic",
}
KNOWN_EXCHANGE_TYPES = {"direct", "fanout", "topic", "headers"}


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class SimulatedRabbitApi:
    """One RabbitMQ broker's management API (definitions only)."""

    username: str
    password: str = field(repr=False)
    version: str = "3.13.7"
    vhosts: dict[str, dict[str, Any]] = field(default_factory=lambda: {DEFAULT_VHOST: {}})
    queues: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    exchanges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Each request as (method, path), for tests (e.g. "nothing on-prem was written").
    requests: list[tuple[str, str]] = field(default_factory=list)
    # A vhost's default queue type (Amazon MQ RabbitMQ 3.13+: quorum on new brokers).
    default_queue_type: str = "classic"
    # Simulated shovels: the plugin enabled, the API user's tags, the `shovel` runtime
    # parameters {(vhost, name): value}, their states, the brokers they can reach by host.
    shovel_plugin: bool = True
    user_tags: list[str] = field(default_factory=lambda: ["administrator"])
    shovel_parameters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    shovel_state: dict[tuple[str, str], str] = field(default_factory=dict)
    shovel_peers: dict[str, SimulatedRabbitApi] = field(default_factory=dict, repr=False)
    # Simulated message counters of the queues given messages: {(vhost, queue): {"ready",
    # "published", "acked", "clients"}} (clients: consumers other than shovels).
    messages: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    # --- the definitions document ---------------------------------------------------------
    def definitions(self, vhost: str | None = None) -> dict[str, Any]:
        def keep(v: str) -> bool:
            return vhost is None or v == vhost

        def strip(item: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in item.items() if vhost is None or k != "vhost"}

        document: dict[str, Any] = {
            "rabbit_version": self.version,
            "rabbitmq_version": self.version,
            "parameters": [],
            "policies": [strip(p) for (v, _), p in sorted(self.policies.items()) if keep(v)],
            "queues": [strip(q) for (v, _), q in sorted(self.queues.items()) if keep(v)],
            "exchanges": [strip(e) for (v, _), e in sorted(self.exchanges.items()) if keep(v)],
            "bindings": [strip(b) for b in self.bindings if keep(b["vhost"])],
        }
        if vhost is None:
            document.update(
                {
                    "users": [{"name": self.username, "tags": ["administrator"], "limits": {}}],
                    "vhosts": [{"name": v, **meta} for v, meta in sorted(self.vhosts.items())],
                    "permissions": [
                        {
                            "user": self.username,
                            "vhost": v,
                            "configure": ".*",
                            "write": ".*",
                            "read": ".*",
                        }
                        for v in sorted(self.vhosts)
                    ],
                    "topic_permissions": [],
                    "global_parameters": [],
                }
            )
        return document

    def load(self, document: dict[str, Any], vhost: str | None = None) -> None:
        """POST /api/definitions: add or update everything in it (nothing is deleted)."""
        for entry in document.get("vhosts") or []:
            self.vhosts.setdefault(str(entry["name"]), {})
        for policy in document.get("policies") or []:
            self.put_policy(vhost or policy["vhost"], policy["name"], policy)
        for exchange in document.get("exchanges") or []:
            self.put_exchange(vhost or exchange["vhost"], exchange["name"], exchange)
        for queue in document.get("queues") or []:
            self.put_queue(vhost or queue["vhost"], queue["name"], queue)
        for binding in document.get("bindings") or []:
            self.add_binding(vhost or binding["vhost"], binding)

    # --- single objects -------------------------------------------------------------------
    def _vhost(self, vhost: str) -> None:
        if vhost not in self.vhosts:
            raise ApiError(404, f"vhost {vhost} not found")

    def put_queue(self, vhost: str, name: str, body: dict[str, Any]) -> None:
        self._vhost(vhost)
        arguments = dict(body.get("arguments") or {})
        queue_type = arguments.get("x-queue-type", self.default_queue_type)
        durable = bool(body.get("durable", True))
        if queue_type == "quorum" and (not durable or body.get("auto_delete")):
            raise ApiError(400, f"queue '{name}' in vhost '{vhost}': quorum queues are durable")
        existing = self.queues.get((vhost, name))
        wanted = {
            "name": name,
            "vhost": vhost,
            "durable": durable,
            "auto_delete": bool(body.get("auto_delete", False)),
            "arguments": {**arguments, "x-queue-type": queue_type}
            if "x-queue-type" in arguments or queue_type != "classic"
            else arguments,
        }
        if existing is not None and existing["arguments"] != wanted["arguments"]:
            raise ApiError(
                400,
                f"PRECONDITION_FAILED - inequivalent arg for queue '{name}' in vhost '{vhost}'",
            )
        self.queues[(vhost, name)] = wanted

    def put_exchange(self, vhost: str, name: str, body: dict[str, Any]) -> None:
        self._vhost(vhost)
        kind = str(body.get("type", "direct"))
        if kind not in KNOWN_EXCHANGE_TYPES:
            raise ApiError(400, f"invalid exchange type '{kind}'")
        self.exchanges[(vhost, name)] = {
            "name": name,
            "vhost": vhost,
            "type": kind,
            "durable": bool(body.get("durable", True)),
            "auto_delete": bool(body.get("auto_delete", False)),
            "internal": bool(body.get("internal", False)),
            "arguments": dict(body.get("arguments") or {}),
        }

    def put_policy(self, vhost: str, name: str, body: dict[str, Any]) -> None:
        self._vhost(vhost)
        self.policies[(vhost, name)] = {
            "name": name,
            "vhost": vhost,
            "pattern": body["pattern"],
            "apply-to": body.get("apply-to", "all"),
            "definition": dict(body.get("definition") or {}),
            "priority": int(body.get("priority", 0)),
        }

    def add_binding(self, vhost: str, body: dict[str, Any]) -> None:
        self._vhost(vhost)
        binding = {
            "source": body["source"],
            "vhost": vhost,
            "destination": body["destination"],
            "destination_type": body.get("destination_type", "queue"),
            "routing_key": body.get("routing_key", ""),
            "arguments": dict(body.get("arguments") or {}),
        }
        if binding not in self.bindings:
            self.bindings.append(binding)

    def listing(self, kind: str, vhost: str | None) -> list[dict[str, Any]]:
        if vhost is not None:
            self._vhost(vhost)
        source: list[dict[str, Any]]
        if kind == "queues":
            source = [self._queue_row(q) for q in self.queues.values()]
        elif kind == "exchanges":
            source = [
                {
                    "name": n,
                    "vhost": v,
                    "type": t,
                    "durable": True,
                    "auto_delete": False,
                    "internal": False,
                    "arguments": {},
                }
                for v in self.vhosts
                for n, t in BUILT_IN_EXCHANGES.items()
            ] + list(self.exchanges.values())
        elif kind == "bindings":
            source = list(self.bindings)
        else:
            source = list(self.policies.values())
        return [item for item in source if vhost is None or item["vhost"] == vhost]

    # --- simulated messages and shovels ---------------------------------------------------
    def _counters(self, vhost: str, queue: str) -> dict[str, int]:
        if (vhost, queue) not in self.queues:
            raise ApiError(404, f"no queue '{queue}' in vhost '{vhost}'")
        return self.messages.setdefault(
            (vhost, queue), {"ready": 0, "published": 0, "acked": 0, "clients": 0}
        )

    def publish(self, vhost: str, queue: str, count: int = 1) -> None:
        counters = self._counters(vhost, queue)
        counters["ready"] += count
        counters["published"] += count

    def client_ack(self, vhost: str, queue: str, count: int) -> None:
        """A client consumed and acknowledged `count` messages."""
        counters = self._counters(vhost, queue)
        taken = min(count, counters["ready"])
        counters["ready"] -= taken
        counters["acked"] += taken

    def _peer(self, host: str) -> SimulatedRabbitApi | None:
        """The broker a shovel's destination host reaches: by name, or by a `.suffix` key."""
        host = host.lower()
        found = self.shovel_peers.get(host)
        if found is None:
            found = next(
                (p for k, p in self.shovel_peers.items() if k.startswith(".") and host.endswith(k)),
                None,
            )
        return found

    def connect(self) -> list[tuple[tuple[str, str], SimulatedRabbitApi]]:
        """Each shovel connects (or not): its state, and the running ones with their peer."""
        running = []
        for key, value in sorted(self.shovel_parameters.items()):
            target = urllib.parse.urlsplit(str(value.get("dest-uri", "")))
            peer = self._peer(target.hostname or "")
            login = (
                urllib.parse.unquote(target.username or ""),
                urllib.parse.unquote(target.password or ""),
            )
            if peer is None:
                self.shovel_state[key] = "starting"  # cannot connect: RabbitMQ retries
            elif login != (peer.username, peer.password):
                self.shovel_state[key] = "terminated"
            else:
                self.shovel_state[key] = "running"
                running.append((key, peer))
        return running

    def tick(self) -> None:
        """Each shovel connects (or not) and moves what its source queue holds."""
        for key, peer in self.connect():
            vhost, value = key[0], self.shovel_parameters[key]
            target = urllib.parse.urlsplit(str(value.get("dest-uri", "")))
            source, destination = str(value["src-queue"]), str(value["dest-queue"])
            dest_vhost = urllib.parse.unquote(target.path.lstrip("/")) or DEFAULT_VHOST
            if (dest_vhost, destination) not in peer.queues:  # the shovel declares it
                peer.put_queue(dest_vhost, destination, {"durable": True})
            if (vhost, source) not in self.queues:
                continue
            counters = self._counters(vhost, source)
            moving, counters["ready"] = counters["ready"], 0
            peer.publish(dest_vhost, destination, moving)  # confirmed, then acknowledged here
            counters["acked"] += moving

    def _shovels_on(self, vhost: str, queue: str) -> int:
        return sum(
            1
            for (v, n), value in self.shovel_parameters.items()
            if v == vhost
            and value.get("src-queue") == queue
            and self.shovel_state.get((v, n)) == "running"
        )

    def _queue_row(self, queue: dict[str, Any]) -> dict[str, Any]:
        counters = self.messages.get((queue["vhost"], queue["name"]))
        if counters is None:
            return queue
        stats = {"publish": counters["published"], "ack": counters["acked"]}
        return {
            **queue,
            "messages": counters["ready"],
            "messages_ready": counters["ready"],
            "messages_unacknowledged": 0,
            "consumers": counters["clients"] + self._shovels_on(queue["vhost"], queue["name"]),
            "message_stats": {k: v for k, v in stats.items() if v},
        }

    def _shovel_route(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if not self.shovel_plugin:
            if method == "GET" and len(rest) < 2:
                return 200, []
            return 400, {"error": "bad_request", "reason": "component shovel not found"}
        if len(rest) < 2:
            listed = [
                {"name": n, "vhost": v, "component": "shovel", "value": value}
                for (v, n), value in sorted(self.shovel_parameters.items())
                if not rest or v == rest[0]
            ]
            return 200, listed
        vhost, name = rest[0], rest[1]
        self._vhost(vhost)
        if method == "GET":
            found = self.shovel_parameters.get((vhost, name))
            return (200, {"name": name, "vhost": vhost, "value": found}) if found else (404, None)
        if method == "DELETE":
            if self.shovel_parameters.pop((vhost, name), None) is None:
                return 404, {"error": "Object Not Found"}
            self.shovel_state.pop((vhost, name), None)
            return 204, None
        value = dict((body or {})["value"])
        if ("src-queue" in value) == ("src-exchange" in value) or "dest-uri" not in value:
            return 400, {"error": "bad_request", "reason": "Validation failed"}
        if self.shovel_parameters.get((vhost, name)) != value:
            self.shovel_state[(vhost, name)] = "starting"  # (re)started
        self.shovel_parameters[(vhost, name)] = value
        return 201, None

    # --- HTTP -----------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path.split("?", 1)[0]))
        parts = [urllib.parse.unquote(p) for p in path.split("?", 1)[0].split("/")[2:]]
        query = urllib.parse.parse_qs(path.split("?", 1)[1]) if "?" in path else {}
        try:
            status, answer = self._route(method, parts, body)
            if "page" in query and isinstance(answer, list) and status == 200:
                return status, self._page(answer, query)
            return status, answer
        except ApiError as exc:
            return exc.status, {"error": "bad_request", "reason": exc.reason}
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": "bad_request", "reason": f"malformed: {exc}"}

    @staticmethod
    def _page(items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """A listing asked for by page, in the management API's paged form."""
        page, size = int(query["page"][0]), int(query.get("page_size", ["100"])[0])
        return {
            "items": items[(page - 1) * size : page * size],
            "page": page,
            "page_size": size,
            "page_count": max(1, -(-len(items) // size)),
            "item_count": len(items[(page - 1) * size : page * size]),
            "total_count": len(items),
            "filtered_count": len(items),
        }

    def _route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        head, rest = (parts[0], parts[1:]) if parts else ("", [])
        if head == "overview" and method == "GET":
            return 200, {"rabbitmq_version": self.version, "management_version": self.version}
        if head == "whoami" and method == "GET":
            return 200, {"name": self.username, "tags": list(self.user_tags)}
        if head == "parameters" and rest[:1] == ["shovel"]:
            return self._shovel_route(method, rest[1:], body)
        if head == "shovels" and method == "GET" and len(rest) <= 1:
            if not self.shovel_plugin:
                return 404, {"error": "Object Not Found", "reason": "Not Found"}
            return 200, [
                {
                    "name": n,
                    "vhost": v,
                    "type": "dynamic",
                    "state": self.shovel_state.get((v, n), "starting"),
                }
                for (v, n) in sorted(self.shovel_parameters)
                if not rest or v == rest[0]
            ]
        if head == "definitions":
            vhost = rest[0] if rest else None
            if method == "GET":
                if vhost is not None:
                    self._vhost(vhost)
                return 200, self.definitions(vhost)
            if method == "POST":
                self.load(body or {}, vhost)
                return 204, None
        if head == "vhosts":
            if len(rest) == 2 and method == "GET":  # a vhost's permissions / topic-permissions
                self._vhost(rest[0])
                if rest[1] == "permissions":
                    return 200, [
                        {
                            "user": self.username,
                            "vhost": rest[0],
                            "configure": ".*",
                            "write": ".*",
                            "read": ".*",
                        }
                    ]
                return 200, []
            if not rest:
                return 200, [{"name": v} for v in sorted(self.vhosts)]
            if method == "PUT":
                self.vhosts.setdefault(rest[0], {})
                return 201, None
            if method == "DELETE":
                self._delete_vhost(rest[0])
                return 204, None
            self._vhost(rest[0])
            return 200, {"name": rest[0]}
        if head in ("queues", "exchanges", "policies") and len(rest) == 2:
            return self._single(head, method, rest[0], rest[1], body)
        if head == "bindings" and len(rest) >= 5 and method == "DELETE":
            # /bindings/{vhost}/e/{source}/q/{queue}/{props}
            vhost, source, destination = rest[0], rest[2], rest[4]
            before = len(self.bindings)
            self.bindings = [
                b
                for b in self.bindings
                if not (
                    b["vhost"] == vhost
                    and b["source"] == source
                    and b["destination"] == destination
                )
            ]
            return (204, None) if len(self.bindings) < before else (404, {"error": "not_found"})
        if head in ("queues", "exchanges", "bindings", "policies") and len(rest) <= 1:
            return 200, self.listing(head, rest[0] if rest else None)
        return 404, {"error": "not_found", "reason": "not simulated"}

    def _single(self, kind: str, method: str, vhost: str, name: str, body: Any) -> tuple[int, Any]:
        store: dict[tuple[str, str], dict[str, Any]] = getattr(self, kind)
        if method == "GET":
            found = store.get((vhost, name))
            return (200, found) if found else (404, {"error": "Object Not Found"})
        if method == "DELETE":
            if store.pop((vhost, name), None) is None:
                return 404, {"error": "Object Not Found"}
            if kind == "queues":
                self.bindings = [
                    b for b in self.bindings if (b["vhost"], b["destination"]) != (vhost, name)
                ]
            return 204, None
        putter = {
            "queues": self.put_queue,
            "exchanges": self.put_exchange,
            "policies": self.put_policy,
        }[kind]
        putter(vhost, name, body or {})
        return 201, None

    def _delete_vhost(self, vhost: str) -> None:
        self._vhost(vhost)
        del self.vhosts[vhost]
        for store in (self.queues, self.exchanges, self.policies):
            for key in [k for k in store if k[0] == vhost]:
                del store[key]
        self.bindings = [b for b in self.bindings if b["vhost"] != vhost]


@dataclass
class SimulatedJolokia:
    """ActiveMQ's Jolokia, for the broker's destinations (no messages)."""

    username: str
    password: str = field(repr=False)
    broker_name: str = "localhost"
    queues: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def _destination_mbeans(self, kind: str) -> dict[str, dict[str, str]]:
        names = self.queues if kind == "Queue" else [*self.topics, "ActiveMQ.Advisory.Queue"]
        return {
            f"org.apache.activemq:brokerName={self.broker_name},destinationName={name},"
            f"destinationType={kind},type=Broker": {"Name": name}
            for name in names
        }

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        requests = body if isinstance(body, list) else [body]
        answers = [self._one(request or {}) for request in requests]
        return 200, answers if isinstance(body, list) else answers[0]

    def _one(self, request: dict[str, Any]) -> dict[str, Any]:
        """A pattern `read` of the broker's or its destinations' MBeans, as Jolokia answers
        it: {ObjectName: {attribute: value}}."""
        mbean = str(request.get("mbean", ""))
        if request.get("type") != "read" or not mbean.startswith("org.apache.activemq:"):
            return {"status": 400, "error": "not simulated", "error_type": "UnsupportedOperation"}
        if "destinationType=Queue" in mbean:
            return {"status": 200, "value": self._destination_mbeans("Queue")}
        if "destinationType=Topic" in mbean:
            return {"status": 200, "value": self._destination_mbeans("Topic")}
        broker = f"org.apache.activemq:brokerName={self.broker_name},type=Broker"
        return {"status": 200, "value": {broker: {"BrokerName": self.broker_name}}}


Api = SimulatedRabbitApi | SimulatedJolokia


class SimulatedBrokerApis(urllib.request.BaseHandler):
    """Answers HTTP(S) requests to the simulated hosts; everything else is left to the next
    handler (the network). Credentials are checked like a broker's (401 on a wrong one)."""

    handler_order = 100  # before urllib's own http(s) handlers

    def __init__(self) -> None:
        self.hosts: dict[str, Api] = {}  # "host[:port]" or ".suffix" -> the API

    def add(self, url_or_suffix: str, api: Api) -> None:
        key = url_or_suffix
        if "://" in url_or_suffix:
            key = urllib.parse.urlsplit(url_or_suffix).netloc.lower()
        self.hosts[key] = api

    def _api(self, netloc: str) -> Api | None:
        netloc = netloc.lower()
        host = netloc.split(":")[0]
        found = self.hosts.get(netloc) or self.hosts.get(host)
        if found is not None:
            return found
        for key, api in self.hosts.items():
            if key.startswith(".") and host.endswith(key):
                return api
        return None

    def _answer(self, request: urllib.request.Request) -> Any:
        parts = urllib.parse.urlsplit(request.full_url)
        api = self._api(parts.netloc)
        if api is None:
            return None  # not simulated: the network
        body = json.loads(bytes(request.data)) if isinstance(request.data, bytes) else None
        expected = base64.b64encode(f"{api.username}:{api.password}".encode()).decode()
        if request.get_header("Authorization") != f"Basic {expected}":
            status, answer = 401, {"error": "not_authorised", "reason": "Login failed"}
        else:
            path = parts.path
            if isinstance(api, SimulatedJolokia):
                path = path.split("/jolokia", 1)[-1] or "/"
            elif parts.query:
                path += "?" + parts.query  # the management API's paging
            status, answer = api.handle(request.get_method(), path, body)
        raw = b"" if answer is None else json.dumps(answer).encode()
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        if status >= 400:
            raise urllib.error.HTTPError(
                request.full_url, status, str(answer), headers, io.BytesIO(raw)
            )
        response = urllib.response.addinfourl(io.BytesIO(raw), headers, request.full_url, status)
        response.msg = "OK"  # type: ignore[attr-defined]  # urllib's error processor reads it
        return response

    def http_open(self, request: urllib.request.Request) -> Any:
        return self._answer(request)

    def https_open(self, request: urllib.request.Request) -> Any:
        return self._answer(request)

    def install(self) -> Callable[[], None]:
        """Route urlopen through this handler until the returned callable is called."""
        return install_handler(self)


def install_handler(handler: urllib.request.BaseHandler) -> Callable[[], None]:
    """Make `handler` part of the process's urlopen (ahead of urllib's own handlers, by its
    handler_order); the returned callable puts the previous opener back."""
    previous = urllib.request._opener  # type: ignore[attr-defined]
    urllib.request.install_opener(urllib.request.build_opener(handler))

    def uninstall() -> None:
        urllib.request.install_opener(previous)

    return uninstall

"""Dynamic shovels on the on-prem RabbitMQ broker: the RabbitMQ no-interruption procedure's way
of moving what is left on-prem to Amazon MQ.

RabbitMQ clients cannot follow a broker change by themselves (there is no `failover:` URL as
ActiveMQ's clients have), so consumers move to Amazon MQ first, producers follow, and a shovel
per queue, defined on the on-prem broker through its management API, moves every message that
reaches (or is still in) an on-prem queue to the queue of the same name on Amazon MQ. This is
RabbitMQ's blue-green guide [BG] with the roles placed as Amazon MQ allows them: the shovels
run on the on-prem broker and connect to Amazon MQ as any client does (amqps on 5671), because
Amazon MQ cannot run a shovel whose destination is a private broker, runs only dynamic shovels,
and its AMQP client cannot present a client certificate [AMQ-PLUGINS, AMQ-CLIENT-TLS].

Each shovel (a runtime parameter `shovel`, PUT /api/parameters/shovel/{vhost}/{name} [DYN]):

- `src-uri` `amqp:///<vhost>` (the on-prem node itself, a direct connection), `src-queue` and
  `dest-queue` the queue's name; the shovel declares a destination queue only when it does not
  exist (passive declare first), so the Amazon MQ queues the topology copy made are kept;
- `ack-mode` `on-confirm`: an on-prem message is acknowledged (and so leaves the on-prem queue)
  only once Amazon MQ confirmed it, so a broken link or a crash re-delivers, never loses;
- `src-delete-after` `never` (the shovel keeps moving what producers still publish on-prem
  until it is removed), `reconnect-delay` 1 s;
- `dest-uri` :func:`destination_uri`: amqps with peer verification against a CA bundle on the
  on-prem host and a host-name check. It holds the Amazon MQ user's password: anyone who can
  read runtime parameters on the on-prem broker can read it, and it is never put into a result,
  an error or a log line here (errors are redacted).

Verification (:func:`verify_moved`) follows amazon-mq/rabbitmq-queue-migration's rule [RQM]:
under-delivery has a tolerance of 0 % by default (any message missing fails), over-delivery is
not a failure.

[BG] https://www.rabbitmq.com/docs/blue-green-upgrade
[DYN] https://www.rabbitmq.com/docs/shovel-dynamic
[URI] https://www.rabbitmq.com/docs/uri-query-parameters
[AMQ-PLUGINS] https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-basic-elements-plugins.html
[AMQ-CLIENT-TLS] https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-amqp-client-ssl-configuration.html
[RQM] https://github.com/amazon-mq/rabbitmq-queue-migration/blob/main/docs/MESSAGE_LOSS_AND_VERIFICATION.md
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any, Literal

from mq_cutover import broker_api
from mq_cutover.broker_api import Endpoint
from mq_cutover.errors import BrokerApiFailed

SHOVEL_PREFIX = "mq-cutover."
AMAZON_MQ_AMQPS_PORT = 5671
RECONNECT_DELAY_SECONDS = 1
MAX_LISTED = 20
# Dynamic shovels with `src-protocol`/`dest-protocol` and `src-delete-after` (3.8+ keys).
MINIMUM_ON_PREM_VERSION = (3, 8)
# Tags that may write runtime parameters (shovels) through the management API.
PARAMETER_WRITER_TAGS = {"administrator", "policymaker"}

HostnameCheck = Literal["https", "none"]


# --- names and the destination URI ---------------------------------------------------------


def shovel_name(migration_id: str, queue: str) -> str:
    """`mq-cutover.<migration id>.<queue>`: the migration id has no dot, so the queue is what
    follows the first dot after the prefix."""
    if not migration_id or "." in migration_id:
        raise ValueError(f"migration id {migration_id!r}: empty or with a dot")
    return f"{SHOVEL_PREFIX}{migration_id}.{queue}"


def _ours(migration_id: str) -> str:
    return f"{SHOVEL_PREFIX}{migration_id}."


def destination_uri(
    endpoint: str,
    username: str,
    password: str,
    *,
    ca_cert_file: str,
    vhost: str = "/",
    hostname_check: HostnameCheck = "https",
) -> str:
    """The shovels' `dest-uri` for the Amazon MQ AMQP endpoint the workflow resolved
    (`amqps://b-xxx.mq.us-east-1.amazonaws.com:5671`):

    `amqps://<user>:<password>@<host>:5671/<vhost>?cacertfile=<ca_cert_file>&verify=verify_peer
    &server_name_indication=<host>&customize_hostname_check=https`

    - user, password and vhost are percent-encoded (the Erlang client decodes them);
    - `cacertfile` is a path on the on-prem broker's host (the shovel runs there);
    - `verify=verify_peer` checks the certificate chain; `server_name_indication=<host>` sends
      SNI and makes Erlang's TLS check the certificate's names against the host [URI];
    - `customize_hostname_check=https`: Amazon MQ's certificate names `*.mq.<region>.amazonaws.
      com`, and Erlang's default host-name check refuses wildcard names (OTP 23+:
      `hostname_check_failed`); this key selects the HTTPS rules, which accept them. RabbitMQ
      reads it from a URI since rabbitmq-server PR #17221 (2026); older versions (every 3.x)
      ignore it, the check then fails and the shovel never runs: it fails closed. See the
      README for the on-prem workaround (`amqp_client` `ssl_options`).
    - `hostname_check="none"`: `server_name_indication=disable`, which also turns Erlang's
      host-name check off: the chain is still verified against the CA bundle, the name is not.
      Only for an operator who accepted that (the plan says so explicitly).
    """
    parts = urllib.parse.urlsplit(endpoint.strip())
    if parts.scheme != "amqps" or not parts.hostname:
        raise BrokerApiFailed(
            f"Amazon MQ endpoint {safe_endpoint(endpoint)!r}: the shovels need amqps://host:port "
            "(Amazon MQ for RabbitMQ accepts AMQP over TLS only, port 5671)"
        )
    if parts.username or parts.password or parts.query or parts.path not in ("", "/"):
        raise BrokerApiFailed(
            f"Amazon MQ endpoint {safe_endpoint(endpoint)!r}: give amqps://host:port only "
            "(no user, path or query)"
        )
    if not re.fullmatch(r"/[^\s?&#]{1,1000}", ca_cert_file):
        raise BrokerApiFailed(
            f"CA bundle {ca_cert_file!r}: an absolute path on the on-prem broker's host, "
            "without spaces, ?, & or #"
        )
    if not username or not password:
        raise BrokerApiFailed("the Amazon MQ user for the shovels needs a username and password")
    host = parts.hostname
    port = parts.port or AMAZON_MQ_AMQPS_PORT
    query: list[tuple[str, str]] = [("cacertfile", ca_cert_file), ("verify", "verify_peer")]
    if hostname_check == "https":
        query += [("server_name_indication", host), ("customize_hostname_check", "https")]
    elif hostname_check == "none":
        query += [("server_name_indication", "disable")]
    else:
        raise ValueError(f"hostname_check {hostname_check!r}: https or none")
    user = urllib.parse.quote(username, safe="")
    secret = urllib.parse.quote(password, safe="")
    return (
        f"amqps://{user}:{secret}@{host}:{port}/{broker_api.quote(vhost)}?"
        + urllib.parse.urlencode(query)
    )


def safe_endpoint(endpoint: str) -> str:
    """An endpoint for an error message, without any user:password it may hold."""
    return re.sub(r"//[^@/]*@", "//", endpoint.strip())[:200]


def _secrets_of(destination: str) -> list[str]:
    """The strings an error must not show: the URI, and its password raw and encoded."""
    found = [destination]
    password = urllib.parse.urlsplit(destination).password
    if password:
        found += [password, urllib.parse.unquote(password)]
    return [s for s in found if s]


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --- start, states, remove -----------------------------------------------------------------


def shovel_definition(vhost: str, queue: str, destination: str) -> dict[str, Any]:
    """The runtime parameter's value for one queue."""
    return {
        "src-protocol": "amqp091",
        "src-uri": f"amqp:///{broker_api.quote(vhost)}",
        "src-queue": queue,
        "dest-protocol": "amqp091",
        "dest-uri": destination,
        "dest-queue": queue,
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": RECONNECT_DELAY_SECONDS,
    }


def _parameters_path(vhost: str, name: str | None = None) -> str:
    path = f"/api/parameters/shovel/{broker_api.quote(vhost)}"
    return path if name is None else f"{path}/{broker_api.quote(name)}"


def _defined(api: Endpoint, vhost: str) -> dict[str, dict[str, Any]]:
    """{name: value} of the shovels defined in `vhost` (values hold URIs: never output)."""
    try:
        listed = broker_api.call(api, "GET", _parameters_path(vhost)) or []
    except BrokerApiFailed as exc:
        if ": HTTP 404" in str(exc):  # no shovel plugin, or no such vhost: nothing defined
            return {}
        raise
    return {str(p.get("name")): dict(p.get("value") or {}) for p in listed if isinstance(p, dict)}


def start_shovels(
    api: Endpoint, *, migration_id: str, vhost: str, queues: list[str], destination: str
) -> dict[str, Any]:
    """Define one dynamic shovel per queue on the on-prem broker (see the module docstring).

    Idempotent: a shovel already defined with the same value is left alone (a PUT of the same
    value would restart it, re-delivering what it had in flight); one with another value (a new
    password, endpoint or CA path) is replaced. Returns `{"shovels": [names, at most 20],
    "count": n, "changed": defined or replaced now, "baseline": {"acked": {queue: the on-prem
    queue's acknowledgement counter just before}}}`: pass the baseline to :func:`verify_moved`
    (consumers have moved by then, so later acknowledgements are the shovel's)."""
    wanted = list(dict.fromkeys(queues))
    secrets = _secrets_of(destination)
    baseline = {q: figures["acked"] for q, figures in _queue_figures(api, vhost, wanted).items()}
    existing = _defined(api, vhost)
    names: list[str] = []
    changed = 0
    for queue in wanted:
        name = shovel_name(migration_id, queue)
        names.append(name)
        value = shovel_definition(vhost, queue, destination)
        if existing.get(name) == value:
            continue
        try:
            broker_api.call(api, "PUT", _parameters_path(vhost, name), {"value": value})
        except BrokerApiFailed as exc:
            raise BrokerApiFailed(
                f"defining shovel {name}: " + _redact(str(exc), secrets)
            ) from None
        changed += 1
    return {
        "shovels": names[:MAX_LISTED],
        "count": len(names),
        "changed": changed,
        "baseline": {"acked": baseline},
    }


def baseline(api: Endpoint, *, vhost: str, queues: list[str]) -> dict[str, Any]:
    """The on-prem queues' acknowledgement counters now, and the consumers still on them
    besides this migration's shovel (`clientsLeft`, {queue: n} for n > 0): taken once no
    client is left, every later acknowledgement on-prem is a shovel's (pass it to
    :func:`verify_moved`)."""
    wanted = list(dict.fromkeys(queues))
    figures = _queue_figures(api, vhost, wanted)
    return {
        "acked": {q: f["acked"] for q, f in figures.items()},
        # One consumer per queue is the shovel (every shovel ran before consumers moved).
        "clientsLeft": {q: f["consumers"] - 1 for q, f in figures.items() if f["consumers"] > 1},
    }


def shovel_states(api: Endpoint, *, migration_id: str, vhost: str) -> dict[str, str]:
    """{queue: state} of this migration's shovels, from GET /api/shovels/{vhost}: `running`,
    `starting` (connecting, or failing to: RabbitMQ 3.x logs why, the API does not say),
    `terminated: <reason>`. A shovel defined but not yet listed is `starting`."""
    prefix = _ours(migration_id)
    states: dict[str, str] = {
        name[len(prefix) :]: "starting" for name in _defined(api, vhost) if name.startswith(prefix)
    }
    try:
        listed = broker_api.call(api, "GET", f"/api/shovels/{broker_api.quote(vhost)}") or []
    except BrokerApiFailed as exc:
        if ": HTTP 404" not in str(exc):
            raise
        listed = []  # no shovel plugin (or no such vhost): no shovel runs there
    for item in listed:
        name = str(item.get("name", ""))
        if not name.startswith(prefix) or item.get("vhost", vhost) != vhost:
            continue
        state = str(item.get("state") or "unknown")
        reason = item.get("reason")
        if state == "terminated" and reason:
            state = f"terminated: {str(reason)[:200]}"
        states[name[len(prefix) :]] = state
    return states


def remove_shovels(api: Endpoint, *, migration_id: str, vhost: str) -> dict[str, Any]:
    """Delete this migration's shovels (and only those) from the on-prem broker. Idempotent:
    nothing defined, nothing removed. `{"removed": [names, at most 20], "count": n}`."""
    prefix = _ours(migration_id)
    removed = []
    for name in sorted(_defined(api, vhost)):
        if not name.startswith(prefix):
            continue
        try:
            broker_api.call(api, "DELETE", _parameters_path(vhost, name))
        except BrokerApiFailed as exc:
            if ": HTTP 404" not in str(exc):  # gone meanwhile: removed all the same
                raise
        removed.append(name)
    return {"removed": removed[:MAX_LISTED], "count": len(removed)}


# --- can the on-prem broker run them -------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def shovel_plugin_problem(api: Endpoint) -> str | None:
    """None when the on-prem broker can run this procedure's dynamic shovels; else why, for a
    refusal before any client moves: the management API does not answer, RabbitMQ older than
    3.8, `rabbitmq_shovel`/`rabbitmq_shovel_management` not enabled (GET /api/shovels answers
    404), or the API user may not write runtime parameters (needs the `policymaker` or
    `administrator` tag)."""
    try:
        overview = broker_api.call(api, "GET", "/api/overview") or {}
    except BrokerApiFailed as exc:
        return f"the on-prem management API does not answer ({exc})"
    version = str(overview.get("rabbitmq_version") or "")
    if version and _version(version) < MINIMUM_ON_PREM_VERSION:
        return (
            f"RabbitMQ {version}: the shovels are defined with the keys of RabbitMQ 3.8 and later "
            "(src-protocol, src-delete-after)"
        )
    try:
        broker_api.call(api, "GET", "/api/shovels")
    except BrokerApiFailed as exc:
        if ": HTTP 404" in str(exc):
            return (
                "the rabbitmq_shovel and rabbitmq_shovel_management plugins are not enabled "
                "(rabbitmq-plugins enable rabbitmq_shovel rabbitmq_shovel_management, on every "
                "node)"
            )
        return f"the on-prem broker's shovel status cannot be read ({exc})"
    try:
        whoami = broker_api.call(api, "GET", "/api/whoami") or {}
    except BrokerApiFailed as exc:
        return f"the on-prem management API user cannot be read ({exc})"
    tags = whoami.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    if not PARAMETER_WRITER_TAGS & {str(t) for t in tags}:
        return (
            f"the on-prem management API user {whoami.get('name', api.username)!r} cannot define "
            "shovels (runtime parameters need the policymaker or administrator tag)"
        )
    return None


# --- verified by count ---------------------------------------------------------------------


def _listing(api: Endpoint, vhost: str, query: dict[str, str]) -> list[dict[str, Any]]:
    answer = broker_api.call(api, "GET", f"/api/queues/{broker_api.quote(vhost)}", query=query)
    return [item for item in answer or [] if isinstance(item, dict)]


def _queue_figures(api: Endpoint, vhost: str, queues: list[str]) -> dict[str, dict[str, int]]:
    """{queue: figures} for the queues that exist: `messages` (ready + unacknowledged, the
    queues' own totals, which do not lag like statistics), `consumers`, and the statistics
    counters `published` and `acked` (since the broker started; they lag by the statistics
    interval, 5 s by default), with `statsMessages`: the depth in the same statistics snapshot
    (not 0 while the exact depth is: the counters are behind). Absent counters are 0."""
    wanted = set(queues)
    columns = "name,consumers,messages,message_stats.publish,message_stats.ack"
    stats = {
        str(item.get("name")): item
        for item in _listing(api, vhost, {"columns": columns})
        if item.get("name") in wanted
    }
    totals = {
        str(item.get("name")): item
        for item in _listing(api, vhost, {"disable_stats": "true", "enable_queue_totals": "true"})
        if item.get("name") in wanted
    }
    figures: dict[str, dict[str, int]] = {}
    for name, item in stats.items():
        counters = item.get("message_stats") or {}
        depth = totals.get(name, item).get("messages")
        figures[name] = {
            "messages": int(depth or 0),
            "consumers": int(item.get("consumers") or 0),
            "published": int(counters.get("publish") or 0),
            "acked": int(counters.get("ack") or 0),
            "statsMessages": int(item.get("messages") or 0),
        }
    return figures


def verify_moved(
    on_prem: Endpoint,
    amazon_mq: Endpoint | None,
    *,
    vhost: str,
    queues: list[str],
    migration_id: str,
    baseline: dict[str, Any] | None = None,
    under_tolerance_percent: float = 0.0,
) -> dict[str, Any]:
    """Whether what was on-prem has moved to Amazon MQ, before the on-prem broker stops.

    A queue is moved when all of these hold (each failing one is a problem, named):

    1. its shovel (this `migration_id`'s) is `running`;
    2. the on-prem queue holds 0 messages, ready or unacknowledged (the shovel acknowledges
       only what Amazon MQ confirmed, so 0 means nothing is in flight either);
    3. no consumer but the shovel is on the on-prem queue (consumers moved first);
    4. counted (when `amazon_mq` and `baseline` are given): once the on-prem statistics show
       the queue empty too (so their counters include every acknowledgement up to then), the
       messages the on-prem queue saw acknowledged since the shovels started (`acked -
       baseline`, all the shovel's, consumers having moved) reached the Amazon MQ queue: its
       publish counter is at least that many, less `under_tolerance_percent` (0 by default:
       any missing message fails, the default of rabbitmq-queue-migration [RQM]). More on
       Amazon MQ is expected (moved producers publish there too) and is not a problem. A
       counter that went back (a broker restarted) cannot be compared: a problem too.

    The Amazon MQ queue must exist. Counters lag the brokers by the statistics interval, so a
    drain loop calls this again until it is verified. The result is JSON-ready and bounded:
    `{"verified", "queues": [at most 20, problems first], "problems": [at most 20],
    "problemCount", "summary"}`."""
    wanted = list(dict.fromkeys(queues))
    local = _queue_figures(on_prem, vhost, wanted)
    remote = _queue_figures(amazon_mq, vhost, wanted) if amazon_mq is not None else None
    states = shovel_states(on_prem, migration_id=migration_id, vhost=vhost)
    acked_before: dict[str, Any] = dict((baseline or {}).get("acked") or {})
    problems: list[str] = []
    rows: list[tuple[bool, dict[str, Any]]] = []
    moved_total = 0
    for queue in wanted:
        found: list[str] = []
        row: dict[str, Any] = {"queue": queue}
        here = local.get(queue)
        state = states.get(queue, "missing")
        row["shovel"] = state
        if state != "running":
            found.append(f"{queue}: shovel {state}")
        if here is None:
            found.append(f"{queue}: no such queue on-prem")
        else:
            row["onPrem"] = {k: v for k, v in here.items() if k != "statsMessages"}
            if here["messages"]:
                found.append(f"{queue}: {here['messages']} messages still on-prem")
            elif here["statsMessages"] and queue in acked_before:
                found.append(
                    f"{queue}: the on-prem statistics have not caught up with the empty queue yet "
                    "(they lag by the statistics interval)"
                )
            clients = here["consumers"] - (1 if state == "running" else 0)
            if clients > 0:
                found.append(f"{queue}: {clients} consumers besides the shovel still on-prem")
        there = None if remote is None else remote.get(queue)
        if remote is not None:
            if there is None:
                found.append(f"{queue}: no such queue on Amazon MQ")
            else:
                row["amazonMq"] = {k: there[k] for k in ("messages", "published")}
        behind = here is not None and not here["messages"] and here["statsMessages"] > 0
        if here is not None and there is not None and queue in acked_before and not behind:
            moved = here["acked"] - int(acked_before[queue])
            row["moved"] = moved
            if moved < 0:
                found.append(
                    f"{queue}: the on-prem acknowledgement counter went back (a restart?): "
                    "the moved messages cannot be counted"
                )
            else:
                moved_total += moved
                least = moved * (1 - under_tolerance_percent / 100)
                if there["published"] < least:
                    found.append(
                        f"{queue}: {moved} moved from on-prem, {there['published']} counted on "
                        f"Amazon MQ ({moved - there['published']} missing, tolerance "
                        f"{under_tolerance_percent:g} %)"
                    )
        problems.extend(found)
        rows.append((bool(found), row))
    rows.sort(key=lambda r: not r[0])  # problems first, each group in the queues' order
    verified = bool(wanted) and not problems
    counted = remote is not None and bool(acked_before)
    if not wanted:
        summary = "no queues to verify"
        problems.append(summary)
    elif verified:
        summary = (
            f"{len(wanted)} of {len(wanted)} queues moved: 0 messages left on-prem, every "
            "shovel running"
            + (f", {moved_total} moved and counted on Amazon MQ" if counted else "")
        )
    else:
        summary = f"not verified: {len(problems)} problems (first: {problems[0]})"
    return {
        "verified": verified,
        "queues": [row for _, row in rows[:MAX_LISTED]],
        "problems": problems[:MAX_LISTED],
        "problemCount": len(problems),
        "summary": summary,
    }

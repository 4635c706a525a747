"""mq_cutover.shovels against the simulated RabbitMQ management APIs (SimulatedRabbitApi: the
`shovel` runtime parameters, GET /api/shovels and per-queue message counters, all simulated):
the destination URI, names, idempotence, redaction, the plugin check and each branch of
verify_moved's rule. The real thing runs in tests/e2e/test_shovels.py."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from mq_cutover import shovels
from mq_cutover.broker_api import Endpoint
from mq_cutover.errors import BrokerApiFailed
from mq_cutover_cli.simulated_brokers import SimulatedBrokerApis, SimulatedRabbitApi

PASSWORD = "p@ss:w/rd?#&% +é"  # every character the URI must encode
HOST = "b-1234abcd-0000-4000-8000-000000000000.mq.us-east-1.amazonaws.com"
ENDPOINT = f"amqps://{HOST}:5671"
CA = "/etc/ssl/certs/ca-certificates.crt"
MIGRATION = "m-2026"


@pytest.fixture
def brokers() -> Iterator[tuple[SimulatedRabbitApi, SimulatedRabbitApi, Endpoint, Endpoint]]:
    """On-prem (queues q1, q2) and Amazon MQ (same queues), reached through the simulated
    urllib handler; on-prem's shovels reach Amazon MQ by its host name."""
    on_prem = SimulatedRabbitApi("onprem-admin", "onprem-pw", version="3.10.8")
    amazon = SimulatedRabbitApi("mq-admin", PASSWORD, default_queue_type="quorum")
    for api in (on_prem, amazon):
        for queue in ("q1", "q2"):
            api.put_queue("/", queue, {"durable": True})
    on_prem.shovel_peers[HOST] = amazon
    handler = SimulatedBrokerApis()
    handler.add("http://onprem.example:15672", on_prem)
    handler.add(f"https://{HOST}", amazon)
    uninstall = handler.install()
    try:
        yield (
            on_prem,
            amazon,
            Endpoint("http://onprem.example:15672", "onprem-admin", "onprem-pw", "on-prem"),
            Endpoint(f"https://{HOST}", "mq-admin", PASSWORD, "Amazon MQ"),
        )
    finally:
        uninstall()


def destination() -> str:
    return shovels.destination_uri(ENDPOINT, "mq-admin", PASSWORD, ca_cert_file=CA)


# --- the destination URI -----------------------------------------------------------------


def test_destination_uri_encodes_credentials_and_verifies_the_peer_and_its_name() -> None:
    uri = shovels.destination_uri(ENDPOINT, "mq admin@x", PASSWORD, ca_cert_file=CA)
    parts = urllib.parse.urlsplit(uri)
    assert parts.scheme == "amqps"
    assert (parts.hostname, parts.port, parts.path) == (HOST, 5671, "/%2F")
    assert urllib.parse.unquote(parts.username or "") == "mq admin@x"
    assert urllib.parse.unquote(parts.password or "") == PASSWORD
    assert PASSWORD not in uri  # only its encoded form
    assert urllib.parse.parse_qsl(parts.query) == [
        ("cacertfile", CA),
        ("verify", "verify_peer"),
        ("server_name_indication", HOST),
        ("customize_hostname_check", "https"),
    ]


def test_destination_uri_vhost_default_port_and_no_hostname_check() -> None:
    uri = shovels.destination_uri(
        f"amqps://{HOST}", "u", "p", ca_cert_file=CA, vhost="shop/eu", hostname_check="none"
    )
    parts = urllib.parse.urlsplit(uri)
    assert (parts.port, parts.path) == (5671, "/shop%2Feu")
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query["server_name_indication"] == "disable"
    assert "customize_hostname_check" not in query
    assert query["verify"] == "verify_peer"


@pytest.mark.parametrize(
    ("endpoint", "ca", "reason"),
    [
        (f"amqp://{HOST}:5672", CA, "amqps://host:port"),
        (f"ssl://{HOST}:61617", CA, "amqps://host:port"),
        (f"amqps://someone:secret@{HOST}:5671", CA, "no user, path or query"),
        (f"amqps://{HOST}:5671/vhost", CA, "no user, path or query"),
        (f"amqps://{HOST}:5671?verify=verify_none", CA, "no user, path or query"),
        (ENDPOINT, "relative/ca.pem", "absolute path"),
        (ENDPOINT, "/etc/ca.pem&verify=verify_none", "absolute path"),
    ],
)
def test_destination_uri_refuses(endpoint: str, ca: str, reason: str) -> None:
    with pytest.raises(BrokerApiFailed, match=reason) as caught:
        shovels.destination_uri(endpoint, "u", PASSWORD, ca_cert_file=ca)
    assert "secret" not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_shovel_names_carry_the_migration_and_the_queue() -> None:
    assert shovels.shovel_name(MIGRATION, "orders.eu") == "mq-cutover.m-2026.orders.eu"
    with pytest.raises(ValueError, match="dot"):
        shovels.shovel_name("a.b", "q")


# --- start, states, remove ---------------------------------------------------------------


def test_start_defines_one_on_confirm_shovel_per_queue(brokers: Any) -> None:
    on_prem, _, source, _ = brokers
    started = shovels.start_shovels(
        source,
        migration_id=MIGRATION,
        vhost="/",
        queues=["q1", "q2", "q1"],
        destination=destination(),
    )
    assert started["shovels"] == ["mq-cutover.m-2026.q1", "mq-cutover.m-2026.q2"]
    assert (started["count"], started["changed"]) == (2, 2)
    assert started["baseline"] == {"acked": {"q1": 0, "q2": 0}}
    value = on_prem.shovel_parameters[("/", "mq-cutover.m-2026.q1")]
    assert value == {
        "src-protocol": "amqp091",
        "src-uri": "amqp:///%2F",
        "src-queue": "q1",
        "dest-protocol": "amqp091",
        "dest-uri": destination(),
        "dest-queue": "q1",
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": 1,
    }
    assert PASSWORD not in json.dumps(started)
    assert urllib.parse.quote(PASSWORD, safe="") not in json.dumps(started)


def test_start_again_is_idempotent_and_a_new_destination_replaces(brokers: Any) -> None:
    on_prem, _, source, _ = brokers
    args = {"migration_id": MIGRATION, "vhost": "/", "queues": ["q1", "q2"]}
    shovels.start_shovels(source, destination=destination(), **args)
    on_prem.tick()
    on_prem.requests.clear()
    again = shovels.start_shovels(source, destination=destination(), **args)
    assert again["changed"] == 0
    assert not [r for r in on_prem.requests if r[0] == "PUT"]  # running shovels not restarted
    assert set(on_prem.shovel_state.values()) == {"running"}
    other = shovels.destination_uri(ENDPOINT, "mq-admin", "rotated", ca_cert_file=CA)
    replaced = shovels.start_shovels(source, destination=other, **args)
    assert replaced["changed"] == 2
    assert on_prem.shovel_parameters[("/", "mq-cutover.m-2026.q2")]["dest-uri"] == other


def test_start_lists_at_most_20_names(brokers: Any) -> None:
    on_prem, _, source, _ = brokers
    queues = [f"q{i:02}" for i in range(25)]
    for queue in queues:
        on_prem.put_queue("/", queue, {"durable": True})
    started = shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=queues, destination=destination()
    )
    assert (len(started["shovels"]), started["count"]) == (20, 25)
    assert len(on_prem.shovel_parameters) == 25


class EchoingApi(SimulatedRabbitApi):
    """Refuses a shovel with a reason that quotes its value, URI included (RabbitMQ's validation
    messages can quote what they refuse)."""

    def _shovel_route(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "PUT":
            return 400, {"error": "bad_request", "reason": f"Validation failed {body['value']}"}
        return super()._shovel_route(method, rest, body)


def test_an_error_never_shows_the_password() -> None:
    api = EchoingApi("onprem-admin", "onprem-pw")
    api.put_queue("/", "q1", {"durable": True})
    handler = SimulatedBrokerApis()
    handler.add("http://echo.example:15672", api)
    uninstall = handler.install()
    try:
        source = Endpoint("http://echo.example:15672", "onprem-admin", "onprem-pw")
        with pytest.raises(BrokerApiFailed) as caught:
            shovels.start_shovels(
                source, migration_id=MIGRATION, vhost="/", queues=["q1"], destination=destination()
            )
    finally:
        uninstall()
    text = str(caught.value)
    assert "defining shovel mq-cutover.m-2026.q1" in text
    assert "Validation failed" in text and "***" in text
    assert urllib.parse.quote(PASSWORD, safe="") not in text
    assert PASSWORD not in text


def test_states_are_this_migrations_only(brokers: Any) -> None:
    on_prem, amazon, source, _ = brokers
    shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=["q1", "q2"], destination=destination()
    )
    shovels.start_shovels(
        source, migration_id="other", vhost="/", queues=["q1"], destination=destination()
    )
    on_prem.shovel_parameters[("/", "someone-elses")] = {"src-queue": "q1", "dest-uri": "amqp://x"}
    assert shovels.shovel_states(source, migration_id=MIGRATION, vhost="/") == {
        "q1": "starting",
        "q2": "starting",
    }
    on_prem.tick()
    assert shovels.shovel_states(source, migration_id=MIGRATION, vhost="/") == {
        "q1": "running",
        "q2": "running",
    }
    amazon.password = "changed"  # the shovels' password no longer works
    on_prem.tick()
    assert set(shovels.shovel_states(source, migration_id=MIGRATION, vhost="/").values()) == {
        "terminated"
    }
    on_prem.shovel_peers.clear()  # Amazon MQ unreachable: RabbitMQ keeps trying
    on_prem.tick()
    assert set(shovels.shovel_states(source, migration_id=MIGRATION, vhost="/").values()) == {
        "starting"
    }


def test_remove_removes_ours_only_and_again_nothing(brokers: Any) -> None:
    on_prem, _, source, _ = brokers
    shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=["q1", "q2"], destination=destination()
    )
    shovels.start_shovels(
        source, migration_id="m-2026x", vhost="/", queues=["q1"], destination=destination()
    )
    removed = shovels.remove_shovels(source, migration_id=MIGRATION, vhost="/")
    assert removed == {"removed": ["mq-cutover.m-2026.q1", "mq-cutover.m-2026.q2"], "count": 2}
    assert list(on_prem.shovel_parameters) == [("/", "mq-cutover.m-2026x.q1")]
    assert shovels.remove_shovels(source, migration_id=MIGRATION, vhost="/") == {
        "removed": [],
        "count": 0,
    }


# --- can the on-prem broker run them -----------------------------------------------------


def test_plugin_problem_none_when_the_broker_can(brokers: Any) -> None:
    assert shovels.shovel_plugin_problem(brokers[2]) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"shovel_plugin": False}, "rabbitmq_shovel and rabbitmq_shovel_management"),
        ({"version": "3.7.28"}, "RabbitMQ 3.7.28"),
        ({"user_tags": ["monitoring"]}, "policymaker or administrator"),
        ({"password": "rotated"}, "does not answer .*HTTP 401"),
    ],
)
def test_plugin_problem_names_why(brokers: Any, change: dict[str, Any], reason: str) -> None:
    on_prem, _, source, _ = brokers
    for key, value in change.items():
        setattr(on_prem, key, value)
    problem = shovels.shovel_plugin_problem(source)
    assert problem is not None
    assert re.search(reason, problem), problem
    assert "onprem-pw" not in problem


# --- verified by count -------------------------------------------------------------------


def moved(brokers: Any, *, published: int = 5) -> dict[str, Any]:
    """Messages on-prem, shovels started (consumers gone), ticked: everything moved."""
    on_prem, _, source, _ = brokers
    for queue in ("q1", "q2"):
        on_prem.publish("/", queue, published)
        on_prem.client_ack("/", queue, 2)  # consumed on-prem before the consumers moved
    started = shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=["q1", "q2"], destination=destination()
    )
    on_prem.tick()
    return started


def verify(brokers: Any, started: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return shovels.verify_moved(
        brokers[2],
        brokers[3],
        vhost="/",
        queues=extra.pop("queues", ["q1", "q2"]),
        migration_id=MIGRATION,
        baseline=None if started is None else started["baseline"],
        **extra,
    )


def test_verified_when_empty_running_and_counted(brokers: Any) -> None:
    started = moved(brokers)
    assert started["baseline"] == {"acked": {"q1": 2, "q2": 2}}
    result = verify(brokers, started)
    assert result["verified"] is True, result
    assert result["problems"] == [] and result["problemCount"] == 0
    assert result["summary"] == (
        "2 of 2 queues moved: 0 messages left on-prem, every shovel running, 6 moved and "
        "counted on Amazon MQ"
    )
    assert result["queues"][0] == {
        "queue": "q1",
        "shovel": "running",
        "onPrem": {"messages": 0, "consumers": 1, "published": 5, "acked": 5},
        "amazonMq": {"messages": 3, "published": 3},
        "moved": 3,
    }
    assert PASSWORD not in json.dumps(result)


def test_not_verified_before_the_shovels_ran(brokers: Any) -> None:
    on_prem, _, source, _ = brokers
    on_prem.publish("/", "q1", 4)
    started = shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=["q1", "q2"], destination=destination()
    )
    result = verify(brokers, started)
    assert result["verified"] is False
    assert "q1: shovel starting" in result["problems"]
    assert "q1: 4 messages still on-prem" in result["problems"]
    assert result["summary"].startswith("not verified: 3 problems (first: q1: shovel starting")


def test_messages_published_on_prem_after_the_move_are_a_problem(brokers: Any) -> None:
    on_prem = brokers[0]
    started = moved(brokers)
    on_prem.publish("/", "q2", 1)  # a producer not moved yet
    result = verify(brokers, started)
    assert result["problems"] == ["q2: 1 messages still on-prem"]
    assert result["queues"][0]["queue"] == "q2"  # problems first


def test_a_consumer_left_on_prem_is_a_problem(brokers: Any) -> None:
    on_prem = brokers[0]
    started = moved(brokers)
    on_prem.messages[("/", "q1")]["clients"] = 2
    result = verify(brokers, started)
    assert result["problems"] == ["q1: 2 consumers besides the shovel still on-prem"]


def test_a_shovel_removed_or_missing_is_a_problem(brokers: Any) -> None:
    on_prem = brokers[0]
    started = moved(brokers)
    del on_prem.shovel_parameters[("/", "mq-cutover.m-2026.q2")]
    assert verify(brokers, started)["problems"] == ["q2: shovel missing"]


def test_queues_missing_on_either_broker_are_problems(brokers: Any) -> None:
    on_prem, amazon, _, _ = brokers
    started = moved(brokers)
    amazon.queues.pop(("/", "q1"))
    on_prem.queues.pop(("/", "q2"))
    problems = verify(brokers, started)["problems"]
    assert "q1: no such queue on Amazon MQ" in problems
    assert "q2: no such queue on-prem" in problems


def test_fewer_counted_on_amazon_mq_than_moved_is_a_problem_within_tolerance_not(
    brokers: Any,
) -> None:
    amazon = brokers[1]
    started = moved(brokers, published=22)  # 20 moved per queue
    amazon.messages[("/", "q1")]["published"] = 19  # one of q1's went missing on Amazon MQ
    result = verify(brokers, started)
    assert result["problems"] == [
        "q1: 20 moved from on-prem, 19 counted on Amazon MQ (1 missing, tolerance 0 %)"
    ]
    assert verify(brokers, started, under_tolerance_percent=5)["verified"] is True
    amazon.messages[("/", "q2")]["published"] = 50  # producers publish there too: not a problem
    assert verify(brokers, started, under_tolerance_percent=5)["verified"] is True


def test_an_on_prem_counter_that_went_back_cannot_be_counted(brokers: Any) -> None:
    started = moved(brokers)
    started["baseline"]["acked"]["q1"] = 1000  # the on-prem broker restarted since
    problems = verify(brokers, started)["problems"]
    assert problems == [
        "q1: the on-prem acknowledgement counter went back (a restart?): the moved messages "
        "cannot be counted"
    ]


def test_without_a_baseline_nothing_is_counted_but_the_rest_holds(brokers: Any) -> None:
    moved(brokers)
    result = verify(brokers, None)
    assert result["verified"] is True
    assert "counted" not in result["summary"]
    assert "moved" not in result["queues"][0]


def test_no_queues_is_not_verified(brokers: Any) -> None:
    result = verify(brokers, None, queues=[])
    assert result["verified"] is False
    assert result["summary"] == "no queues to verify"


def test_results_are_bounded(brokers: Any) -> None:
    on_prem = brokers[0]
    queues = [f"x{i:02}" for i in range(30)]
    for queue in queues:
        on_prem.put_queue("/", queue, {"durable": True})
    result = verify(brokers, None, queues=queues)
    assert (len(result["queues"]), len(result["problems"])) == (20, 20)
    assert result["problemCount"] == 60  # shovel missing + no such queue on Amazon MQ, each


def test_statistics_behind_the_empty_queue_are_not_counted_yet(brokers: Any) -> None:
    """The counters come from a statistics snapshot that lags the queue: a snapshot still
    showing messages in a queue that is empty has not counted the shovel's acknowledgements
    yet, so it cannot be compared (the drain loop calls again)."""
    on_prem = brokers[0]
    started = moved(brokers)
    listing = on_prem.listing
    calls = []

    def stale_statistics(kind: str, vhost: str | None) -> list[dict[str, Any]]:
        rows = listing(kind, vhost)
        calls.append(kind)
        if kind == "queues" and len(calls) == 1:  # the first listing: the statistics one
            return [{**row, "messages": 3, "message_stats": {"publish": 5}} for row in rows]
        return rows

    on_prem.listing = stale_statistics  # type: ignore[method-assign]
    result = verify(brokers, started)
    assert result["problems"] == [
        f"{q}: the on-prem statistics have not caught up with the empty queue yet (they lag by "
        "the statistics interval)"
        for q in ("q1", "q2")
    ]
    assert "moved" not in result["queues"][0]


def test_the_baseline_waits_for_the_consumers_to_leave_the_on_prem_queues(brokers: Any) -> None:
    """Mark Shovel Baseline: producers move only once no consumer but the shovel is left
    on-prem (a client reconnects after it saw its new URL; statistics lag)."""
    from mq_cutover.shovel_steps import CONSUMERS_LEAVE_SECONDS, _baseline

    on_prem, _amazon, source, _ = brokers
    shovels.start_shovels(
        source, migration_id=MIGRATION, vhost="/", queues=["q1", "q2"], destination=destination()
    )
    on_prem.tick()  # the shovels run: one consumer on each queue
    for queue in ("q1", "q2"):
        on_prem.publish("/", queue, 0)
    on_prem.messages[("/", "q1")]["clients"] = 1  # the application's consumer, not gone yet
    clock = {"t": 0.0}

    def sleep(seconds: float) -> None:
        clock["t"] += seconds
        if clock["t"] >= 3:
            on_prem.messages[("/", "q1")]["clients"] = 0  # it reconnected to Amazon MQ

    taken = _baseline(source, "/", ["q1", "q2"], lambda: clock["t"], sleep)
    assert clock["t"] == 3 and taken["clientsLeft"] == {}
    assert set(taken["baseline"]["acked"]) == {"q1", "q2"}
    # One that never leaves: reported after the wait, the fence before the stop waits for it.
    on_prem.messages[("/", "q2")]["clients"] = 2
    clock["t"] = 0.0
    taken = _baseline(
        source, "/", ["q1", "q2"], lambda: clock["t"], lambda s: clock.update(t=clock["t"] + s)
    )
    assert taken["clientsLeft"] == {"q2": 2}
    assert clock["t"] >= CONSUMERS_LEAVE_SECONDS


def test_without_the_shovel_plugin_no_shovel_runs_and_removal_finds_none(brokers: Any) -> None:
    """A rollback after Start Shovels was refused for a missing plugin lists and removes
    shovels: the plugin's API answers 404, which means none run (it failed Roll Back)."""
    on_prem, _, source, _ = brokers
    on_prem.shovel_plugin = False
    assert shovels.shovel_states(source, migration_id=MIGRATION, vhost="/") == {}
    assert shovels.remove_shovels(source, migration_id=MIGRATION, vhost="/") == {
        "removed": [],
        "count": 0,
    }

"""Drain readings from a real RabbitMQ management API (issue 14 item 2): a Debian
rabbitmq-server node stands in for Amazon MQ for RabbitMQ, read as `target.metrics.source:
managementApi` reads the Amazon MQ broker (mq_cutover.api_readings, through the metrics bridge's
reader, over real HTTP). CloudWatch is never asked: it refuses every call here.

- queues matched by the plan's pattern are discovered from the API; the DLQ is reported with
  its count, never waited for;
- messages left are seen; once consumed, K new readings (at least NEW_READING_SECONDS apart)
  and unchanged publish counters make it drained;
- a message published and consumed at once between two Lambda calls leaves every queue at 0 but
  moves its counter: the next call's first reading is not quiet;
- a listed queue the broker does not have is missing; a wrong password and a closed port are
  failed reads (every queue missing, and why): never zero.

The node is this module's own, on free ports (tests/e2e/rabbit_nodes.py, `free_node_ports`),
so the test runs beside the session's fixed-port nodes; it is stopped by PID at the end.
"""

from __future__ import annotations

import copy
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mq_cutover import clock
from mq_cutover.api_readings import NEW_READING_SECONDS, ManagementApiReadings, vhost_of
from mq_cutover.broker_api import Endpoint
from mq_cutover.drain import Purpose, Side, amazon_mq_side, watch_drain
from mq_cutover.plan import MigrationPlan, parse_plan
from tests.conftest import load_event
from tests.e2e.brokers import free_port
from tests.e2e.rabbit_nodes import RabbitNode, free_node_ports, running_rabbit_nodes

pytestmark = pytest.mark.e2e

ORDERS, PAYMENTS, DLQ = "e2e.orders", "e2e.payments", "e2e.orders.DLQ"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    root: Path = tmp_path_factory.mktemp("api-readings")
    with running_rabbit_nodes(
        root, ["amazonmq"], [free_node_ports()], epmd_port=free_port()
    ) as started:
        yield started[0]


class NoCloudWatch:
    """Every figure of the Amazon MQ side must come from its management API."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"CloudWatch {name} called for a managementApi side")


def plan_for(queues: list[str]) -> MigrationPlan:
    plan = copy.deepcopy(load_event("plan-ordered.json"))
    create = plan["target"]["create"]
    create.update(
        engine="RABBITMQ",
        engineVersion="3.13",
        deploymentMode="SINGLE_INSTANCE",
        hostInstanceType="mq.m5.large",
        subnetIds=create["subnetIds"][:1],
    )
    plan["target"]["protocol"] = "amqp"
    plan["target"]["metrics"] = {"source": "managementApi"}  # vhost "/"
    plan["topology"] = {"copy": False}
    plan["onPrem"]["url"] = "amqps://onprem-mq.example.internal:5671"
    plan["onPrem"]["queues"] = queues
    plan["onPrem"]["ignoreQueues"] = ["*.DLQ"]
    plan["drain"] = {"pollIntervalSeconds": 2, "consecutiveEmptyReadings": 2}
    return parse_plan(plan)


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def side_of(plan: MigrationPlan, node: RabbitNode, **change: Any) -> Side:
    """The Amazon MQ side of one Lambda call: a new reader, as a new call has."""
    user, password = node.credentials
    api = Endpoint(change.get("url", node.api_url), user, change.get("password", password))
    return amazon_mq_side(plan, None, ManagementApiReadings(lambda: api, vhost_of(plan)))


def call(
    plan: MigrationPlan, side: Side, previous: dict[str, Any] | None, budget: float = 0
) -> dict[str, Any]:
    """One Check Rollback Drain call on the Amazon MQ side, on the real clock."""
    return watch_drain(
        plan, NoCloudWatch(), previous, budget_seconds=budget, now=clock.utcnow,
        sleep=clock.sleep, purpose=Purpose.ROLLBACK_DRAIN, side=side,
    )  # fmt: skip


def publish(node: RabbitNode, queue: str, count: int) -> None:
    for number in range(count):
        node.api(
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            {"properties": {}, "routing_key": queue, "payload": f"m{number}",
             "payload_encoding": "string"},
        )  # fmt: skip


def consume(node: RabbitNode, queue: str, count: int) -> None:
    got = node.api(
        "POST",
        f"/api/queues/%2F/{q(queue)}/get",
        {"count": count, "ackmode": "ack_requeue_false", "encoding": "auto"},
    )
    assert len(got) == count


def until(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    """The management API's figures lag the broker by its statistics interval."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def figures(node: RabbitNode, queue: str) -> dict[str, Any]:
    found: dict[str, Any] = node.api("GET", f"/api/queues/%2F/{q(queue)}")
    return found


def test_drain_read_from_a_real_management_api(node: RabbitNode) -> None:
    for name in (ORDERS, PAYMENTS, DLQ):
        node.api("PUT", f"/api/queues/%2F/{q(name)}", {"durable": True})
    try:
        publish(node, ORDERS, 5)
        publish(node, DLQ, 3)
        until("5 messages counted", lambda: figures(node, ORDERS).get("messages") == 5)
        until("3 dead letters counted", lambda: figures(node, DLQ).get("messages") == 3)
        plan = plan_for(["e2e.*"])

        busy = call(plan, side_of(plan, node), None)
        assert busy["watchedQueues"] == 2 and busy["messagesLeft"] == 5 and not busy["drained"]
        assert busy["queuesWithMessages"] == [{"queue": ORDERS, "messages": 5, "inFlight": 0}]
        assert busy["ignored"] == [{"queue": DLQ, "messages": 3}]
        assert "readError" not in busy

        consume(node, ORDERS, 5)
        until("the queue empty", lambda: figures(node, ORDERS).get("messages") == 0)
        began = time.monotonic()
        drained = call(plan, side_of(plan, node), busy, budget=60)
        took = time.monotonic() - began
        assert drained["drained"] and drained["producersQuiet"], drained
        assert drained["ignored"] == [{"queue": DLQ, "messages": 3}]  # not waited for
        # Readings every 2 s, counted only NEW_READING_SECONDS apart (RabbitMQ's statistics
        # interval is far shorter, but a live read must not count twice): K = 2 counted ones
        # after the busy reading. The first compares with the previous call's counters.
        assert NEW_READING_SECONDS <= took < 3 * NEW_READING_SECONDS
        last = datetime.fromisoformat(drained["lastReadingAt"])
        since_busy = (last - datetime.fromisoformat(busy["lastReadingAt"])).total_seconds()
        assert since_busy >= 2 * NEW_READING_SECONDS

        # A producer that never moved: one message, consumed at once. Every queue reads 0.
        publish(node, PAYMENTS, 1)
        until("the publish counted", lambda: _published(node, PAYMENTS) == 1)
        consume(node, PAYMENTS, 1)
        until("the queue empty again", lambda: figures(node, PAYMENTS).get("messages") == 0)
        time.sleep(NEW_READING_SECONDS)
        moved = call(plan, side_of(plan, node), drained)
        assert moved["messagesLeft"] == 0 and not moved["producersQuiet"]
        assert moved["consecutiveEmpty"] == 0 and not moved["drained"]

        # A listed queue the broker does not have: missing, never zero.
        listed = plan_for([ORDERS, "e2e.invoices"])
        gone = call(listed, side_of(listed, node), None)
        assert gone["missing"] == ["e2e.invoices"] and not gone["drained"]

        # Failed reads: every queue missing, and why; the password never shows.
        refused = call(listed, side_of(listed, node, password="not-the-password"), None)
        assert refused["missing"] == [ORDERS, "e2e.invoices"]
        assert "HTTP Error 401" in refused["readError"]
        assert node.credentials[1] not in str(refused)
        closed = call(listed, side_of(listed, node, url=f"http://127.0.0.1:{free_port()}"), None)
        assert closed["missingCount"] == 2 and "Connection refused" in closed["readError"]
    finally:
        for name in (ORDERS, PAYMENTS, DLQ):
            node.api("DELETE", f"/api/queues/%2F/{q(name)}")


def _published(node: RabbitNode, queue: str) -> int:
    stats = figures(node, queue).get("message_stats") or {}
    return int(stats.get("publish") or 0)

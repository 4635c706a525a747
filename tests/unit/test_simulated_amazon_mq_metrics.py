"""The simulated Amazon MQ broker's own CloudWatch metrics are as AWS's quota makes them
("Quotas in Amazon MQ", docs.aws.amazon.com/amazon-mq/latest/developer-guide/amazon-mq-limits.html):
in `AWS/AmazonMQ`, an ActiveMQ broker's first 1,000 destinations and a RabbitMQ broker's first
500 queues by number of consumers; a bridge's namespace gets every queue. The plan refuses more
listed queues (tests/unit/test_plan.py); these plans name theirs by pattern, as a plan whose
queues are found at run time does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mq_cutover.drain import amazon_mq_side, side_queues
from mq_cutover.plan import parse_plan
from mq_cutover_cli.world import SimQueue, World
from tests.conftest import as_rabbitmq

AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # on a minute: Amazon MQ publishes once a minute
PLACED = {"onPrem": 0, "amazonMq": 2, "producersOnAmazonMq": 0}


def _published(cw: Any, namespace: str, metric: str) -> list[str]:
    queues = set()
    for page in cw.get_paginator("list_metrics").paginate(Namespace=namespace, MetricName=metric):
        for found in page["Metrics"]:
            queues |= {d["Value"] for d in found["Dimensions"] if d["Name"] == "Queue"}
    return sorted(queues)


def _sample(document: dict[str, Any], queues: list[SimQueue], cw: Any) -> World:
    world = World(parameters={}, queues=queues)
    world.plan = parse_plan(document)
    metrics = world.plan.target.metrics
    metrics = metrics.model_copy(update={"dimensions": {**metrics.dimensions, "Broker": "amq-1"}})
    world._amazon_mq_sample(cw, metrics, AT, 60, PLACED)
    return world


def test_activemq_publishes_its_first_1000_queues_and_a_bridge_every_queue(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    cw = aws("cloudwatch")
    names = [f"app.queue-{i:04d}" for i in range(1200)]
    ordered_plan["onPrem"]["queues"] = ["app.*"]
    _sample(ordered_plan, [SimQueue(name, 10) for name in names], cw)
    assert _published(cw, "AWS/AmazonMQ", "QueueSize") == names[:1000]
    assert _published(cw, "AWS/AmazonMQ", "ConsumerCount") == names[:1000]
    # The drain's Amazon MQ side finds only those: queues 1000 to 1199 are not there to read.
    plan = parse_plan(ordered_plan)
    assert side_queues(amazon_mq_side(plan, ["amq-1"]), cw) == names[:1000]

    ordered_plan["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
    _sample(ordered_plan, [SimQueue(name, 10) for name in names], cw)
    assert _published(cw, "MqCutover/AmazonMq", "QueueSize") == names
    plan = parse_plan(ordered_plan)
    assert side_queues(amazon_mq_side(plan, ["amq-1"]), cw) == names


def test_rabbitmq_publishes_its_first_500_queues_by_number_of_consumers(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    cw = aws("cloudwatch")
    document = as_rabbitmq(ordered_plan)
    document["onPrem"]["queues"] = ["app.*"]
    names = [f"app.queue-{i:04d}" for i in range(600)]
    # The first 150 queues have no consumer (drainPerMinute 0): they are the ones left out.
    queues = [SimQueue(name, 10, drain_per_minute=0 if i < 150 else 1000) for i, name in
              enumerate(names)]  # fmt: skip
    _sample(document, queues, cw)
    # The 450 with consumers, then 50 without (in the broker's order) fill the 500.
    assert _published(cw, "AWS/AmazonMQ", "MessageCount") == sorted(names[150:] + names[:50])

"""Count reconciliation: every message accounted for per queue and broker, or flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mq_cutover.drain import amazon_mq_side, on_prem_side
from mq_cutover.metrics_bridge import QueueStats, aggregate, aggregate_data, detail_data, put
from mq_cutover.plan import parse_plan
from mq_cutover.queue_set import DetailFigures, QueueSet
from mq_cutover.reconcile import increase, reconcile

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _publish(
    cw: Any, namespace: str, broker: str, queue: str, at: datetime, **values: float
) -> None:
    dims = [{"Name": "Broker", "Value": broker}, {"Name": "Queue", "Value": queue}]
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": value}
            for name, value in values.items()
        ],
    )


def test_a_counter_reset_by_a_restart_keeps_counting() -> None:
    minute = timedelta(minutes=1)
    points = [(T0, 100.0), (T0 + minute, 150.0), (T0 + 2 * minute, 20.0), (T0 + 3 * minute, 30.0)]
    # 50 before the restart, 20 from 0 after it, 10 more.
    assert increase(points, T0, 60) == 80
    # A series that starts well after the window began was created since: it grew from 0.
    assert increase([(T0 + 5 * minute, 7.0)], T0, 60) == 7
    assert increase([], T0, 60) is None


def test_every_message_is_accounted_for_or_the_queue_is_flagged(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """Per queue: every queue publishes its own counters (a per-queue publisher, or the
    bridge's `--detail-figures all` in aggregate readings, the default here)."""
    ordered_plan["onPrem"]["queues"] = ["orders.created", "orders.paid"]
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    ns = plan.on_prem.metrics.namespace
    minute = timedelta(minutes=1)
    # orders.created: 100 waiting at the start, 40 more arrive, 140 consumed, 0 left: balanced.
    _publish(cw, ns, "onprem-1", "orders.created", T0, QueueSize=100, EnqueueCount=1000,
             DequeueCount=900, ExpiredCount=0)  # fmt: skip
    _publish(cw, ns, "onprem-1", "orders.created", T0 + 10 * minute, QueueSize=0,
             EnqueueCount=1040, DequeueCount=1040, ExpiredCount=0)  # fmt: skip
    # orders.paid: 50 at the start, 10 arrive, 45 consumed, 5 expired, 0 left: 10 unaccounted.
    _publish(cw, ns, "onprem-1", "orders.paid", T0, QueueSize=50, EnqueueCount=500,
             DequeueCount=450, ExpiredCount=0)  # fmt: skip
    _publish(cw, ns, "onprem-1", "orders.paid", T0 + 10 * minute, QueueSize=0,
             EnqueueCount=510, DequeueCount=495, ExpiredCount=5)  # fmt: skip
    # A DLQ received 3 messages during the run: dead-lettered.
    _publish(cw, ns, "onprem-1", "ActiveMQ.DLQ", T0, QueueSize=7, EnqueueCount=7)
    _publish(cw, ns, "onprem-1", "ActiveMQ.DLQ", T0 + 10 * minute, QueueSize=10, EnqueueCount=10)
    # Amazon MQ (its own metrics, no ExpiredCount published here): created during the run.
    for queue, sent, taken in (("orders.created", 300, 300), ("orders.paid", 80, 70)):
        _publish(cw, "AWS/AmazonMQ", "amq-1", queue, T0 + 3 * minute, QueueSize=sent,
                 EnqueueCount=sent, DequeueCount=0)  # fmt: skip
        _publish(cw, "AWS/AmazonMQ", "amq-1", queue, T0 + 10 * minute, QueueSize=sent - taken,
                 EnqueueCount=sent, DequeueCount=taken)  # fmt: skip
    sides = [on_prem_side(plan), amazon_mq_side(plan, ["amq-1", "amq-2"])]
    counts = reconcile(plan, cw, sides, T0, T0 + 11 * minute)
    on_prem = counts["onPrem"]
    assert on_prem["level"] == "queue"
    assert (on_prem["atStart"], on_prem["enqueued"], on_prem["dequeued"]) == (150, 50, 185)
    assert (on_prem["expired"], on_prem["left"], on_prem["deadLettered"]) == (5, 0, 3)
    assert on_prem["flaggedCount"] == 1
    (paid,) = on_prem["flagged"]
    assert paid["queue"] == "orders.paid" and paid["difference"] == 10
    amazon_mq = counts["amazonMq"]
    assert (amazon_mq["atStart"], amazon_mq["enqueued"], amazon_mq["dequeued"]) == (0, 380, 370)
    assert amazon_mq["left"] == 10 and amazon_mq["expired"] is None  # not published: not 0
    assert amazon_mq["flaggedCount"] == 0


def test_a_queue_without_figures_is_unknown_not_zero(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.created"]
    plan = parse_plan(ordered_plan)
    counts = reconcile(plan, aws("cloudwatch"), [on_prem_side(plan)], T0, T0 + timedelta(hours=1))
    assert counts["onPrem"]["unknown"] == ["orders.created"]
    assert counts["onPrem"]["atStart"] is None and counts["onPrem"]["flaggedCount"] == 0


def _bridge(cw: Any, plan: Any, at: datetime, stats: list[QueueStats]) -> None:
    """One sample of the metrics bridge (its own code): the QueueSet aggregates and the
    default per-queue detail (the messages metric only: no per-queue counter)."""
    metrics = plan.on_prem.metrics
    queue_set = QueueSet.from_plan(plan)
    data = aggregate_data(
        aggregate(stats, queue_set), queue_set, metrics, at, high_resolution=False,
        queues_read=len(stats),
    )  # fmt: skip
    data += detail_data(
        stats, metrics, at, resolution=60, figures=DetailFigures.MESSAGES, queue_set=queue_set
    )
    put(cw, metrics.namespace, data)


def _stats(created: tuple[int, ...], paid: tuple[int, ...], dlq: tuple[int, int]) -> list[Any]:
    """(messages, enqueued, dequeued, expired) of two queues, (messages, enqueued) of a DLQ."""
    return [
        QueueStats("orders.created", created[0], 0, created[1], created[2], 1, created[3]),
        QueueStats("orders.paid", paid[0], 0, paid[1], paid[2], 1, paid[3]),
        QueueStats("ActiveMQ.DLQ", dlq[0], 0, dlq[1], 0, 0, 0),
    ]


def test_the_set_is_reconciled_from_the_aggregates_when_no_queue_counter_is_published(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.created", "orders.paid", "ActiveMQ.DLQ"]
    plan = parse_plan(ordered_plan)  # readings: aggregate (the default)
    cw = aws("cloudwatch")
    minute = timedelta(minutes=1)
    # The per-queue test's figures: 150 at the start, 50 arrive, 185 consumed, 5 expired, 0
    # left: 10 unaccounted for; the DLQ received 3.
    _bridge(cw, plan, T0, _stats((100, 1000, 900, 0), (50, 500, 450, 0), (7, 7)))
    _bridge(cw, plan, T0 + 10 * minute, _stats((0, 1040, 1040, 0), (0, 510, 495, 5), (10, 10)))
    on_prem = reconcile(plan, cw, [on_prem_side(plan)], T0, T0 + 11 * minute)["onPrem"]
    assert on_prem["level"] == "set" and on_prem["queues"] == 2
    assert (on_prem["atStart"], on_prem["enqueued"], on_prem["dequeued"]) == (150, 50, 185)
    assert (on_prem["expired"], on_prem["left"], on_prem["deadLettered"]) == (5, 0, 3)
    # Which queue does not add up is not in the aggregates: the set is flagged, as a set.
    (whole,) = on_prem["flagged"]
    assert whole["difference"] == 10 and whole["queue"].startswith("all 2 watched queues")
    assert on_prem["flaggedCount"] == 1 and on_prem["unknownCount"] == 0


def test_a_restart_inside_the_window_keeps_the_set_counting(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.created", "orders.paid"]
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    minute = timedelta(minutes=1)
    _bridge(cw, plan, T0, _stats((10, 1000, 990, 0), (0, 500, 500, 0), (0, 0)))
    _bridge(cw, plan, T0 + 2 * minute, _stats((5, 1020, 1015, 0), (0, 500, 500, 0), (0, 0)))
    # The broker restarted: counters from 0; the persistent queue kept its 5 messages.
    _bridge(cw, plan, T0 + 4 * minute, _stats((5, 0, 0, 0), (0, 0, 0, 0), (0, 0)))
    _bridge(cw, plan, T0 + 6 * minute, _stats((0, 8, 13, 0), (0, 2, 2, 0), (0, 0)))
    on_prem = reconcile(plan, cw, [on_prem_side(plan)], T0, T0 + 7 * minute)["onPrem"]
    # 20 enqueued before the restart and 10 after; 25 consumed before and 15 after.
    assert (on_prem["atStart"], on_prem["enqueued"], on_prem["dequeued"]) == (10, 30, 40)
    assert on_prem["left"] == 0 and on_prem["flaggedCount"] == 0


def test_no_aggregates_is_unknown_not_zero(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.created", "orders.paid"]
    plan = parse_plan(ordered_plan)
    counts = reconcile(plan, aws("cloudwatch"), [on_prem_side(plan)], T0, T0 + timedelta(hours=1))
    on_prem = counts["onPrem"]
    assert on_prem["level"] == "set" and on_prem["atStart"] is None and on_prem["left"] is None
    assert on_prem["unknown"] == ["orders.created", "orders.paid"] and on_prem["flaggedCount"] == 0

"""Drain detection: missing is not zero, the same datapoint is one reading, DLQs are reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.drain import check_drain
from mq_cutover.plan import MigrationPlan, parse_plan

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def plan(ordered_plan: dict[str, Any]) -> MigrationPlan:
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
    }
    return parse_plan(ordered_plan)


def publish(cw: Any, plan: MigrationPlan, at: datetime, depths: dict[str, tuple[int, int]]) -> None:
    metrics = plan.on_prem.metrics
    data = []
    for queue, (messages, in_flight) in depths.items():
        dims = [{"Name": "Broker", "Value": "onprem-1"}, {"Name": "Queue", "Value": queue}]
        data.append(
            {"MetricName": "QueueSize", "Dimensions": dims, "Timestamp": at, "Value": messages}
        )
        data.append(
            {"MetricName": "InFlightCount", "Dimensions": dims, "Timestamp": at, "Value": in_flight}
        )
    cw.put_metric_data(Namespace=metrics.namespace, MetricData=data)


ALL_EMPTY = {"orders.created": (0, 0), "orders.paid": (0, 0), "orders.shipped": (0, 0)}


def test_messages_and_in_flight_count_as_not_drained(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, {**ALL_EMPTY, "orders.paid": (0, 4), "ActiveMQ.DLQ": (9, 0)})
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert not result["drained"] and result["consecutiveEmpty"] == 0
    assert result["messagesLeft"] == 4
    assert result["queuesWithMessages"] == [{"queue": "orders.paid", "messages": 0, "inFlight": 4}]
    # The DLQ is ignored for the decision but reported with its count.
    assert result["ignored"] == [{"queue": "ActiveMQ.DLQ", "messages": 9}]


def test_missing_datapoint_is_not_zero(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, {"orders.created": (0, 0), "orders.paid": (0, 0)})
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert not result["drained"] and result["consecutiveEmpty"] == 0
    assert result["missing"] == ["orders.shipped"] and result["missingCount"] == 1


def test_stale_data_counts_as_missing(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, ALL_EMPTY)
    result = check_drain(plan, cw, None, T0 + timedelta(hours=1))
    assert result["missingCount"] == 3 and not result["drained"]


def test_k_new_readings_needed_and_a_reread_does_not_count(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, ALL_EMPTY)
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=10))
    assert first["consecutiveEmpty"] == 1 and not first["drained"]
    # Same minute, same datapoint: not a new reading.
    reread = check_drain(plan, cw, first, T0 + timedelta(seconds=40))
    assert reread["consecutiveEmpty"] == 1 and not reread["drained"]
    publish(cw, plan, T0 + timedelta(minutes=1), ALL_EMPTY)
    second = check_drain(plan, cw, reread, T0 + timedelta(minutes=1, seconds=10))
    assert second["consecutiveEmpty"] == 2 and second["drained"]
    assert second["polls"] == 3


def test_a_message_resets_the_count(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, ALL_EMPTY)
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=10))
    publish(cw, plan, T0 + timedelta(minutes=1), {**ALL_EMPTY, "orders.created": (1, 0)})
    second = check_drain(plan, cw, first, T0 + timedelta(minutes=1, seconds=10))
    assert second["consecutiveEmpty"] == 0 and second["messagesLeft"] == 1


def test_timeout_is_reported_not_treated_as_drained(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    previous = None
    for minute in range(5):
        at = T0 + timedelta(minutes=minute)
        publish(cw, plan, at, {**ALL_EMPTY, "orders.created": (10, 0)})
        previous = check_drain(plan, cw, previous, at + timedelta(seconds=5))
    assert previous is not None
    assert previous["timedOut"] and not previous["drained"] and previous["polls"] == 5


def test_queues_are_discovered_when_not_listed(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ordered_plan["onPrem"]["queues"] = []
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    publish(cw, plan, T0, {"a.one": (0, 0), "b.two": (3, 0), "x.DLQ": (1, 0)})
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert result["watchedQueues"] == 2
    assert result["queuesWithMessages"] == [{"queue": "b.two", "messages": 3, "inFlight": 0}]
    assert result["ignored"] == [{"queue": "x.DLQ", "messages": 1}]


def test_many_queues_are_batched_500_queries_a_call(aws: Any, ordered_plan: dict[str, Any]) -> None:
    queues = [f"q{i:04d}" for i in range(300)]  # 600 queries: two GetMetricData calls
    ordered_plan["onPrem"]["queues"] = queues
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    publish(cw, plan, T0, {q: (0, 0) for q in queues[:-1]} | {queues[-1]: (5, 1)})
    calls: list[int] = []
    original = cw.get_metric_data

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["MetricDataQueries"]))
        return original(**kwargs)

    cw.get_metric_data = counting
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert calls == [500, 100]
    assert result["messagesLeft"] == 6 and result["queuesWithMessagesCount"] == 1

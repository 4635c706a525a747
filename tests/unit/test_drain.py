"""Drain detection: missing and stale are not zero, the same datapoint is one reading, DLQs are
reported, a producer still sending to the old broker is seen, and one call takes many readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.drain import (
    Purpose,
    amazon_mq_side,
    broker_counts,
    check_drain,
    on_prem_side,
    read_queues,
    watch_drain,
)
from mq_cutover.errors import PlanInvalid
from mq_cutover.metrics_bridge import QueueStats, aggregate, aggregate_data, detail_data, put
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.queue_set import DetailFigures, QueueSet

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ENQUEUED = 1000  # every queue's cumulative enqueue counter, unless a test moves it


@pytest.fixture
def ordered_plan(ordered_plan: dict[str, Any]) -> dict[str, Any]:
    """The example plan read per queue (`readings: perQueue`): the tests below publish every
    queue's series each period, as a per-queue-only publisher does. The aggregate readings'
    own tests (below them) set `readings: aggregate` back."""
    ordered_plan["onPrem"]["metrics"]["readings"] = "perQueue"
    return ordered_plan


@pytest.fixture
def plan(ordered_plan: dict[str, Any]) -> MigrationPlan:
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
    }
    return parse_plan(ordered_plan)


def publish(
    cw: Any,
    plan: MigrationPlan,
    at: datetime,
    depths: dict[str, tuple[int, int]],
    enqueued: dict[str, int] | None = None,
    consumers: dict[str, int] | None = None,
    *,
    namespace: str | None = None,
    broker: str = "onprem-1",
) -> None:
    """What the metrics bridge (or Amazon MQ itself) publishes for one period."""
    metrics = plan.on_prem.metrics
    data = []
    for queue, (messages, in_flight) in depths.items():
        dims = [{"Name": "Broker", "Value": broker}, {"Name": "Queue", "Value": queue}]
        values = {
            "QueueSize": messages,
            "InFlightCount": in_flight,
            "EnqueueCount": (enqueued or {}).get(queue, ENQUEUED),
            "ConsumerCount": (consumers or {}).get(queue, 1),
        }
        data.extend(
            {"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": value}
            for name, value in values.items()
        )
    cw.put_metric_data(Namespace=namespace or metrics.namespace, MetricData=data)


ALL_EMPTY = {"orders.created": (0, 0), "orders.paid": (0, 0), "orders.shipped": (0, 0)}


def history(cw: Any, plan: MigrationPlan, until: datetime, minutes: int = 2) -> None:
    """The bridge ran before the drain: quiet, empty periods."""
    for back in range(minutes, 0, -1):
        publish(cw, plan, until - timedelta(minutes=back), ALL_EMPTY)


def test_messages_and_in_flight_count_as_not_drained(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    history(cw, plan, T0)
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


def test_stale_data_is_reported_and_not_zero(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    history(cw, plan, T0)
    publish(cw, plan, T0, ALL_EMPTY)
    # The bridge stopped: four minutes later the newest datapoints are four minutes old.
    result = check_drain(plan, cw, None, T0 + timedelta(minutes=4, seconds=5))
    assert not result["drained"] and result["staleCount"] == 3
    assert result["stale"][0]["ageSeconds"] >= 240
    # Much later there is nothing in the window at all: missing.
    later = check_drain(plan, cw, result, T0 + timedelta(hours=1))
    assert later["missingCount"] == 3 and later["staleCount"] == 0 and not later["drained"]


def test_k_new_readings_needed_and_a_reread_does_not_count(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    history(cw, plan, T0)
    publish(cw, plan, T0, ALL_EMPTY)
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=10))
    # Empty, but the first reading has no earlier enqueue total to compare: it cannot count.
    assert first["consecutiveEmpty"] == 0 and first["enqueueTotal"] == 3 * ENQUEUED
    publish(cw, plan, T0 + timedelta(minutes=1), ALL_EMPTY)
    second = check_drain(plan, cw, first, T0 + timedelta(minutes=1, seconds=10))
    assert second["consecutiveEmpty"] == 1 and not second["drained"]
    # Same minute, same datapoint: not a new reading.
    reread = check_drain(plan, cw, second, T0 + timedelta(minutes=1, seconds=40))
    assert reread["consecutiveEmpty"] == 1 and not reread["drained"]
    publish(cw, plan, T0 + timedelta(minutes=2), ALL_EMPTY)
    third = check_drain(plan, cw, reread, T0 + timedelta(minutes=2, seconds=10))
    assert third["consecutiveEmpty"] == 2 and third["drained"]
    assert third["polls"] == 4 and third["readings"] == 4


def test_enqueues_between_readings_are_seen_even_inside_one_bucket(
    aws: Any, plan: MigrationPlan
) -> None:
    """A bridge sampling every 10 s into 60-s buckets: an enqueue late in a bucket raises that
    bucket's Maximum after it was read. The total since the previous reading still shows it."""
    cw = aws("cloudwatch")
    history(cw, plan, T0)
    publish(cw, plan, T0, ALL_EMPTY)
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    # Later in the same minute a straggler's message arrives and is consumed at once.
    publish(cw, plan, T0 + timedelta(seconds=50), ALL_EMPTY, {"orders.paid": ENQUEUED + 1})
    publish(cw, plan, T0 + timedelta(minutes=1), ALL_EMPTY, {"orders.paid": ENQUEUED + 1})
    second = check_drain(plan, cw, first, T0 + timedelta(minutes=1, seconds=5))
    # Newest two buckets both read ENQUEUED + 1 (no move between them), but the sum moved.
    assert second["stillReceivingCount"] == 0
    assert not second["producersQuiet"] and second["consecutiveEmpty"] == 0


def test_a_message_resets_the_count(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    history(cw, plan, T0)
    publish(cw, plan, T0, ALL_EMPTY)
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=10))
    publish(
        cw,
        plan,
        T0 + timedelta(minutes=1),
        {**ALL_EMPTY, "orders.created": (1, 0)},
        {"orders.created": ENQUEUED + 1},
    )
    second = check_drain(plan, cw, first, T0 + timedelta(minutes=1, seconds=10))
    assert second["consecutiveEmpty"] == 0 and second["messagesLeft"] == 1


def test_a_producer_still_sending_on_prem_is_not_drained(aws: Any, plan: MigrationPlan) -> None:
    """A straggler producer whose messages are consumed at once keeps the queue at 0; its
    enqueue counter still moves, so the drain does not count the reading."""
    cw = aws("cloudwatch")
    history(cw, plan, T0)
    for minute in range(3):
        publish(
            cw,
            plan,
            T0 + timedelta(minutes=minute),
            ALL_EMPTY,
            {"orders.paid": ENQUEUED + 50 * (minute + 1)},
        )
    result = check_drain(plan, cw, None, T0 + timedelta(minutes=2, seconds=5))
    assert result["messagesLeft"] == 0 and not result["producersQuiet"]
    assert result["consecutiveEmpty"] == 0 and not result["drained"]
    assert result["stillReceiving"] == [{"queue": "orders.paid", "enqueued": 50.0}]
    # The producer stops: the counter stays put for a period, and readings count again.
    publish(cw, plan, T0 + timedelta(minutes=3), ALL_EMPTY, {"orders.paid": ENQUEUED + 150})
    quiet = check_drain(plan, cw, result, T0 + timedelta(minutes=3, seconds=5))
    assert quiet["producersQuiet"] and quiet["consecutiveEmpty"] == 1


def test_one_enqueue_datapoint_or_a_reset_counter_is_not_quiet(
    aws: Any, plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    publish(cw, plan, T0, ALL_EMPTY)  # no history: nothing proves the counter stood still
    first = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert first["stillReceivingCount"] == 3 and first["consecutiveEmpty"] == 0
    # The broker restarted: its counters start again from 0.
    publish(cw, plan, T0 + timedelta(minutes=1), ALL_EMPTY, {"orders.created": 0})
    reset = check_drain(plan, cw, first, T0 + timedelta(minutes=1, seconds=5))
    assert reset["stillReceiving"] == [{"queue": "orders.created", "enqueued": -ENQUEUED}]


def test_quiet_producers_can_be_waived(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ordered_plan["drain"] = {"requireProducersQuiet": False, "consecutiveEmptyReadings": 1}
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    publish(cw, plan, T0, ALL_EMPTY)
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert result["drained"] and result["stillReceivingCount"] == 0


def test_quiet_producers_need_an_enqueue_metric(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["onPrem"]["metrics"]["enqueueMetric"] = None
    with pytest.raises(PlanInvalid) as err:
        parse_plan(ordered_plan)
    assert "drain.requireProducersQuiet needs onPrem.metrics.enqueueMetric" in str(err.value)


def test_timeout_is_a_deadline_and_an_extension_moves_it(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    previous = None
    for minute in range(6):
        at = T0 + timedelta(minutes=minute)
        publish(cw, plan, at, {**ALL_EMPTY, "orders.created": (10, 0)})
        previous = check_drain(plan, cw, previous, at + timedelta(seconds=5))
    assert previous is not None
    assert previous["timedOut"] and not previous["drained"]
    assert previous["deadlineAt"] == (T0 + timedelta(seconds=5, minutes=5)).isoformat()
    assert previous["extensionsLeft"] == 3
    # An approver extends by the plan's extendMinutes (30): the deadline moves from now.
    extended = check_drain(
        plan, cw, {**previous, "extendMinutes": 30}, T0 + timedelta(minutes=6, seconds=5)
    )
    assert not extended["timedOut"] and extended["extensions"] == 1
    assert extended["extensionsLeft"] == 2 and "extendMinutes" not in extended
    assert extended["deadlineAt"] == (T0 + timedelta(minutes=36, seconds=5)).isoformat()


@pytest.mark.parametrize(
    ("listed", "watched", "missing", "left"),
    [
        ([], 3, [], 2),  # nothing listed: every discovered queue (the DLQ ignored)
        # patterns match discovered queues; a listed name that publishes nothing is missing
        (["orders.*", "billing.invoices"], 3, ["billing.invoices"], 2),
    ],
)
def test_queues_are_discovered_or_matched_by_pattern(
    aws: Any,
    ordered_plan: dict[str, Any],
    listed: list[str],
    watched: int,
    missing: list[str],
    left: int,
) -> None:
    ordered_plan["onPrem"]["queues"] = listed
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    depths = {"orders.a": (0, 0), "orders.b": (2, 0), "audit.log": (0, 0), "x.DLQ": (1, 0)}
    if listed:
        depths["audit.log"] = (9, 0)  # does not match a pattern: not watched
    publish(cw, plan, T0 - timedelta(minutes=1), depths)
    publish(cw, plan, T0, depths)
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert result["watchedQueues"] == watched and result["messagesLeft"] == left
    assert result["missing"] == missing
    assert result["queuesWithMessages"] == [{"queue": "orders.b", "messages": 2, "inFlight": 0}]
    ignored = [{"queue": "x.DLQ", "messages": 1}] if not listed else []
    assert result["ignored"] == ignored


def test_many_queues_are_batched_500_queries_a_call(aws: Any, ordered_plan: dict[str, Any]) -> None:
    queues = [f"q{i:04d}" for i in range(300)]  # 4 metrics each: 1,200 queries, three calls
    ordered_plan["onPrem"]["queues"] = queues
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    depths = {q: (0, 0) for q in queues[:-1]} | {queues[-1]: (5, 1)}
    publish(cw, plan, T0 - timedelta(minutes=1), depths)
    publish(cw, plan, T0, depths)
    calls: list[int] = []
    original = cw.get_metric_data

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["MetricDataQueries"]))
        return original(**kwargs)

    cw.get_metric_data = counting
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert calls == [500, 500, 200]
    # QueueSize already includes the unacknowledged: 5 left (1 of them in flight).
    assert result["messagesLeft"] == 5 and result["queuesWithMessagesCount"] == 1


class FakeTime:
    """Time for watch_drain: sleeping moves it, and the 'bridge' publishes as it passes."""

    def __init__(self, start: datetime, on_sleep: Any) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        self.on_sleep(self.now)


def fast_plan(ordered_plan: dict[str, Any], **drain: Any) -> MigrationPlan:
    ordered_plan["onPrem"]["metrics"]["periodSeconds"] = 10
    ordered_plan["drain"] = {"pollIntervalSeconds": 10, "consecutiveEmptyReadings": 3, **drain}
    return parse_plan(ordered_plan)


def test_one_call_takes_readings_until_drained(aws: Any, ordered_plan: dict[str, Any]) -> None:
    plan = fast_plan(ordered_plan)
    cw = aws("cloudwatch")
    start = T0 + timedelta(seconds=1)
    for back in (30, 20, 10):
        publish(cw, plan, T0 - timedelta(seconds=back), {**ALL_EMPTY, "orders.paid": (7, 0)})
    publish(cw, plan, T0, {**ALL_EMPTY, "orders.paid": (2, 0)})

    def bridge(now: datetime) -> None:
        stamp = now - timedelta(seconds=1)  # the period that just closed
        publish(cw, plan, stamp.replace(second=stamp.second - stamp.second % 10), ALL_EMPTY)

    fake = FakeTime(start, bridge)
    result = watch_drain(plan, cw, None, budget_seconds=240, now=lambda: fake.now, sleep=fake.sleep)
    assert result["drained"] and result["polls"] == 1
    # Reading 1 sees 2 messages; readings 2, 3, 4 are the three new empty periods.
    assert result["readings"] == 4 and fake.slept == [10.0, 10.0, 10.0]


def test_one_call_stops_at_its_budget(aws: Any, ordered_plan: dict[str, Any]) -> None:
    plan = fast_plan(ordered_plan)
    cw = aws("cloudwatch")

    def bridge(now: datetime) -> None:
        publish(cw, plan, now - timedelta(seconds=1), {**ALL_EMPTY, "orders.paid": (5, 0)})

    fake = FakeTime(T0, bridge)
    result = watch_drain(plan, cw, None, budget_seconds=45, now=lambda: fake.now, sleep=fake.sleep)
    assert not result["drained"] and not result["timedOut"]
    assert result["readings"] == 5 and result["polls"] == 1  # at 0, 10, 20, 30, 40 s
    again = watch_drain(plan, cw, result, budget_seconds=0, now=lambda: fake.now, sleep=fake.sleep)
    assert again["readings"] == 6 and again["polls"] == 2


def test_no_reading_before_the_next_period_can_have_a_datapoint(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """Metrics published once a minute, read every 5 s: a reading before the next minute has
    closed would read the same datapoint (counted once) at the full price. The call reads at
    its start, then from each next period on (until the new datapoint shows), and drains at
    the same moment as reading every 5 s would."""
    ordered_plan["onPrem"]["metrics"]["periodSeconds"] = 60
    ordered_plan["onPrem"]["metrics"]["readings"] = "perQueue"
    ordered_plan["drain"] = {"pollIntervalSeconds": 5, "consecutiveEmptyReadings": 2}
    plan = parse_plan(ordered_plan)
    visible_after = 7  # seconds from a period's end to its datapoint being readable

    def run() -> tuple[dict[str, Any], list[datetime]]:
        cw = aws("cloudwatch")
        for back in (180, 120, 60):
            publish(cw, plan, T0 - timedelta(seconds=back), {**ALL_EMPTY, "orders.paid": (4, 0)})
        published = {T0 - timedelta(seconds=60)}
        read_at: list[datetime] = []
        original = cw.get_metric_data

        def counting(**kwargs: Any) -> Any:
            read_at.append(fake.now)
            return original(**kwargs)

        cw.get_metric_data = counting

        def bridge(now: datetime) -> None:  # a sample stamped S readable at S + 7 s
            stamp = (now - timedelta(seconds=visible_after)).replace(second=0)
            if stamp not in published and stamp >= T0:
                published.add(stamp)
                publish(cw, plan, stamp, ALL_EMPTY)

        fake = FakeTime(T0 + timedelta(seconds=2), bridge)
        result = watch_drain(
            plan, cw, None, budget_seconds=240, now=lambda: fake.now, sleep=fake.sleep
        )
        return result, read_at

    result, read_at = run()
    assert result["drained"]
    # At 2 s the newest is T0-60 s (4 messages): T0's sample is readable at 7 s (empty); the
    # next, T0+60 s, cannot exist before 60 s and shows at 67 s: read at 60, 65, 70 (empty,
    # the second in a row: drained). Every 5 s would have read 14 times for the same answer.
    seconds = sorted({int((at - T0).total_seconds()) for at in read_at})
    assert seconds == [2, 7, 60, 65, 70]
    assert result["checkedAt"] == (T0 + timedelta(seconds=70)).isoformat()
    assert result["readings"] == 5


def test_history_budget_counts_readings_per_call_and_extensions(
    ordered_plan: dict[str, Any],
) -> None:
    # 12 hours at one reading every 5 s fits when a call takes 240 s of readings ...
    ordered_plan["onPrem"]["metrics"]["periodSeconds"] = 5
    ordered_plan["drain"] = {"pollIntervalSeconds": 5, "timeoutMinutes": 720}
    parse_plan(ordered_plan)
    # ... and not at one reading a call.
    ordered_plan["drain"]["maxSecondsPerCheck"] = 0
    with pytest.raises(PlanInvalid) as err:
        parse_plan(ordered_plan)
    assert "drain.maxSecondsPerCheck" in str(err.value)


def test_slow_readings_still_end_within_the_budget(aws: Any, ordered_plan: dict[str, Any]) -> None:
    """A reading that takes longer than the interval (thousands of queues) must not push the
    call past its budget: the Lambda would time out and the run roll back."""
    plan = fast_plan(ordered_plan, pollIntervalSeconds=5)
    cw = aws("cloudwatch")
    fake = FakeTime(T0, lambda _now: None)
    original = cw.get_metric_data

    def slow(**kwargs: Any) -> Any:
        fake.now += timedelta(seconds=6)  # every reading takes 6 s
        return original(**kwargs)

    cw.get_metric_data = slow
    result = watch_drain(plan, cw, None, budget_seconds=45, now=lambda: fake.now, sleep=fake.sleep)
    assert (fake.now - T0).total_seconds() <= 45
    assert result["readings"] == 7 and fake.slept == []  # back to back, and no further


def test_a_queue_with_messages_and_no_consumer_will_never_drain(
    aws: Any, plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    depths = ALL_EMPTY | {"orders.paid": (40, 0)}
    publish(cw, plan, T0 - timedelta(minutes=1), depths, consumers={"orders.paid": 0})
    publish(cw, plan, T0, depths, consumers={"orders.paid": 0})
    result = check_drain(plan, cw, None, T0 + timedelta(seconds=5))
    assert result["neverDrain"] == [{"queue": "orders.paid", "messages": 40}]
    assert result["neverDrainCount"] == 1 and not result["drained"]


def test_the_fence_waits_for_every_consumer_to_leave(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    history(cw, plan, T0 - timedelta(minutes=1))
    connected = {"orders.created": 2, "orders.paid": 0, "orders.shipped": 0}
    publish(cw, plan, T0 - timedelta(minutes=1), ALL_EMPTY, consumers=connected)
    publish(cw, plan, T0, ALL_EMPTY, consumers=connected)
    fence = watch_drain(
        plan, cw, None, budget_seconds=0, now=lambda: T0 + timedelta(seconds=5),
        sleep=lambda _: None, purpose=Purpose.FENCE,
    )  # fmt: skip
    # Drained, but a consumer is still connected on-prem: not fenced, and it is named.
    assert fence["connected"] == [{"queue": "orders.created", "consumers": 2}]
    assert fence["consecutiveEmpty"] == 0 and not fence["done"]
    gone = {q: 0 for q in ALL_EMPTY}
    at = T0
    for _ in range(3):
        at += timedelta(minutes=1)
        publish(cw, plan, at, ALL_EMPTY, consumers=gone)
        fence = watch_drain(
            plan, cw, fence, budget_seconds=0, now=lambda at=at: at + timedelta(seconds=5),
            sleep=lambda _: None, purpose=Purpose.FENCE,
        )  # fmt: skip
    assert fence["done"] and fence["connectedCount"] == 0 and fence["side"] == "onPrem"


def test_a_missing_consumer_count_is_not_zero_for_the_fence(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    data = [  # a bridge that publishes no ConsumerCount
        {
            "MetricName": name,
            "Dimensions": [{"Name": "Broker", "Value": "onprem-1"}, {"Name": "Queue", "Value": q}],
            "Timestamp": T0,
            "Value": 0,
        }
        for q in ("late.queue",)
        for name in ("QueueSize", "InFlightCount", "EnqueueCount")
    ]
    cw.put_metric_data(Namespace=plan.on_prem.metrics.namespace, MetricData=data)
    side = on_prem_side(plan)
    reading = read_queues(plan, cw, T0 + timedelta(seconds=5), ["late.queue"], side=side)
    assert reading.missing == []  # the drain itself does not need consumers
    fence = read_queues(
        plan, cw, T0 + timedelta(seconds=5), ["late.queue"], side=side, purpose=Purpose.FENCE
    )
    assert fence.missing == ["late.queue"] and not fence.met


def test_placement_needs_a_consumer_on_each_broker_for_every_queue(
    aws: Any, plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    # Amazon MQ's own metrics: namespace AWS/AmazonMQ, Broker = <name>-1 (the active instance).
    for at in (T0 - timedelta(minutes=1), T0):
        publish(cw, plan, at, ALL_EMPTY, consumers={"orders.created": 1, "orders.paid": 2})
        publish(
            cw, plan, at, ALL_EMPTY, consumers={"orders.created": 1, "orders.paid": 0},
            namespace="AWS/AmazonMQ", broker="amq-prod-1",
        )  # fmt: skip
    other = amazon_mq_side(plan, ["amq-prod-1", "amq-prod-2"])
    reading = read_queues(
        plan, cw, T0 + timedelta(seconds=5), list(ALL_EMPTY), purpose=Purpose.PLACEMENT,
        other=other,
    )  # fmt: skip
    # orders.created and orders.shipped have a reader on each broker; orders.paid does not.
    assert reading.unplaced == [{"queue": "orders.paid", "onPrem": 2, "amazonMq": 0}]
    assert not reading.met


def test_amazon_mq_side_reads_the_freshest_instance(aws: Any, plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    # The standby (-2) took over: -1 stopped publishing a few minutes ago, -2 is fresh.
    publish(cw, plan, T0 - timedelta(minutes=4), ALL_EMPTY, namespace="AWS/AmazonMQ",
            broker="amq-prod-1")  # fmt: skip
    for at in (T0 - timedelta(minutes=1), T0):
        publish(
            cw, plan, at, ALL_EMPTY | {"orders.paid": (7, 0)}, namespace="AWS/AmazonMQ",
            broker="amq-prod-2",
        )  # fmt: skip
    side = amazon_mq_side(plan, ["amq-prod-1", "amq-prod-2"])
    reading = read_queues(plan, cw, T0 + timedelta(seconds=5), list(ALL_EMPTY), side=side)
    assert reading.stale == [] and reading.missing == []
    assert reading.messages_left == 7


class CountingCloudWatch:
    """CloudWatch at scale, without moto: every queue reports, empty and quiet; counts calls
    and refuses what CloudWatch refuses (more than 500 queries a call)."""

    def __init__(self, queues: list[str]) -> None:
        self.queues = queues
        self.calls: list[str] = []

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_metrics"
        outer = self

        class Pages:
            def paginate(self, **kwargs: Any) -> Any:
                dims = [d for d in kwargs["Dimensions"] if "Value" in d]
                for start in range(0, len(outer.queues), 500):  # ListMetrics: 500 a page
                    outer.calls.append("ListMetrics")
                    yield {
                        "Metrics": [
                            {"Dimensions": [*dims, {"Name": "Queue", "Value": q}]}
                            for q in outer.queues[start : start + 500]
                        ]
                    }

        return Pages()

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        queries = kwargs["MetricDataQueries"]
        assert len(queries) <= 500, len(queries)
        self.calls.append("GetMetricData")
        end = kwargs["EndTime"]
        results = []
        for query in queries:
            period = timedelta(seconds=query["MetricStat"]["Period"])
            value = 100.0 if query["Id"].startswith(("e", "c")) else 0.0
            stamps = [end - 2 * period, end - 3 * period]
            results.append({"Id": query["Id"], "Timestamps": stamps, "Values": [value, value]})
        return {"MetricDataResults": results}


@pytest.mark.parametrize(
    ("purpose", "brokers", "per_reading"),
    [
        # 1,000 queues x 4 metrics (messages, in flight, enqueued, consumers) = 8 calls of 500
        (Purpose.DRAIN, None, 8),
        (Purpose.FENCE, None, 8),
        # on-prem 3 metrics + Amazon MQ 3 metrics on each of its 2 instances: 18 calls
        (Purpose.PLACEMENT, ["orders-amazonmq-1", "orders-amazonmq-2"], 18),
    ],
)
def test_calls_per_reading_at_1000_queues_matched_by_pattern(
    ordered_plan: dict[str, Any], purpose: Purpose, brokers: list[str] | None, per_reading: int
) -> None:
    """The documented scale: one discovery (2 ListMetrics pages) per Lambda call, then each
    reading batches 500 queries a GetMetricData call. A regression here (a call per queue, a
    discovery per reading) is what would push Check Drain past its Lambda timeout."""
    queues = [f"app.queue-{i:04d}" for i in range(1000)]
    ordered_plan["onPrem"]["queues"] = ["app.queue-*"]
    plan = fast_plan(ordered_plan, pollIntervalSeconds=10)
    cw = CountingCloudWatch(queues)
    fake = FakeTime(T0, lambda _now: None)
    result = watch_drain(
        plan,
        cw,
        None,
        budget_seconds=45,
        now=lambda: fake.now,
        sleep=fake.sleep,
        purpose=purpose,
        other=amazon_mq_side(plan, brokers) if brokers else None,
    )
    readings = result["readings"]
    assert result["watchedQueues"] == 1000 and readings >= 2
    assert cw.calls.count("ListMetrics") == 2
    assert cw.calls.count("GetMetricData") == per_reading * readings


# --- Aggregate readings (`onPrem.metrics.readings: aggregate`, the default) -----------------
# The bridge's own code writes the datapoints: its aggregates of the plan's QueueSet every
# sample and the per-queue messages detail when it is due.


@pytest.fixture
def agg_plan(ordered_plan: dict[str, Any]) -> MigrationPlan:
    ordered_plan["onPrem"]["metrics"]["readings"] = "aggregate"
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 60,
        "consecutiveEmptyReadings": 2,
        "timeoutMinutes": 5,
    }
    return parse_plan(ordered_plan)


AGG_QUEUES = {**ALL_EMPTY, "ActiveMQ.DLQ": (0, 0)}


def bridge_sample(
    cw: Any,
    plan: MigrationPlan,
    at: datetime,
    depths: dict[str, tuple[int, int]] | None = None,
    enqueued: dict[str, int] | None = None,
    consumers: dict[str, int] | None = None,
    *,
    detail: bool = True,
    detail_only: list[str] | None = None,
    queue_set: QueueSet | None = None,
) -> None:
    """One sample of the metrics bridge (`metrics_bridge.aggregate_data` / `detail_data`):
    the aggregates of `queue_set` (the plan's) and, when `detail`, the per-queue messages
    series (of the `detail_only` queues: a detail that lost some)."""
    metrics = plan.on_prem.metrics
    queue_set = queue_set or QueueSet.from_plan(plan)
    stats = [
        QueueStats(
            queue,
            messages,
            in_flight,
            (enqueued or {}).get(queue, ENQUEUED),
            0,
            (consumers or {}).get(queue, 1),
        )
        for queue, (messages, in_flight) in (depths or AGG_QUEUES).items()
    ]
    high = metrics.period_seconds < 60
    data = aggregate_data(
        aggregate(stats, queue_set), queue_set, metrics, at, high_resolution=high,
        queues_read=len(stats),
    )  # fmt: skip
    if detail:
        shown = [s for s in stats if detail_only is None or s.queue in detail_only]
        data += detail_data(
            shown, metrics, at, resolution=1 if high and metrics.detail_period_seconds < 60
            else 60, figures=DetailFigures.MESSAGES, queue_set=queue_set,
        )  # fmt: skip
    put(cw, metrics.namespace, data)


def bridge_ran(cw: Any, plan: MigrationPlan, *sample: Any, **options: Any) -> None:
    """The bridge sampled a minute before T0 and at T0 (`bridge_sample`'s arguments): a drain
    check at T0 + 5 s has the two aggregate periods it compares."""
    for at in (T0 - timedelta(minutes=1), T0):
        bridge_sample(cw, plan, at, *sample, **options)


def checked_each_minute(
    cw: Any, plan: MigrationPlan, minutes: int, **sample: Any
) -> dict[str, Any]:
    """The bridge samples at T0 and each minute after (`bridge_sample`'s options), each sample
    read 5 s later by a drain check that carries the previous one's state: the last check."""
    previous = None
    for minute in range(minutes):
        at = T0 + timedelta(minutes=minute)
        bridge_sample(cw, plan, at, **sample)
        previous = check_drain(plan, cw, previous, at + timedelta(seconds=5))
    assert previous is not None
    return previous


def counting_reads(cw: Any) -> list[int]:
    """The metrics each GetMetricData call asks for, in order."""
    calls: list[int] = []
    original = cw.get_metric_data

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["MetricDataQueries"]))
        return original(**kwargs)

    cw.get_metric_data = counting
    return calls


def test_aggregate_readings_drain_after_k_new_readings_and_a_dlq_is_only_reported(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    bridge_ran(cw, agg_plan, {**AGG_QUEUES, "orders.paid": (4, 4), "ActiveMQ.DLQ": (9, 0)})
    calls = counting_reads(cw)
    first = check_drain(agg_plan, cw, None, T0 + timedelta(seconds=5))
    assert (
        first["readMode"] == "aggregate"
        and first["queueSet"] == QueueSet.from_plan(agg_plan).digest
    )
    assert not first["drained"] and first["messagesLeft"] == 4
    # Named from the detail; in flight is known: one queue holds every message.
    assert first["queuesWithMessages"] == [{"queue": "orders.paid", "messages": 4, "inFlight": 4}]
    # The DLQ: only in SetIgnored* and its own detail, reported, never waited for.
    assert first["ignored"] == [{"queue": "ActiveMQ.DLQ", "messages": 9}]
    assert first["ignoredMessages"] == 9 and first["watchedQueues"] == 3
    assert first["queuesReported"] == 3 and first["detailReadAt"] == first["checkedAt"]
    # Six aggregates, then the detail: the messages series of the four queues.
    assert calls == [6, 4] and first["metricsRead"] == 10
    drained = {**AGG_QUEUES, "ActiveMQ.DLQ": (9, 0)}
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=1), drained)
    second = check_drain(agg_plan, cw, first, T0 + timedelta(minutes=1, seconds=5))
    assert second["consecutiveEmpty"] == 1 and second["queuesWithMessages"] == []
    # The same datapoint read again is not a new reading.
    reread = check_drain(agg_plan, cw, second, T0 + timedelta(minutes=1, seconds=40))
    assert reread["consecutiveEmpty"] == 1 and not reread["drained"]
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=2), drained)
    third = check_drain(agg_plan, cw, reread, T0 + timedelta(minutes=2, seconds=5))
    assert third["drained"] and third["consecutiveEmpty"] == 2 and third["producersQuiet"]
    assert third["ignored"] == [{"queue": "ActiveMQ.DLQ", "messages": 9}]
    assert third["metricsRead"] == 40 and "readError" not in third


def test_aggregates_missing_are_not_zero_and_say_what_to_run(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    """A bridge publishing per-queue series only (or none): no aggregate for the plan's set."""
    cw = aws("cloudwatch")
    for at in (T0 - timedelta(minutes=1), T0):
        publish(cw, agg_plan, at, {**ALL_EMPTY, "orders.paid": (3, 0)})
    result = check_drain(agg_plan, cw, None, T0 + timedelta(seconds=5))
    digest = QueueSet.from_plan(agg_plan).digest
    assert not result["drained"] and result["consecutiveEmpty"] == 0
    assert f"no recent aggregates for QueueSet {digest}" in result["readError"]
    assert "publish-metrics --plan" in result["readError"] and "perQueue" in result["readError"]
    # What the detail shows is kept (at least), never zero.
    assert result["messagesLeft"] == 3
    assert result["queuesWithMessages"][0]["queue"] == "orders.paid"
    nothing = check_drain(agg_plan, cw, None, T0 + timedelta(days=1))
    assert not nothing["drained"] and nothing["missingCount"] == 3 and nothing["readError"]


def test_stale_aggregates_are_not_zero(aws: Any, agg_plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    bridge_ran(cw, agg_plan)
    # The bridge stopped: four minutes later the newest aggregates are four minutes old.
    result = check_drain(agg_plan, cw, None, T0 + timedelta(minutes=4, seconds=5))
    assert not result["drained"] and result["consecutiveEmpty"] == 0
    assert "s old (stale after 180 s)" in result["readError"]
    assert result["staleCount"] == 3  # the detail's names: each queue's own series too


def test_a_queue_the_bridge_did_not_read_is_not_counted_as_empty(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    lost = {q: v for q, v in AGG_QUEUES.items() if q != "orders.shipped"}
    previous = checked_each_minute(cw, agg_plan, 4, depths=lost)
    assert not previous["drained"] and previous["consecutiveEmpty"] == 0
    assert previous["queuesReported"] == 2 and previous["watchedQueues"] == 3
    assert "read 2 of the 3 watched queues" in previous["readError"]
    assert previous["missing"] == ["orders.shipped"]


def test_a_listed_queue_missing_in_the_detail_holds_the_drain(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    """The aggregates count three queues, but the detail has no series for one of them: the
    drain does not know that the three are the ones it watches."""
    cw = aws("cloudwatch")
    previous = checked_each_minute(cw, agg_plan, 4, detail_only=["orders.created", "orders.paid"])
    assert not previous["drained"] and previous["consecutiveEmpty"] == 0
    assert previous["missing"] == ["orders.shipped"] and previous["queuesReported"] == 3


def test_a_straggler_moves_the_set_enqueue_total(aws: Any, agg_plan: MigrationPlan) -> None:
    """Its messages are consumed at once (0 messages throughout); the set's enqueue total
    still moves, so no reading counts until that producer stops."""
    cw = aws("cloudwatch")
    for minute in range(3):
        bridge_sample(
            cw, agg_plan, T0 + timedelta(minutes=minute),
            enqueued={"orders.paid": ENQUEUED + 50 * (minute + 1)},
        )  # fmt: skip
    result = check_drain(agg_plan, cw, None, T0 + timedelta(minutes=2, seconds=5))
    assert result["messagesLeft"] == 0 and not result["producersQuiet"]
    assert result["enqueuedNewestPeriod"] == 50 and result["consecutiveEmpty"] == 0
    # Which queue is not in the aggregates: not named, and not counted as none.
    assert result["stillReceiving"] == [] and result["stillReceivingCount"] is None
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=3), enqueued={"orders.paid": ENQUEUED + 150})
    quiet = check_drain(agg_plan, cw, result, T0 + timedelta(minutes=3, seconds=5))
    assert quiet["producersQuiet"] and quiet["consecutiveEmpty"] == 1
    assert quiet["enqueuedNewestPeriod"] == 0 and quiet["stillReceivingCount"] == 0


def test_set_enqueues_between_readings_are_seen_inside_one_bucket(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    bridge_ran(cw, agg_plan)
    first = check_drain(agg_plan, cw, None, T0 + timedelta(seconds=5))
    assert first["enqueueTotal"] == 3 * ENQUEUED
    # Later in the same minute a straggler's message arrives and is consumed at once.
    late = {"orders.paid": ENQUEUED + 1}
    bridge_sample(cw, agg_plan, T0 + timedelta(seconds=50), enqueued=late, detail=False)
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=1), enqueued=late)
    second = check_drain(agg_plan, cw, first, T0 + timedelta(minutes=1, seconds=5))
    # Newest two buckets both read the new total (no move between them), but it moved since.
    assert second["enqueuedNewestPeriod"] == 0
    assert not second["producersQuiet"] and second["consecutiveEmpty"] == 0


def test_one_set_datapoint_or_a_reset_total_is_not_quiet(aws: Any, agg_plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    bridge_sample(cw, agg_plan, T0)  # no history: nothing proves the total stood still
    first = check_drain(agg_plan, cw, None, T0 + timedelta(seconds=5))
    assert not first["producersQuiet"] and first["enqueuedNewestPeriod"] is None
    # The broker restarted: its counters start again from 0.
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=1), enqueued=dict.fromkeys(ALL_EMPTY, 0))
    reset = check_drain(agg_plan, cw, first, T0 + timedelta(minutes=1, seconds=5))
    assert reset["enqueuedNewestPeriod"] == -3 * ENQUEUED and not reset["producersQuiet"]
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=2), enqueued=dict.fromkeys(ALL_EMPTY, 0))
    after = check_drain(agg_plan, cw, reset, T0 + timedelta(minutes=2, seconds=5))
    assert after["producersQuiet"] and after["consecutiveEmpty"] == 1


def test_another_queue_sets_aggregates_are_never_read(aws: Any, agg_plan: MigrationPlan) -> None:
    """A bridge watching other queues (or other ignore patterns) publishes under another
    digest: its figures are not this plan's, however empty."""
    cw = aws("cloudwatch")
    other = QueueSet.of(["orders.*"], ["ActiveMQ.DLQ"])
    assert other.digest != QueueSet.from_plan(agg_plan).digest
    previous = checked_each_minute(cw, agg_plan, 3, queue_set=other)
    assert not previous["drained"]
    assert QueueSet.from_plan(agg_plan).digest in previous["readError"]
    assert previous["queuesReported"] is None and previous["missingCount"] == 0


def test_a_queue_with_messages_and_no_consumer_is_named_from_the_aggregates(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    depths = {**AGG_QUEUES, "orders.paid": (40, 0), "orders.created": (5, 0)}
    bridge_ran(cw, agg_plan, depths, consumers={"orders.paid": 0})
    result = check_drain(agg_plan, cw, None, T0 + timedelta(seconds=5))
    assert result["neverDrainCount"] == 1 and not result["drained"]
    # Two queues with messages, one never draining: which one is not in the aggregates.
    assert result["neverDrain"] == []
    for at in (T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)):
        bridge_sample(cw, agg_plan, at, {**depths, "orders.created": (0, 0)},
                      consumers={"orders.paid": 0})  # fmt: skip
    later = check_drain(agg_plan, cw, result, T0 + timedelta(minutes=2, seconds=5))
    # Only one queue has messages, and one never drains: that one (the detail is re-read
    # when naming for a person: here the call's first reading reads it anyway).
    assert later["neverDrain"] == [{"queue": "orders.paid", "messages": 40}]
    assert later["messagesLeft"] == 40


class AggregateTime(FakeTime):
    """A bridge sampling every 10 s (aggregates) with the detail every 60 s, as time passes."""

    def __init__(self, cw: Any, plan: MigrationPlan, start: datetime, busy_until: int) -> None:
        super().__init__(start, self.sample)
        self.cw, self.plan, self.began, self.busy_until = cw, plan, start, busy_until

    def depths(self, at: datetime) -> dict[str, tuple[int, int]]:
        busy = (at - self.began).total_seconds() < self.busy_until
        return {**AGG_QUEUES, "orders.paid": (2, 0)} if busy else AGG_QUEUES

    def sample(self, now: datetime) -> None:
        stamp = now - timedelta(seconds=1)
        at = stamp.replace(second=stamp.second - stamp.second % 10)
        bridge_sample(self.cw, self.plan, at, self.depths(at), detail=at.second == 0)

    def history(self) -> None:
        for back in (30, 20, 10, 0):
            at = self.began - timedelta(seconds=back + 1)
            at = at.replace(second=at.second - at.second % 10)
            bridge_sample(self.cw, self.plan, at, self.depths(at), detail=at.second == 0)


def test_the_detail_is_read_at_a_calls_first_reading_and_when_first_empty(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["metrics"]["readings"] = "aggregate"
    plan = fast_plan(ordered_plan)  # period 10 s, detail 60 s, a reading every 10 s, K = 3
    cw = aws("cloudwatch")
    fake = AggregateTime(cw, plan, T0 + timedelta(seconds=1), busy_until=75)
    fake.history()
    calls = counting_reads(cw)
    result = watch_drain(plan, cw, None, budget_seconds=240, now=lambda: fake.now,
                         sleep=fake.sleep)  # fmt: skip
    assert result["drained"] and result["polls"] == 1
    # Readings at 0..70 s see 2 messages; 80 s is the first empty one (the detail read at 0 s
    # is older than a 60-s detail period: read again); 90 and 100 s are the 2nd and 3rd.
    assert result["readings"] == 11
    aggregates, detail = 6, 4
    assert (
        calls == [aggregates, detail] + [aggregates] * 7 + [aggregates, detail] + [aggregates] * 2
    )
    assert result["metricsRead"] == sum(calls)
    assert result["detailReadAt"] == (T0 + timedelta(seconds=81)).isoformat()


def test_an_empty_look_within_a_detail_period_reads_no_detail(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["metrics"]["readings"] = "aggregate"
    plan = fast_plan(ordered_plan)
    cw = aws("cloudwatch")
    fake = AggregateTime(cw, plan, T0 + timedelta(seconds=1), busy_until=15)
    fake.history()
    calls = counting_reads(cw)
    result = watch_drain(plan, cw, None, budget_seconds=240, now=lambda: fake.now,
                         sleep=fake.sleep)  # fmt: skip
    assert result["drained"] and result["readings"] == 5
    # The first empty reading (20 s) is within a detail period of the first read: only the
    # call's first reading read the detail.
    assert calls == [6, 4, 6, 6, 6, 6]


def test_the_aggregate_fence_counts_consumers_and_names_them_when_it_can(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")

    def fence(previous: dict[str, Any] | None, at: datetime) -> dict[str, Any]:
        return watch_drain(
            agg_plan, cw, previous, budget_seconds=0, now=lambda: at + timedelta(seconds=5),
            sleep=lambda _: None, purpose=Purpose.FENCE,
        )  # fmt: skip

    one_left = {"orders.created": 2, "orders.paid": 0, "orders.shipped": 0}
    bridge_ran(cw, agg_plan, consumers=one_left)
    result = fence(None, T0)
    # One queue still has consumers: counted; which one the aggregates do not say.
    assert result["connectedCount"] == 1 and result["connected"] == []
    assert not result["done"] and result["consecutiveEmpty"] == 0
    everyone = dict.fromkeys(ALL_EMPTY, 1)
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=1), consumers=everyone)
    result = fence(result, T0 + timedelta(minutes=1))
    # Every queue has one (3 queues with consumers, 3 consumers): each is named.
    assert result["connectedCount"] == 3
    assert result["connected"] == [{"queue": q, "consumers": 1} for q in ALL_EMPTY]
    at = T0 + timedelta(minutes=1)
    for _ in range(3):
        at += timedelta(minutes=1)
        bridge_sample(cw, agg_plan, at, consumers=dict.fromkeys(ALL_EMPTY, 0))
        result = fence(result, at)
    assert result["done"] and result["connectedCount"] == 0 and result["readMode"] == "aggregate"


def test_aggregate_placement_joins_the_set_with_amazon_mqs_queues(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    other = amazon_mq_side(agg_plan, ["amq-prod-1", "amq-prod-2"])
    for at in (T0 - timedelta(minutes=1), T0):
        bridge_sample(cw, agg_plan, at)  # every queue: one consumer on-prem
        publish(
            cw, agg_plan, at, ALL_EMPTY, consumers={"orders.created": 1, "orders.paid": 0},
            namespace="AWS/AmazonMQ", broker="amq-prod-1",
        )  # fmt: skip
    at = T0 + timedelta(seconds=5)
    reading = read_queues(agg_plan, cw, at, None, purpose=Purpose.PLACEMENT, other=other)
    assert reading.unplaced == [{"queue": "orders.paid", "onPrem": 1, "amazonMq": 0}]
    assert reading.unplaced_total == 1 and not reading.met
    # A stuck queue: messages and no consumer on-prem (never draining), none on Amazon MQ.
    stuck = {**AGG_QUEUES, "orders.shipped": (30, 0)}
    for at in (T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)):
        bridge_sample(cw, agg_plan, at, stuck, consumers={"orders.shipped": 0})
        publish(
            cw, agg_plan, at, ALL_EMPTY, consumers={"orders.created": 1, "orders.paid": 1,
            "orders.shipped": 0}, namespace="AWS/AmazonMQ", broker="amq-prod-1",
        )  # fmt: skip
    at = T0 + timedelta(minutes=2, seconds=5)
    reading = read_queues(agg_plan, cw, at, None, purpose=Purpose.PLACEMENT, other=other)
    assert reading.unplaced == [{"queue": "orders.shipped", "onPrem": 0, "amazonMq": 0}]
    # Two queues without a consumer on-prem, names unknown: at least two unplaced.
    two = {"orders.shipped": 0, "orders.paid": 0}
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=3), stuck, consumers=two)
    publish(cw, agg_plan, T0 + timedelta(minutes=3), ALL_EMPTY, namespace="AWS/AmazonMQ",
            broker="amq-prod-1")  # fmt: skip
    at = T0 + timedelta(minutes=3, seconds=5)
    reading = read_queues(agg_plan, cw, at, None, purpose=Purpose.PLACEMENT, other=other)
    # The never-draining one is named (no consumer on-prem); the other is only counted.
    assert reading.unplaced == [{"queue": "orders.shipped", "onPrem": 0, "amazonMq": 1}]
    assert reading.unplaced_total == 2 and not reading.met
    everyone = dict.fromkeys(ALL_EMPTY, 1)
    bridge_sample(cw, agg_plan, T0 + timedelta(minutes=4), consumers=everyone)
    publish(cw, agg_plan, T0 + timedelta(minutes=4), ALL_EMPTY, namespace="AWS/AmazonMQ",
            broker="amq-prod-1")  # fmt: skip
    at = T0 + timedelta(minutes=4, seconds=5)
    reading = read_queues(agg_plan, cw, at, None, purpose=Purpose.PLACEMENT, other=other)
    assert reading.met and reading.unplaced_total == 0


def test_broker_counts_name_queues_from_the_detail(aws: Any, agg_plan: MigrationPlan) -> None:
    cw = aws("cloudwatch")
    bridge_sample(cw, agg_plan, T0, {**AGG_QUEUES, "orders.paid": (7, 2)})
    counts = broker_counts(agg_plan, cw, T0 + timedelta(seconds=5), on_prem_side(agg_plan))
    assert counts["messagesLeft"] == 7 and counts["missingCount"] == 0
    assert counts["queuesWithMessages"] == [
        {"queue": "orders.paid", "messages": 7, "inFlight": None}
    ]
    lost = broker_counts(agg_plan, cw, T0 + timedelta(days=1), on_prem_side(agg_plan))
    assert lost["messagesLeft"] is None and lost["missingCount"] == 3  # unknown, not zero


def test_aggregate_placement_with_nothing_from_amazon_mq_is_not_placed(
    aws: Any, agg_plan: MigrationPlan
) -> None:
    cw = aws("cloudwatch")
    bridge_ran(cw, agg_plan)
    other = amazon_mq_side(agg_plan, ["amq-prod-1", "amq-prod-2"])
    at = T0 + timedelta(seconds=5)
    reading = read_queues(agg_plan, cw, at, None, purpose=Purpose.PLACEMENT, other=other)
    assert reading.missing == list(ALL_EMPTY) and not reading.met
    # Seven aggregates, the detail (four queues), and Amazon MQ read per queue: three queues x
    # three metrics x two instances, and the DLQ's messages on each.
    assert reading.metrics_read == 7 + 4 + 3 * 3 * 2 + 2

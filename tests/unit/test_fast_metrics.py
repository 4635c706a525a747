"""The harness's indexed GetMetricData (used at scale) answers exactly as moto's own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from mq_cutover_cli.fast_metrics import install, prune

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_indexed_reads_match_moto(aws: Any) -> None:
    cw = aws("cloudwatch")
    rng = random.Random(7)
    for second in range(0, 600, 7):
        cw.put_metric_data(
            Namespace="N",
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "Broker", "Value": "b"}, {"Name": "Queue", "Value": q}],
                    "Timestamp": T0 + timedelta(seconds=second + rng.random()),
                    "Value": rng.randint(0, 9),
                }
                for q in ("a", "b", "c")
                for name in ("QueueSize", "EnqueueCount")
            ],
        )
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "N",
                    "MetricName": name,
                    # In the order they were put: moto (unlike CloudWatch) compares dimension
                    # lists in order; the product always sends them in one order.
                    "Dimensions": [{"Name": "Broker", "Value": "b"}, {"Name": "Queue", "Value": q}],
                },
                "Period": period,
                "Stat": stat,
            },
        }
        for i, (q, name, period, stat) in enumerate(
            (q, n, p, s)
            for q in ("a", "c", "missing")
            for n in ("QueueSize", "EnqueueCount")
            for p in (1, 10, 60)
            for s in ("Maximum", "Sum", "SampleCount")
        )
    ]
    windows = [
        (T0, T0 + timedelta(minutes=10)),
        (T0 + timedelta(seconds=95), T0 + timedelta(seconds=301)),
    ]

    def answers() -> list[Any]:
        return [
            cw.get_metric_data(MetricDataQueries=queries, StartTime=a, EndTime=b, ScanBy=scan)[
                "MetricDataResults"
            ]
            for a, b in windows
            for scan in ("TimestampAscending", "TimestampDescending")
        ]

    def indexed() -> list[Any]:
        with mock.patch.object(
            CloudWatchBackend, "get_metric_data", install(CloudWatchBackend.get_metric_data)
        ):
            return answers()

    expected = answers()
    assert any(r["Values"] for answer in expected for r in answer)  # not trivially empty
    assert indexed() == expected
    prune(cloudwatch_backends["123456789012"]["us-east-1"], T0 + timedelta(minutes=5))
    assert indexed() == answers()


def test_indexed_list_metrics_lists_each_metric_once_as_moto_finds_them(aws: Any) -> None:
    from mq_cutover_cli.fast_metrics import install_list_metrics

    cw = aws("cloudwatch")
    for second in range(0, 300, 60):  # five datapoints of each metric
        cw.put_metric_data(
            Namespace="N",
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "Broker", "Value": "b"}, {"Name": "Queue", "Value": q}],
                    "Timestamp": T0 + timedelta(seconds=second),
                    "Value": 1,
                }
                for q in [f"q{i:03d}" for i in range(300)]
                for name in ("QueueSize", "EnqueueCount")
            ],
        )
    cw.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "QueueSize", "Value": 1}])
    request = {
        "Namespace": "N",
        "MetricName": "QueueSize",
        "Dimensions": [{"Name": "Queue"}, {"Name": "Broker", "Value": "b"}],
    }

    def listing() -> list[tuple[str, str, str]]:
        pages = cw.get_paginator("list_metrics").paginate(**request)
        return [
            (m["Namespace"], m["MetricName"], str(sorted(map(str, m["Dimensions"]))))
            for page in pages
            for m in page["Metrics"]
        ]

    expected = listing()
    with mock.patch.object(
        CloudWatchBackend, "list_metrics", install_list_metrics(CloudWatchBackend.list_metrics)
    ):
        indexed = listing()
    # The same metrics, each once (CloudWatch's answer; moto repeats one per datapoint).
    assert len(indexed) == 300 and set(indexed) == set(expected)


def test_the_worlds_aggregates_without_per_queue_figures_are_the_bridges_aggregate(
    ordered_plan: dict[str, Any],
) -> None:
    """The simulator publishes most samples' aggregates from `World.set_figures` (settled
    queues' sums kept, only the changing queues computed): equal to the product's `aggregate`
    of every queue's figures, whatever the moment, placement and shovels."""
    from mq_cutover.metrics_bridge import aggregate
    from mq_cutover.plan import parse_plan
    from mq_cutover.queue_set import QueueSet
    from mq_cutover_cli.world import SimQueue, World

    rng = random.Random(15)
    names = [f"app.q{i:03d}" for i in range(150)] + ["app.q007.DLQ", "ActiveMQ.DLQ", "other.x"]
    queues = [
        SimQueue(
            name=name,
            messages=rng.choice([0, 0, 5, 300, 3000]),
            drain_per_minute=rng.choice([0, 60, 1000, 1000]),
            in_flight=rng.choice([0, 0, 3]),
            enqueue_per_minute=rng.choice([0, 0, 0, 120, 2000]),
            enqueue_for_seconds=rng.choice([0.0, 30.0, 400.0]),
        )
        for name in names
    ]
    ordered_plan["onPrem"]["queues"] = ["app.*", "ActiveMQ.DLQ"]
    ordered_plan["onPrem"]["ignoreQueues"] = ["*.DLQ"]
    world = World(parameters={}, queues=queues)
    world.plan = parse_plan(ordered_plan)
    queue_set = QueueSet.from_plan(world.plan)
    compared = 0
    for elapsed in [-30.0, 0.0, 0.5, 1.0, *[rng.uniform(0, 900) for _ in range(40)], 5000.0]:
        for on_prem in (0, 2):
            for before_drain in (False, True):
                shovels = {rng.choice(names): rng.choice([1, 2]) for _ in range(5)}
                shovels["no-such-queue"] = 1
                placed = {"onPrem": on_prem}
                expected = aggregate(
                    world.on_prem_stats(elapsed, placed, before_drain, shovels), queue_set
                )
                assert world.set_figures(elapsed, placed, before_drain, shovels) == expected, (
                    elapsed,
                    on_prem,
                    before_drain,
                )
                compared += 1
    # Not trivially equal: the figures change over the drain and with the placement.
    figures = [
        world.set_figures(e, {"onPrem": p}, False, {}) for e in (0, 60, 5000) for p in (0, 2)
    ]
    assert len({(f.messages, f.enqueued, f.consumers) for f in figures}) == 6
    assert figures[0].queues_never_draining > figures[1].queues_never_draining > 0
    assert figures[0].ignored_messages > 0 and compared == 4 * 45
    # A queue changed between runs (as tests do) is seen: the kept sums are rebuilt.
    queues[0].messages += 1_000_000
    changed = world.set_figures(5000.0, {"onPrem": 2}, False, {})
    assert changed == aggregate(world.on_prem_stats(5000.0, {"onPrem": 2}, False), queue_set)


def test_indexed_reads_answer_the_bridges_aggregate_queries_as_moto(aws: Any) -> None:
    """The aggregate series (fixed dimensions and QueueSet, no queue dimension), the heartbeat
    (fixed dimensions only) and the per-queue detail, published by the bridge's own code; read
    by name, with and without a unit, as moto reads them."""
    from mq_cutover.metrics_bridge import Publishing, QueueStats, aggregate, put, sample_data
    from mq_cutover.plan import QueueMetrics
    from mq_cutover.queue_set import Aggregate, QueueSet

    cw = aws("cloudwatch")
    rng = random.Random(3)
    metrics = QueueMetrics(dimensions={"Broker": "b", "Site": "s"})
    sets = [QueueSet.of([], ["*.DLQ"]), QueueSet.of(["q1", "q2"], [])]
    for second in range(0, 300, 3):
        at = T0 + timedelta(seconds=second + rng.random())
        stats = [
            QueueStats(q, rng.randint(0, 9), rng.randint(0, 2), second, second, rng.randint(0, 2))
            for q in ("q1", "q2", "q3", "q3.DLQ")
        ]
        for queue_set in sets:
            publishing = Publishing(queue_set, 60)
            data = sample_data(
                aggregate(stats, queue_set),
                metrics,
                at,
                publishing=publishing,
                high_resolution=True,
                queues_read=len(stats),
                detail=stats if second % 60 == 0 else None,
            )
            put(cw, metrics.namespace, data)
    fixed = [{"Name": "Broker", "Value": "b"}, {"Name": "Site", "Value": "s"}]
    series: list[tuple[str, list[dict[str, str]], str | None]] = [
        (name.value, queue_set.dimensions(metrics.dimensions), unit)
        for queue_set in [*sets, QueueSet.of(["nobody"], [])]  # the last: published by none
        for name in Aggregate
        for unit in (None, "Count", "Seconds")
    ]
    series += [("QueuesReported", fixed, None), ("QueueSize", fixed, None)]
    series += [("QueueSize", [*fixed, {"Name": "Queue", "Value": q}], None) for q in ("q1", "x")]
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {"Namespace": metrics.namespace, "MetricName": name, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
                **({"Unit": unit} if unit else {}),
            },
        }
        for i, ((name, dims, unit), period, stat) in enumerate(
            (s, p, st) for s in series for p in (1, 10, 60) for st in ("Maximum", "SampleCount")
        )
    ]

    def answers() -> list[Any]:
        return [
            result
            for offset in range(0, len(queries), 500)
            for result in cw.get_metric_data(
                MetricDataQueries=queries[offset : offset + 500],
                StartTime=T0 + timedelta(seconds=30),
                EndTime=T0 + timedelta(seconds=250),
                ScanBy="TimestampDescending",
            )["MetricDataResults"]
        ]

    expected = answers()
    with mock.patch.object(
        CloudWatchBackend, "get_metric_data", install(CloudWatchBackend.get_metric_data)
    ):
        indexed = answers()
    assert indexed == expected
    found = {r["Id"] for r in expected if r["Values"]}
    # Not trivially empty, nor trivially full: both sets' aggregates are there, the third set's
    # and a wrong unit's are not, the sample time only as Seconds.
    by_id = {q["Id"]: q["MetricStat"] for q in queries}
    assert any(by_id[i]["Metric"]["MetricName"] == "SetSampleTime" for i in found)
    for i in found:
        stat = by_id[i]
        assert stat.get("Unit") != (
            "Count" if stat["Metric"]["MetricName"] == "SetSampleTime" else "Seconds"
        )
    nobody = QueueSet.of(["nobody"], []).digest
    assert not [i for i in found if by_id[i]["Metric"]["Dimensions"][-1]["Value"] == nobody]
    digests = {by_id[i]["Metric"]["Dimensions"][-1]["Value"] for i in found}
    assert {sets[0].digest, sets[1].digest} <= digests


def test_prune_keeps_the_index_in_step_with_moto_as_more_datapoints_arrive(aws: Any) -> None:
    """Pruning trims the index in place (no re-index): reads and listings after a prune and
    after new datapoints answer as moto's own code over what is kept."""
    from mq_cutover_cli.fast_metrics import install_list_metrics

    cw = aws("cloudwatch")
    backend = cloudwatch_backends["123456789012"]["us-east-1"]

    def put(second: int, queues: list[str]) -> None:
        cw.put_metric_data(
            Namespace="N",
            MetricData=[
                {
                    "MetricName": "QueueSize",
                    "Dimensions": [{"Name": "Queue", "Value": q}],
                    "Timestamp": T0 + timedelta(seconds=second),
                    "Value": second + i,
                }
                for i, q in enumerate(queues)
            ],
        )

    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "N",
                    "MetricName": "QueueSize",
                    "Dimensions": [{"Name": "Queue", "Value": q}],
                },
                "Period": 10,
                "Stat": "Maximum",
            },
        }
        for i, q in enumerate(("early", "both", "late"))
    ]

    def read() -> Any:
        return cw.get_metric_data(
            MetricDataQueries=queries, StartTime=T0, EndTime=T0 + timedelta(minutes=10)
        )["MetricDataResults"]

    def listing() -> list[str]:
        found = cw.list_metrics(Namespace="N")["Metrics"]
        return sorted({m["Dimensions"][0]["Value"] for m in found})

    patches = (
        mock.patch.object(
            CloudWatchBackend, "get_metric_data", install(CloudWatchBackend.get_metric_data)
        ),
        mock.patch.object(
            CloudWatchBackend, "list_metrics", install_list_metrics(CloudWatchBackend.list_metrics)
        ),
    )
    for second in range(0, 120, 10):
        put(second, ["early", "both"] if second < 60 else ["both"])
    for patch in patches:
        patch.start()
    try:
        read()  # the index now holds the first two minutes
        prune(backend, T0 + timedelta(seconds=95))  # "early" keeps nothing
        for second in range(120, 240, 10):
            put(second, ["both", "late"])
        indexed = (read(), listing())
    finally:
        for patch in patches:
            patch.stop()
    assert indexed == (read(), listing())
    assert indexed[1] == ["both", "late"]
    values = {r["Id"]: r["Values"] for r in indexed[0]}
    assert values["q0"] == [] and len(values["q1"]) == 14 and len(values["q2"]) == 12


def test_vended_metrics_are_stored_as_put_metric_data_stores_them(aws: Any) -> None:
    from mq_cutover_cli.fast_metrics import put_vended

    cw = aws("cloudwatch")
    backend = cloudwatch_backends["123456789012"]["us-east-1"]
    data = [
        {
            "MetricName": "QueueSize",
            "Dimensions": [{"Name": "Broker", "Value": "b-1"}, {"Name": "Queue", "Value": "q"}],
            "Timestamp": T0 + timedelta(seconds=second),
            "Value": float(second),
            "Unit": "Count",
        }
        for second in (0, 60)
    ]
    cw.put_metric_data(Namespace="AWS/AmazonMQ", MetricData=data)
    put_vended(backend, "AWS/AmazonMQ", data)

    def stored(datum: Any) -> tuple[Any, ...]:
        dims = [(d.name, d.value) for d in datum.dimensions]
        return (datum.namespace, datum.name, dims, datum.timestamp, datum.value, datum.unit)

    through_api, vended = backend.metric_data[:2], backend.metric_data[2:]
    assert [stored(d) for d in vended] == [stored(d) for d in through_api]


def test_prune_lets_moto_forget_the_pruned_datapoints(aws: Any) -> None:
    """moto keeps every datapoint it made in `MetricDatum.instances_tracked` (canary: if moto
    stops doing so, this fails and `forget_instances` can go); a pruned datapoint is forgotten
    there too, a kept one is not (a 12-hour drain at 10,000 queues grew 1.5 GB an hour)."""
    from moto.cloudwatch.models import MetricDatum

    cw = aws("cloudwatch")
    backend = cloudwatch_backends["123456789012"]["us-east-1"]
    cw.put_metric_data(
        Namespace="N",
        MetricData=[
            {"MetricName": "QueueSize", "Timestamp": T0 + timedelta(seconds=s), "Value": s}
            for s in (0, 10, 20, 30)
        ],
    )
    mine = [d for d in backend.metric_data if d.namespace == "N"]
    tracked = MetricDatum.__dict__["instances_tracked"]
    assert all(any(t is d for t in tracked) for d in mine)  # the canary: moto tracks them
    prune(backend, T0 + timedelta(seconds=15))
    still = [d for d in mine if any(t is d for t in tracked)]
    assert [d.value for d in still] == [20.0, 30.0]
    assert [d.value for d in backend.metric_data if d.namespace == "N"] == [20.0, 30.0]

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

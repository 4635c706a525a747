"""An indexed GetMetricData and ListMetrics for the simulated CloudWatch, for runs at scale.

moto 5.2.5 answers GetMetricData by scanning every datapoint ever stored, for every query and
every period of the window: with 1,000 queues (3,000 queries, 5,000 datapoints a period) one
drain reading takes minutes. This reader keeps the datapoints indexed by metric and answers the
same MetricStat queries (same period buckets from StartTime, same statistics, same ordering,
the same unit filter), whatever the dimensions: per-queue series (fixed dimensions and the
queue's) and the bridge's aggregates (fixed dimensions and `QueueSet`, no queue dimension).
ListMetrics is worse: moto compares every datapoint with every metric found so far (a minute
for the drain's discovery of 1,000 queues), and lists a metric once per datapoint where
CloudWatch lists it once. The index answers with each distinct metric once, in moto's order.
Together they were the `States.Timeout` at Check Drain of a simulated 800-queue plan: a
discovery and a reading took more than the state's 330 s of real time, which moto enforces on
the wall clock while the handler runs on simulated time.

`mq-cutover simulate` (`Simulation(fast_metric_reads=True)`, the default) uses both, and
`tests/unit/test_fast_metrics.py` checks that they answer as moto does. Queries with math or
Insights expressions go to moto's own code.

`prune(backend, before)` drops datapoints older than a moment (from moto's list, the index and
moto's instance tracker): a 12-hour simulated drain at one-second resolution would otherwise
keep millions of them in memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.cloudwatch.models import CloudWatchBackend

Key = tuple[str, str, tuple[tuple[str, str], ...]]
STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Maximum": max,
    "Minimum": min,
    "Sum": sum,
    "SampleCount": lambda values: float(len(values)),
    "Average": lambda values: sum(values) / len(values),
}


class _Index:
    def __init__(self) -> None:
        self.seen = 0
        self.first: object | None = None
        self.series: dict[Key, tuple[list[datetime], list[float], list[str | None]]] = {}
        self.metrics: dict[Key, Any] = {}  # the first datum of each distinct metric

    def update(self, data: list[Any]) -> None:
        if len(data) < self.seen or (data and data[0] is not self.first):
            self.__init__()  # type: ignore[misc]  # pruned or replaced: start again
        for datum in data[self.seen :]:
            dims = tuple(sorted((d.name, d.value) for d in datum.dimensions))
            key = (datum.namespace, datum.name, dims)
            self.metrics.setdefault(key, datum)
            stamps, values, units = self.series.setdefault(key, ([], [], []))
            at = bisect.bisect_right(stamps, datum.timestamp)
            stamps.insert(at, datum.timestamp)
            values.insert(at, float(datum.value))
            units.insert(at, datum.unit)
        self.seen = len(data)
        self.first = data[0] if data else None


_INDEXES: dict[int, _Index] = {}


def _supported(queries: list[dict[str, Any]]) -> bool:
    return all("MetricStat" in q and q["MetricStat"]["Stat"] in STATISTICS for q in queries)


def install(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for `CloudWatchBackend.get_metric_data` (falls back to `original`)."""

    def get_metric_data(
        self: CloudWatchBackend,
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        if not _supported(queries):
            return original(self, queries, start_time, end_time, scan_by)  # type: ignore[no-any-return]
        start_time = start_time.replace(microsecond=0)
        end_time = end_time.replace(microsecond=0)
        if start_time >= end_time:
            return original(self, queries, start_time, end_time, scan_by)  # type: ignore[no-any-return]
        index = _INDEXES.setdefault(id(self), _Index())
        index.update(self.metric_data)
        results = []
        for query in queries:
            stat = query["MetricStat"]
            metric = stat["Metric"]
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            stamps, values, units = index.series.get(
                (metric["Namespace"], metric["MetricName"], dims), ([], [], [])
            )
            unit = stat.get("Unit")
            delta = timedelta(seconds=int(stat["Period"]))
            out_stamps: list[datetime] = []
            out_values: list[float] = []
            bucket = start_time
            while bucket <= end_time:
                low = bisect.bisect_left(stamps, bucket)
                high = bisect.bisect_left(stamps, min(bucket + delta, end_time))
                found = values[low:high]
                if unit:  # only the datapoints published with that unit, as moto filters
                    found = [v for v, u in zip(found, units[low:high], strict=True) if u == unit]
                if found:
                    out_stamps.append(bucket)
                    out_values.append(STATISTICS[stat["Stat"]](found))
                bucket += delta
            if scan_by == "TimestampDescending":
                out_stamps.reverse()
                out_values.reverse()
            if query.get("ReturnData", True):
                results.append(
                    {
                        "id": query["Id"],
                        "label": query.get("Label") or f"{metric['MetricName']} {stat['Stat']}",
                        "values": out_values,
                        "timestamps": out_stamps,
                        "status_code": "Complete",
                    }
                )
        return results

    return get_metric_data


def install_list_metrics(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for `CloudWatchBackend.list_metrics`: each distinct metric once."""

    def list_metrics(
        self: CloudWatchBackend,
        next_token: str | None,
        namespace: str,
        metric_name: str,
        dimensions: list[dict[str, str]],
    ) -> tuple[str | None, list[Any]]:
        if next_token:  # moto keeps the rest of the listing under the token
            return original(self, next_token, namespace, metric_name, dimensions)  # type: ignore[no-any-return]
        index = _INDEXES.setdefault(id(self), _Index())
        index.update(self.metric_data)
        found = [
            datum
            for datum in [*index.metrics.values(), *self.aws_metric_data]
            if datum.filter(namespace=namespace, name=metric_name, dimensions=dimensions)
        ]
        return self._get_paginated(found)

    return list_metrics


def prune(backend: CloudWatchBackend, before: datetime) -> None:
    """Drops datapoints older than `before` from the backend, and from its index in place (a
    re-index of every datapoint kept would cost as much as the pruning saves)."""
    naive = before.astimezone(UTC).replace(tzinfo=None)

    def keep(stamp: datetime) -> bool:
        return stamp >= (naive if stamp.tzinfo is None else before)

    index = _INDEXES.get(id(backend))
    if index is not None:
        index.update(backend.metric_data)  # everything published so far is in the index
    kept: list[Any] = []
    dropped: list[Any] = []
    for datum in backend.metric_data:
        (kept if keep(datum.timestamp) else dropped).append(datum)
    backend.metric_data = kept
    forget_instances(dropped)
    if index is None:
        return
    for key, (stamps, values, units) in list(index.series.items()):
        cut = next((at for at, stamp in enumerate(stamps) if keep(stamp)), len(stamps))
        if cut == len(stamps):  # no datapoint kept: moto would not list the metric either
            del index.series[key]
            continue
        del stamps[:cut], values[:cut], units[:cut]
    index.metrics = {key: datum for key, datum in index.metrics.items() if key in index.series}
    index.seen = len(backend.metric_data)
    index.first = backend.metric_data[0] if backend.metric_data else None


def forget_instances(dropped: list[Any]) -> None:
    """moto keeps every model instance it ever made in its class's `instances_tracked` (for its
    reset and its model listing API): a pruned datapoint stays alive there. At 10,000 queues that
    was ~1.5 GB per simulated hour. The pruned ones are forgotten there too (the canary test in
    tests/unit/test_fast_metrics.py fails if moto stops tracking instances this way)."""
    if not dropped:
        return
    gone = {id(datum) for datum in dropped}  # `dropped` keeps them alive: no id is reused
    for cls in {type(datum) for datum in dropped}:
        tracked = cls.__dict__.get("instances_tracked")
        if isinstance(tracked, list):
            tracked[:] = [instance for instance in tracked if id(instance) not in gone]


def put_vended(backend: CloudWatchBackend, namespace: str, data: list[dict[str, Any]]) -> None:
    """Metrics AWS itself publishes (a broker's AWS/AmazonMQ series), simulated: written into
    the simulated CloudWatch as PutMetricData would store them (timestamps naive UTC, as moto
    parses them), without the API's request round trip."""
    stored = []
    for datum in data:
        stamp = datum.get("Timestamp")
        if isinstance(stamp, datetime) and stamp.tzinfo is not None:
            datum = {**datum, "Timestamp": stamp.astimezone(UTC).replace(tzinfo=None)}
        stored.append(datum)
    backend.put_metric_data(namespace, stored)


def enable(emulator: Any) -> None:
    """Use the indexed reader for this emulator's lifetime (call it from `before_start`)."""
    from unittest import mock

    patches = [
        mock.patch.object(
            CloudWatchBackend, "get_metric_data", install(CloudWatchBackend.get_metric_data)
        ),
        mock.patch.object(
            CloudWatchBackend, "list_metrics", install_list_metrics(CloudWatchBackend.list_metrics)
        ),
    ]
    for patch in patches:
        patch.start()
        emulator.cleanups.append(patch.stop)

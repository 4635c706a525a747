"""The on-prem metrics bridge: reads queue statistics from the broker's own HTTP API and
publishes them to CloudWatch, where the drain check reads them.

The on-prem broker has no CloudWatch metrics of its own. The same code runs
- as a scheduled Lambda (`functions/publish_metrics`) for brokers reachable from a VPC, and
- as `mq-cutover publish-metrics` on a host next to the broker.

Sources:
- ActiveMQ: Jolokia (`http://HOST:8161/api/jolokia`), one wildcard read of every queue's MBean
  per sample: QueueSize, InFlightCount, EnqueueCount, DequeueCount, ConsumerCount, ExpiredCount
  (for the count reconciliation). Queues are
  discovered by the wildcard, so new ones appear without configuration.
- RabbitMQ: the management API (`http://HOST:15672`), `GET /api/queues/{vhost}` paged:
  messages, messages_unacknowledged, message_stats.publish / deliver_get, consumers. (Its
  counts lag the broker by about 5 seconds.)

What it publishes, under the plan's `onPrem.metrics` namespace and fixed dimensions
(`Publishing`):
- every sample, the aggregates of the watched `QueueSet` (`queue_set.Aggregate`: messages, in
  flight, enqueue total, consumers, queues reported, ... and the sample's time), with the
  dimension `QueueSet=<digest>`, at 1-second storage resolution when sampling more often than
  once a minute: a dozen series whatever the number of queues, which the drain reads on every
  reading; and the `QueuesReported` heartbeat;
- every `detail_seconds` (and with a run's first sample), the per-queue series of the selected
  queues (fixed dimensions and the queue dimension, as the drain has always read them):
  `DetailFigures.MESSAGES` (the default) only the messages metric, one custom metric per queue;
  `ALL` the six of before (messagesMetric, inFlightMetric, enqueueMetric, DequeueCount,
  ConsumerCount, ExpiredCount), which cost six times as much.
CloudWatch charges a custom metric by the hour in which it receives any datapoint, whatever
their number: the per-queue series are most of the bridge's cost, hence one per queue by
default and the aggregates for the frequent readings.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import MetricsSourceFailed
from mq_cutover.plan import MigrationPlan, OnPremBroker, QueueMetrics
from mq_cutover.queue_set import Aggregate, DetailFigures, QueueSet

MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limits: datums and bytes a request
MAX_REQUEST_BYTES = 1_000_000
DEFAULT_DETAIL_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10
RABBITMQ_PAGE_SIZE = 500
RABBITMQ_FIGURES = ("messages", "messages_unacknowledged", "consumers")  # none of them read as 0
JOLOKIA_ATTRIBUTES = [
    "QueueSize",
    "InFlightCount",
    "EnqueueCount",
    "DequeueCount",
    "ConsumerCount",
    "ExpiredCount",
]


class SourceType(StrEnum):
    ACTIVEMQ = "activemq"
    RABBITMQ = "rabbitmq"


@dataclass(frozen=True)
class Source:
    """Where the bridge reads. The password comes from Secrets Manager or the environment,
    never from the command line or the schedule's input."""

    type: SourceType
    url: str  # Jolokia base URL, or the management API base URL
    broker_name: str = "localhost"  # ActiveMQ brokerName
    vhost: str = "/"  # RabbitMQ virtual host
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or error


@dataclass(frozen=True)
class QueueStats:
    queue: str
    messages: int
    in_flight: int
    enqueued: int
    dequeued: int
    consumers: int
    expired: int | None = None  # ActiveMQ only (RabbitMQ's API has no such counter)


Fetch = Callable[[urllib.request.Request], Any]


def parse_dimensions(text: str) -> dict[str, str]:
    """ "Broker=onprem-1,Site=dc1" -> {"Broker": "onprem-1", "Site": "dc1"}."""
    dims: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"dimension {part!r} is not NAME=VALUE")
        dims[name.strip()] = value.strip()
    return dims


def _http_json(request: urllib.request.Request) -> Any:
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
        return json.loads(response.read().decode("utf-8"))


def _request(source: Source, url: str, body: Any = None) -> urllib.request.Request:
    if not url.startswith(("http://", "https://")):
        raise MetricsSourceFailed(f"source url must be http(s), got {url!r}")
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if source.username:
        token = base64.b64encode(f"{source.username}:{source.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.request.Request(url, data=data, headers=headers)  # noqa: S310


def _fetch(source: Source, url: str, fetch: Fetch, body: Any = None) -> Any:
    try:
        return fetch(_request(source, url, body))
    except MetricsSourceFailed:
        raise
    except Exception as exc:  # connection refused, timeout, HTTP error, bad JSON
        raise MetricsSourceFailed(f"{source.type.value} at {url}: {exc}") from exc


_DESTINATION = re.compile(r"(?:^|[:,])destinationName=(\"(?:[^\"\\]|\\.)*\"|[^,]*)")


def _destination(object_name: str) -> str:
    match = _DESTINATION.search(object_name)
    if match is None:
        raise MetricsSourceFailed(f"unexpected MBean name {object_name!r}")
    value = match.group(1)
    if value.startswith('"'):  # a quoted ObjectName value (the name holds , = : " or *)
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def read_activemq(source: Source, fetch: Fetch = _http_json) -> list[QueueStats]:
    """Every queue of the broker, in one Jolokia wildcard read."""
    mbean = (
        f"org.apache.activemq:type=Broker,brokerName={source.broker_name},"
        "destinationType=Queue,destinationName=*"
    )
    body = {"type": "read", "mbean": mbean, "attribute": JOLOKIA_ATTRIBUTES}
    answer = _fetch(source, source.url.rstrip("/") + "/", fetch, body)
    status = answer.get("status") if isinstance(answer, dict) else None
    if status == 404 and "InstanceNotFound" in str(answer.get("error_type", "")):
        return []  # the pattern matched no queue
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise MetricsSourceFailed(f"Jolokia read failed (status {status}): {error}")
    stats = []
    for name, attributes in sorted((answer.get("value") or {}).items()):
        stats.append(
            QueueStats(
                queue=_destination(name),
                messages=int(attributes["QueueSize"]),
                in_flight=int(attributes["InFlightCount"]),
                enqueued=int(attributes["EnqueueCount"]),
                dequeued=int(attributes["DequeueCount"]),
                consumers=int(attributes["ConsumerCount"]),
                expired=(
                    int(attributes["ExpiredCount"])
                    if attributes.get("ExpiredCount") is not None
                    else None
                ),
            )
        )
    return stats


def read_rabbitmq(
    source: Source, fetch: Fetch = _http_json, *, unreported: list[str] | None = None
) -> list[QueueStats]:
    """Every queue of the virtual host, paged through the management API.

    A queue listed without its figures (`messages`, `messages_unacknowledged`, `consumers`:
    statistics not collected yet for a new queue, or a queue whose node is down) is left out,
    never read as 0: the bridge publishes nothing for it, so the drain sees it missing. Its name
    is appended to `unreported` when given (the drain's own management API readings)."""
    base = source.url.rstrip("/") + "/api/queues/" + urllib.parse.quote(source.vhost, safe="")
    columns = (
        "name,messages,messages_unacknowledged,consumers,"
        "message_stats.publish,message_stats.deliver_get"
    )
    stats: list[QueueStats] = []
    with_counters = 0
    page = 1
    while True:
        query = urllib.parse.urlencode(
            {"page": page, "page_size": RABBITMQ_PAGE_SIZE, "columns": columns}
        )
        answer = _fetch(source, f"{base}?{query}", fetch)
        items = answer.get("items", []) if isinstance(answer, dict) else []
        for item in items:
            if any(item.get(key) is None for key in RABBITMQ_FIGURES):
                if unreported is not None:
                    unreported.append(str(item["name"]))
                continue
            counters = item.get("message_stats") or {}
            with_counters += bool(counters)
            stats.append(
                QueueStats(
                    queue=str(item["name"]),
                    messages=int(item["messages"]),
                    in_flight=int(item["messages_unacknowledged"]),
                    # No publish counter yet: nothing was ever published (statistics off is
                    # refused below).
                    enqueued=int(counters.get("publish") or 0),
                    dequeued=int(counters.get("deliver_get") or 0),
                    consumers=int(item["consumers"]),
                )
            )
        if not isinstance(answer, dict) or page >= int(answer.get("page_count") or 1):
            if stats and not with_counters and any(q.messages for q in stats):
                # Statistics collection is off: every enqueue counter would read 0 and the
                # drain's producers-quiet rule would pass without evidence. Refuse.
                raise MetricsSourceFailed(
                    "RabbitMQ returned no message_stats for any queue: enable management "
                    "statistics, or set drain.requireProducersQuiet to false"
                )
            return stats
        page += 1


READERS: dict[SourceType, Callable[[Source, Fetch], list[QueueStats]]] = {
    SourceType.ACTIVEMQ: read_activemq,
    SourceType.RABBITMQ: read_rabbitmq,
}


# --- what is published ------------------------------------------------------------------------


def default_ignore_queues() -> list[str]:
    """The plan's default `onPrem.ignoreQueues` (the DLQ patterns), for a bridge given none."""
    factory = OnPremBroker.model_fields["ignore_queues"].default_factory
    assert factory is not None
    return list(factory())  # type: ignore[call-arg]


def parse_queue_list(text: str) -> list[str]:
    """ "orders.*, billing" -> ["orders.*", "billing"]; "-" -> [] (an explicit empty list)."""
    if text.strip() == "-":
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Publishing:
    """What the bridge publishes: every sample, the aggregates of `queue_set` (a handful of
    series, whatever the number of queues); every `detail_seconds`, each selected queue's
    per-queue series (`detail_figures`: the messages metric only, or all six)."""

    queue_set: QueueSet = field(default_factory=lambda: QueueSet.of((), default_ignore_queues()))
    detail_seconds: float = DEFAULT_DETAIL_SECONDS
    detail_figures: DetailFigures = DetailFigures.MESSAGES

    @classmethod
    def from_plan(
        cls, plan: MigrationPlan, detail_figures: DetailFigures = DetailFigures.MESSAGES
    ) -> Publishing:
        """The plan's queue set and `onPrem.metrics.detailPeriodSeconds` (default 60)."""
        detail = getattr(plan.on_prem.metrics, "detail_period_seconds", DEFAULT_DETAIL_SECONDS)
        return cls(QueueSet.from_plan(plan), float(detail), detail_figures)

    def detail_resolution(self, high_resolution: bool) -> int:
        return 1 if high_resolution and self.detail_seconds < 60 else 60


@dataclass(frozen=True)
class SetFigures:
    """One sample's aggregates: sums and counts over the selected, not ignored queues read;
    the ignored (selected) queues only in `ignored_messages` / `ignored_enqueued`."""

    messages: int = 0
    in_flight: int = 0
    enqueued: int = 0
    dequeued: int = 0
    expired: int | None = None  # None: no queue has the counter (RabbitMQ): not published
    consumers: int = 0
    queues_reported: int = 0
    queues_with_consumers: int = 0
    queues_never_draining: int = 0
    ignored_messages: int = 0
    ignored_enqueued: int = 0

    def values(self) -> dict[Aggregate, int]:
        values = {
            Aggregate.MESSAGES: self.messages,
            Aggregate.IN_FLIGHT: self.in_flight,
            Aggregate.ENQUEUED: self.enqueued,
            Aggregate.DEQUEUED: self.dequeued,
            Aggregate.CONSUMERS: self.consumers,
            Aggregate.QUEUES_REPORTED: self.queues_reported,
            Aggregate.QUEUES_WITH_CONSUMERS: self.queues_with_consumers,
            Aggregate.QUEUES_NEVER_DRAINING: self.queues_never_draining,
            Aggregate.IGNORED_MESSAGES: self.ignored_messages,
            Aggregate.IGNORED_ENQUEUED: self.ignored_enqueued,
        }
        if self.expired is not None:
            values[Aggregate.EXPIRED] = self.expired
        return values

    def summary(self) -> dict[str, int | None]:
        """camelCase, for a sample's result and log line."""
        return {
            "watched": self.queues_reported,
            "messages": self.messages,
            "inFlight": self.in_flight,
            "enqueued": self.enqueued,
            "consumers": self.consumers,
            "withConsumers": self.queues_with_consumers,
            "neverDraining": self.queues_never_draining,
            "ignoredMessages": self.ignored_messages,
        }


def aggregate(stats: Iterable[QueueStats], queue_set: QueueSet) -> SetFigures:
    """The aggregates of one sample of the broker's queues."""
    messages = in_flight = enqueued = dequeued = consumers = 0
    reported = with_consumers = never_draining = ignored_messages = ignored_enqueued = 0
    expired: int | None = None
    for queue in stats:
        if not queue_set.selects(queue.queue):
            continue
        if queue_set.ignores(queue.queue):
            ignored_messages += queue.messages
            ignored_enqueued += queue.enqueued
            continue
        reported += 1
        messages += queue.messages
        in_flight += queue.in_flight
        enqueued += queue.enqueued
        dequeued += queue.dequeued
        consumers += queue.consumers
        with_consumers += queue.consumers > 0
        never_draining += queue.messages > 0 and queue.consumers == 0
        if queue.expired is not None:
            expired = (expired or 0) + queue.expired
    return SetFigures(
        messages=messages,
        in_flight=in_flight,
        enqueued=enqueued,
        dequeued=dequeued,
        expired=expired,
        consumers=consumers,
        queues_reported=reported,
        queues_with_consumers=with_consumers,
        queues_never_draining=never_draining,
        ignored_messages=ignored_messages,
        ignored_enqueued=ignored_enqueued,
    )


def _datum(
    name: str, dims: list[dict[str, str]], at: datetime, value: float, resolution: int, unit: str
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dims,
        "Timestamp": at,
        "Value": float(value),
        "Unit": unit,
        "StorageResolution": resolution,
    }


def aggregate_data(
    figures: SetFigures,
    queue_set: QueueSet,
    metrics: QueueMetrics,
    at: datetime,
    *,
    high_resolution: bool,
    queues_read: int,
) -> list[dict[str, Any]]:
    """The aggregate datums (dimensions: the fixed ones and `QueueSet`), the sample's time, and
    the `QueuesReported` heartbeat (fixed dimensions only: how many queues the bridge read; a
    bridge that stops shows as a gap on the dashboard)."""
    resolution = 1 if high_resolution else 60
    dims = queue_set.dimensions(metrics.dimensions)
    data = [
        _datum(name.value, dims, at, value, resolution, "Count")
        for name, value in figures.values().items()
    ]
    data.append(
        _datum(Aggregate.SAMPLE_TIME.value, dims, at, at.timestamp(), resolution, "Seconds")
    )
    base = [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())]
    data.append(_datum("QueuesReported", base, at, queues_read, resolution, "Count"))
    return data


def _per_queue_values(
    queue: QueueStats, metrics: QueueMetrics, figures: DetailFigures
) -> dict[str, int]:
    if figures == DetailFigures.MESSAGES:
        return {metrics.messages_metric: queue.messages}
    values = {metrics.messages_metric: queue.messages}
    if metrics.in_flight_metric:
        values[metrics.in_flight_metric] = queue.in_flight
    if metrics.enqueue_metric:
        values[metrics.enqueue_metric] = queue.enqueued
    values["DequeueCount"] = queue.dequeued
    values[metrics.consumers_metric or "ConsumerCount"] = queue.consumers
    if queue.expired is not None:
        values["ExpiredCount"] = queue.expired
    return values


def detail_data(
    stats: Iterable[QueueStats],
    metrics: QueueMetrics,
    at: datetime,
    *,
    resolution: int,
    figures: DetailFigures,
    queue_set: QueueSet | None = None,
) -> list[dict[str, Any]]:
    """Per-queue datums (fixed dimensions and the queue dimension, as the drain has always
    read them) for the queues `queue_set` selects, ignored ones included (None: every queue)."""
    base = [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())]
    data: list[dict[str, Any]] = []
    for queue in stats:
        if queue_set is not None and not queue_set.selects(queue.queue):
            continue
        dims = [*base, {"Name": metrics.queue_dimension, "Value": queue.queue}]
        data.extend(
            _datum(name, dims, at, value, resolution, "Count")
            for name, value in _per_queue_values(queue, metrics, figures).items()
        )
    return data


def metric_data(
    stats: list[QueueStats], metrics: QueueMetrics, at: datetime, high_resolution: bool
) -> list[dict[str, Any]]:
    """Every queue's six per-queue datums and the heartbeat, every sample: what a per-queue
    publisher (Amazon MQ's own metrics, simulated) sends. The bridge sends `sample_data`."""
    resolution = 1 if high_resolution else 60
    data = detail_data(stats, metrics, at, resolution=resolution, figures=DetailFigures.ALL)
    base = [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())]
    data.append(_datum("QueuesReported", base, at, len(stats), resolution, "Count"))
    return data


def sample_data(
    figures: SetFigures,
    metrics: QueueMetrics,
    at: datetime,
    *,
    publishing: Publishing,
    high_resolution: bool,
    queues_read: int,
    detail: Iterable[QueueStats] | None,
) -> list[dict[str, Any]]:
    """One sample's datums: the aggregates, and the per-queue detail when `detail` is given."""
    data = aggregate_data(
        figures,
        publishing.queue_set,
        metrics,
        at,
        high_resolution=high_resolution,
        queues_read=queues_read,
    )
    if detail is not None:
        data += detail_data(
            detail,
            metrics,
            at,
            resolution=publishing.detail_resolution(high_resolution),
            figures=publishing.detail_figures,
            queue_set=publishing.queue_set,
        )
    return data


# PutMetricData: at most 1,000 datums and 1 MB a request. The size is estimated as the Query
# protocol's form encoding (the largest of the protocols botocore may use: `MetricData.member.
# N.Dimensions.member.M.Value=...` for every field), so a batch fits whatever the SDK sends.
_REQUEST_HEADROOM_BYTES = 16_384  # Action, Version, Namespace, headers' share of the limit


def _encoded_size(datum: dict[str, Any]) -> int:
    prefix = len("MetricData.member.1000.") + 2  # '=' and '&'
    size = 0
    for key, value in datum.items():
        if key == "Dimensions":
            for dim in value:
                for part in ("Name", "Value"):
                    field_ = f"Dimensions.member.30.{part}"
                    size += prefix + len(field_) + len(urllib.parse.quote(dim[part], safe=""))
        elif key == "Timestamp":
            size += prefix + len(key) + len("2026-12-01T02%3A00%3A00.000000%2B00%3A00")
        else:
            size += prefix + len(key) + len(urllib.parse.quote(str(value), safe=""))
    return size


def batches(data: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`data` in as few PutMetricData requests as the count and size limits allow."""
    batch: list[dict[str, Any]] = []
    size = 0
    budget = MAX_REQUEST_BYTES - _REQUEST_HEADROOM_BYTES
    for datum in data:
        datum_size = _encoded_size(datum)
        if batch and (len(batch) >= MAX_DATUMS_PER_CALL or size + datum_size > budget):
            yield batch
            batch, size = [], 0
        batch.append(datum)
        size += datum_size
    if batch:
        yield batch


def put(cloudwatch: Any, namespace: str, data: list[dict[str, Any]]) -> int:
    """Publish in as few calls as the limits allow; returns the number of PutMetricData calls."""
    calls = 0
    for batch in batches(data):
        try:
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)
        except ClientError as exc:
            raise_if_throttled(exc)
            raise
        calls += 1
    return calls


def sample(
    source: Source,
    metrics: QueueMetrics,
    cloudwatch: Any,
    at: datetime,
    *,
    high_resolution: bool,
    publishing: Publishing | None = None,
    detail: bool = True,
    fetch: Fetch = _http_json,
) -> dict[str, Any]:
    """Read every queue once and publish the aggregates, and the per-queue detail when
    `detail`. A failed read raises before anything is published (never zeros)."""
    publishing = publishing or Publishing()
    stats = READERS[source.type](source, fetch)
    figures = aggregate(stats, publishing.queue_set)
    data = sample_data(
        figures,
        metrics,
        at,
        publishing=publishing,
        high_resolution=high_resolution,
        queues_read=len(stats),
        detail=stats if detail else None,
    )
    calls = put(cloudwatch, metrics.namespace, data)
    return {
        "at": at.isoformat(),
        "queueSet": publishing.queue_set.digest,
        "queues": len(stats),
        **figures.summary(),
        "detail": publishing.detail_figures.value if detail else None,
        "datums": len(data),
        "putCalls": calls,
    }


def detail_due(
    publishing: Publishing, last_detail: datetime | None, at: datetime, interval_seconds: float
) -> bool:
    """Whether the sample taken `at` carries the per-queue detail: the first one (`last_detail`
    None: nothing published yet), then once `detail_seconds` have passed (half an interval early
    counts: samples are taken a little late, never early); every sample when sampling once a
    minute or less often."""
    if interval_seconds >= 60 or last_detail is None:
        return True
    return (at - last_detail).total_seconds() >= publishing.detail_seconds - interval_seconds / 2


def run(
    source: Source,
    metrics: QueueMetrics,
    cloudwatch: Any,
    *,
    interval_seconds: float,
    duration_seconds: float,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    publishing: Publishing | None = None,
    fetch: Fetch = _http_json,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Sample every `interval_seconds` for `duration_seconds` (0: once). The first sample
    publishes the per-queue detail (a scheduled run does not wait a detail period), then every
    `publishing.detail_seconds` (every sample when sampling once a minute or less often). A
    failed read is reported and skipped: the drain sees the gap as missing data, never as zero,
    and the detail goes out with the next sample that succeeds."""
    publishing = publishing or Publishing()
    high_resolution = interval_seconds < 60
    began = now()
    samples = failures = detail_samples = datums = put_calls = 0
    last_error = None
    last_detail: datetime | None = None
    while True:
        at = now()
        detail = detail_due(publishing, last_detail, at, interval_seconds)
        try:
            result = sample(
                source,
                metrics,
                cloudwatch,
                at,
                high_resolution=high_resolution,
                publishing=publishing,
                detail=detail,
                fetch=fetch,
            )
            samples += 1
            datums += result["datums"]
            put_calls += result["putCalls"]
            if detail:
                detail_samples += 1
                last_detail = at
        except Exception as exc:  # any failure: report it, sample again next interval
            failures += 1
            last_error = f"{type(exc).__name__}: {exc}"
            result = {"at": at.isoformat(), "error": last_error}
        if on_sample is not None:
            on_sample(result)
        due = began + timedelta(seconds=(samples + failures) * interval_seconds)
        if (due - began).total_seconds() > duration_seconds:
            break
        pause = (due - now()).total_seconds()
        if pause > 0:
            sleep(pause)
    return {
        "queueSet": publishing.queue_set.digest,
        "samples": samples,
        "failures": failures,
        "detailSamples": detail_samples,
        "datums": datums,
        "putCalls": put_calls,
        "lastError": last_error,
    }

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

Published under the namespace, dimensions and metric names of the plan's `onPrem.metrics`
(messages -> messagesMetric, in flight -> inFlightMetric, enqueued -> enqueueMetric), plus
DequeueCount and ConsumerCount, at 1-second storage resolution when sampling more often than
once a minute, so the drain check can read 10-second (or 1- and 5-second) periods.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import MetricsSourceFailed
from mq_cutover.plan import QueueMetrics

MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limit (and well under its 1 MB)
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


def metric_data(
    stats: list[QueueStats], metrics: QueueMetrics, at: datetime, high_resolution: bool
) -> list[dict[str, Any]]:
    """PutMetricData datums for one sample of every queue."""
    base = [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())]
    resolution = 1 if high_resolution else 60
    data: list[dict[str, Any]] = []
    for queue in stats:
        values = {
            metrics.messages_metric: queue.messages,
            metrics.in_flight_metric: queue.in_flight,
            metrics.enqueue_metric: queue.enqueued,
            "DequeueCount": queue.dequeued,
            metrics.consumers_metric or "ConsumerCount": queue.consumers,
        }
        if queue.expired is not None:
            values["ExpiredCount"] = queue.expired
        dims = [*base, {"Name": metrics.queue_dimension, "Value": queue.queue}]
        data.extend(
            {
                "MetricName": name,
                "Dimensions": dims,
                "Timestamp": at,
                "Value": float(value),
                "Unit": "Count",
                "StorageResolution": resolution,
            }
            for name, value in values.items()
            if name is not None
        )
    # One datum without the queue dimension: how many queues the bridge saw (a heartbeat the
    # dashboard shows; a bridge that stops shows as a gap).
    data.append(
        {
            "MetricName": "QueuesReported",
            "Dimensions": base,
            "Timestamp": at,
            "Value": float(len(stats)),
            "Unit": "Count",
            "StorageResolution": resolution,
        }
    )
    return data


def put(cloudwatch: Any, namespace: str, data: list[dict[str, Any]]) -> int:
    """Publish in batches of 1,000 datums; returns the number of PutMetricData calls."""
    calls = 0
    for offset in range(0, len(data), MAX_DATUMS_PER_CALL):
        try:
            cloudwatch.put_metric_data(
                Namespace=namespace, MetricData=data[offset : offset + MAX_DATUMS_PER_CALL]
            )
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
    fetch: Fetch = _http_json,
) -> dict[str, Any]:
    """Read every queue once and publish it."""
    stats = READERS[source.type](source, fetch)
    data = metric_data(stats, metrics, at, high_resolution)
    calls = put(cloudwatch, metrics.namespace, data)
    return {
        "at": at.isoformat(),
        "queues": len(stats),
        "messages": sum(q.messages for q in stats),
        "inFlight": sum(q.in_flight for q in stats),
        "datums": len(data),
        "putCalls": calls,
    }


def run(
    source: Source,
    metrics: QueueMetrics,
    cloudwatch: Any,
    *,
    interval_seconds: float,
    duration_seconds: float,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    fetch: Fetch = _http_json,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Sample every `interval_seconds` for `duration_seconds` (0: once). A failed read is
    reported and skipped: the drain check sees the gap as missing data, never as zero."""
    high_resolution = interval_seconds < 60
    began = now()
    samples = failures = 0
    last_error = None
    while True:
        at = now()
        try:
            result = sample(
                source, metrics, cloudwatch, at, high_resolution=high_resolution, fetch=fetch
            )
            samples += 1
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
    return {"samples": samples, "failures": failures, "lastError": last_error}

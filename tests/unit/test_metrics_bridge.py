"""The metrics bridge against simulated broker HTTP APIs (a local server speaking Jolokia's and
RabbitMQ management's JSON), publishing to moto's CloudWatch, read back by the drain check.
The real ActiveMQ + Jolokia run is the end-to-end tier's job."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mq_cutover.drain import check_drain
from mq_cutover.errors import MetricsSourceFailed
from mq_cutover.metrics_bridge import (
    Publishing,
    Source,
    SourceType,
    aggregate,
    batches,
    read_activemq,
    read_rabbitmq,
    run,
    sample,
)
from mq_cutover.plan import parse_plan
from mq_cutover.queue_set import Aggregate, DetailFigures, QueueSet

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
AUTH = "Basic " + base64.b64encode(b"monitor:s3cret").decode()


class SimulatedBrokerApi(BaseHTTPRequestHandler):
    """Simulated: Jolokia (POST /api/jolokia/) and RabbitMQ management (GET /api/queues/...)."""

    queues: ClassVar[dict[str, dict[str, int]]] = {}
    requests: ClassVar[list[tuple[str, str, Any]]] = []

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _reply(self, body: Any, status: int = 200) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        if self.headers.get("Authorization") != AUTH:
            self._reply({"status": 401, "error": "unauthorized"}, 401)
            return
        broker = body["mbean"].split("brokerName=")[1].split(",")[0]
        value = {}
        for name, q in self.queues.items():
            quoted = f'"{name}"' if "," in name else name
            key = (
                f"org.apache.activemq:brokerName={broker},destinationName={quoted},"
                "destinationType=Queue,type=Broker"
            )
            value[key] = {
                "QueueSize": q["size"],
                "InFlightCount": q["inflight"],
                "EnqueueCount": q["enq"],
                "DequeueCount": q["deq"],
                "ConsumerCount": q["consumers"],
                "ExpiredCount": q.get("expired", 0),
            }
        self._reply({"request": body, "value": value, "status": 200})

    def do_GET(self) -> None:
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.requests.append(("GET", parsed.path, query))
        size = int(query["page_size"])
        names = sorted(self.queues)
        page = int(query["page"])
        items = [
            {
                "name": name,
                "messages": self.queues[name]["size"],
                "messages_unacknowledged": self.queues[name]["inflight"],
                "consumers": self.queues[name]["consumers"],
                "message_stats": {
                    "publish": self.queues[name]["enq"],
                    "deliver_get": self.queues[name]["deq"],
                },
            }
            for name in names[(page - 1) * size : page * size]
        ]
        self._reply({"items": items, "page": page, "page_count": -(-len(names) // size)})


@pytest.fixture
def broker_api() -> Iterator[str]:
    SimulatedBrokerApi.queues = {}
    SimulatedBrokerApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimulatedBrokerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def queue(
    size: int = 0, inflight: int = 0, enq: int = 100, consumers: int = 2, expired: int = 0
) -> dict[str, int]:
    return {
        "size": size,
        "inflight": inflight,
        "enq": enq,
        "deq": enq - size,
        "consumers": consumers,
        "expired": expired,
    }


def activemq(url: str) -> Source:
    return Source(
        SourceType.ACTIVEMQ,
        f"{url}/api/jolokia",
        broker_name="onprem-1",
        username="monitor",
        password="s3cret",
    )


def test_jolokia_one_wildcard_read_discovers_every_queue(broker_api: str) -> None:
    SimulatedBrokerApi.queues = {
        "orders.created": queue(5, 1, 900),
        "odd,name": queue(),
        "ActiveMQ.DLQ": queue(3),
    }
    stats = read_activemq(activemq(broker_api))
    assert {s.queue: (s.messages, s.in_flight, s.enqueued) for s in stats} == {
        "orders.created": (5, 1, 900),
        "odd,name": (0, 0, 100),
        "ActiveMQ.DLQ": (3, 0, 100),
    }
    ((method, path, body),) = SimulatedBrokerApi.requests
    assert (method, path) == ("POST", "/api/jolokia/")
    assert body["mbean"].endswith("brokerName=onprem-1,destinationType=Queue,destinationName=*")
    assert "EnqueueCount" in body["attribute"]


def test_wrong_credentials_or_no_broker_is_a_clear_error(broker_api: str) -> None:
    bad = Source(SourceType.ACTIVEMQ, f"{broker_api}/api/jolokia", username="monitor")
    with pytest.raises(MetricsSourceFailed, match="401"):
        read_activemq(bad)
    with pytest.raises(MetricsSourceFailed, match=re.escape("activemq at http://127.0.0.1:9/")):
        read_activemq(Source(SourceType.ACTIVEMQ, "http://127.0.0.1:9"))
    with pytest.raises(MetricsSourceFailed, match="must be http"):
        read_activemq(Source(SourceType.ACTIVEMQ, "file:///etc/passwd"))


def test_rabbitmq_management_api_is_paged(broker_api: str) -> None:
    SimulatedBrokerApi.queues = {f"q{i:04d}": queue(i % 3, 0, i) for i in range(1201)}
    source = Source(SourceType.RABBITMQ, broker_api, vhost="/")
    stats = read_rabbitmq(source)
    assert len(stats) == 1201 and stats[2].messages == 2 and stats[7].enqueued == 7
    pages = [r for r in SimulatedBrokerApi.requests if r[0] == "GET"]
    assert [r[2]["page"] for r in pages] == ["1", "2", "3"]
    assert pages[0][1] == "/api/queues/%2F"


def test_published_metrics_are_what_the_drain_check_reads(
    broker_api: str, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["onPrem"]["metrics"]["periodSeconds"] = 10
    ordered_plan["drain"] = {"pollIntervalSeconds": 10, "consecutiveEmptyReadings": 1}
    plan = parse_plan(ordered_plan)
    cw = aws("cloudwatch")
    SimulatedBrokerApi.queues = {q: queue() for q in plan.on_prem.queues}
    SimulatedBrokerApi.queues["orders.paid"] = queue(4, 2, 100)
    source = activemq(broker_api)
    # Every figure of every queue each sample, and the plan's aggregates: whichever the drain
    # reads, it finds.
    every = Publishing(QueueSet.from_plan(plan), 10, DetailFigures.ALL)

    def publish(at: datetime) -> None:
        sample(source, plan.on_prem.metrics, cw, at, high_resolution=True, publishing=every)

    publish(T0 - timedelta(seconds=10))
    publish(T0)
    busy = check_drain(plan, cw, None, T0 + timedelta(seconds=2))
    assert busy["messagesLeft"] == 4 and not busy["drained"]  # QueueSize includes in-flight
    assert busy["queuesWithMessages"] == [{"queue": "orders.paid", "messages": 4, "inFlight": 2}]
    SimulatedBrokerApi.queues["orders.paid"] = queue(0, 0, 100)
    publish(T0 + timedelta(seconds=10))
    done = check_drain(plan, cw, busy, T0 + timedelta(seconds=12))
    assert done["drained"] and done["producersQuiet"]
    listed = cw.list_metrics(Namespace=plan.on_prem.metrics.namespace)["Metrics"]
    names = {m["MetricName"] for m in listed}
    assert {"QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount", "ConsumerCount"} <= names
    assert "QueuesReported" in names


def test_a_thousand_queues_go_out_in_as_few_calls_as_the_limits_allow(
    broker_api: str, aws: Any
) -> None:
    plan_metrics = parse_plan(_plan_with_metrics()).on_prem.metrics
    SimulatedBrokerApi.queues = {f"q{i:04d}": queue() for i in range(1000)}
    cw = aws("cloudwatch")
    source = activemq(broker_api)
    result = sample(source, plan_metrics, cw, T0, high_resolution=True, detail=False)
    # The 12 aggregates (SetExpired too: ActiveMQ; SetSampleTime) and the heartbeat: one call.
    assert (result["queues"], result["datums"], result["putCalls"]) == (1000, 13, 1)
    result = sample(source, plan_metrics, cw, T0, high_resolution=True)  # + 1 per queue
    assert (result["datums"], result["putCalls"]) == (1013, 2)
    every = Publishing(detail_figures=DetailFigures.ALL)
    result = sample(source, plan_metrics, cw, T0, high_resolution=True, publishing=every)
    assert (result["datums"], result["putCalls"]) == (6013, 7)


def test_batches_stay_under_the_request_size_limit_as_the_sdk_encodes_it() -> None:
    """Long queue names and many dimensions: fewer than 1,000 datums fit in 1 MB. The size is
    measured with botocore's own Query serializer (the largest of CloudWatch's encodings)."""
    from boto3 import session
    from botocore.serialize import create_serializer

    from mq_cutover.metrics_bridge import MAX_REQUEST_BYTES, detail_data

    model = session.Session().client("cloudwatch", region_name="us-east-1").meta.service_model
    operation = model.operation_model("PutMetricData")
    serializer = create_serializer("query")
    fixed = {f"Dimension{i:02d}": "v" * 200 for i in range(20)}
    metrics = parse_plan(_plan_with_metrics()).on_prem.metrics.model_copy(
        update={"dimensions": fixed}
    )
    stats = read_activemq_stats([f"{'q' * 240}{i:04d}" for i in range(1000)])
    data = detail_data(stats, metrics, T0, resolution=1, figures=DetailFigures.MESSAGES)
    sent = list(batches(data))
    assert len(sent) > 1 and sum(map(len, sent)) == 1000
    for batch in sent:
        request = serializer.serialize_to_request(
            {"Namespace": "MqCutover/OnPrem", "MetricData": batch}, operation
        )
        assert len(request["body"]) <= MAX_REQUEST_BYTES
    # and short names go 1,000 a call
    short = detail_data(
        read_activemq_stats([f"q{i}" for i in range(2500)]),
        parse_plan(_plan_with_metrics()).on_prem.metrics,
        T0,
        resolution=1,
        figures=DetailFigures.MESSAGES,
    )
    assert [len(b) for b in batches(short)] == [1000, 1000, 500]


def read_activemq_stats(names: list[str]) -> list[Any]:
    from mq_cutover.metrics_bridge import QueueStats

    return [QueueStats(name, 1, 0, 5, 4, 1, 0) for name in names]


def _plan_with_metrics() -> dict[str, Any]:
    from tests.conftest import load_event

    return load_event("plan-ordered.json")


def test_run_samples_on_schedule_and_reports_a_failed_read(broker_api: str, aws: Any) -> None:
    from mq_cutover.metrics_bridge import _http_json

    plan_metrics = parse_plan(_plan_with_metrics()).on_prem.metrics
    SimulatedBrokerApi.queues = {"a": queue()}
    clock = [T0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    def flaky(request: Any) -> Any:
        """The broker's HTTP API is down from 02:00:20 to 02:00:39."""
        if T0 + timedelta(seconds=20) <= clock[0] < T0 + timedelta(seconds=40):
            raise ConnectionRefusedError("connection refused")
        return _http_json(request)

    results: list[dict[str, Any]] = []
    summary = run(
        activemq(broker_api),
        plan_metrics,
        aws("cloudwatch"),
        interval_seconds=10,
        duration_seconds=50,
        now=lambda: clock[0],
        sleep=sleep,
        fetch=flaky,
        on_sample=results.append,
    )
    assert summary["samples"] == 4 and summary["failures"] == 2
    assert "connection refused" in str(summary["lastError"])
    assert [r["at"][11:19] for r in results] == [f"02:00:{s:02d}" for s in (0, 10, 20, 30, 40, 50)]
    assert ["error" in r for r in results] == [False, False, True, True, False, False]


def _lambda_app() -> Any:
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "publish_metrics_app", ROOT / "functions" / "publish_metrics" / "app.py"
    )
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _statistics(
    cw: Any, name: str, dims: list[dict[str, str]], around: datetime = T0
) -> list[dict[str, Any]]:
    return list(
        cw.get_metric_statistics(
            Namespace="MqCutover/OnPrem",
            MetricName=name,
            Dimensions=dims,
            StartTime=around - timedelta(minutes=1),
            EndTime=around + timedelta(minutes=3),
            Period=240,
            Statistics=["Maximum", "SampleCount"],
        )["Datapoints"]
    )


BROKER = [{"Name": "Broker", "Value": "onprem-1"}]


def test_the_scheduled_lambda_samples_for_its_window_with_the_password_from_secrets(
    broker_api: str, aws: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from tests.conftest import EVENTS

    secret = aws("secretsmanager").create_secret(Name="onprem/monitor", SecretString="s3cret")
    for key, value in {
        "BRIDGE_SOURCE_TYPE": "activemq",
        "BRIDGE_SOURCE_URL": f"{broker_api}/api/jolokia",
        "BRIDGE_BROKER_NAME": "onprem-1",
        "BRIDGE_USERNAME": "monitor",
        "BRIDGE_PASSWORD_SECRET_ARN": secret["ARN"],
        "BRIDGE_DIMENSIONS": "Broker=onprem-1",
        "BRIDGE_INTERVAL_SECONDS": "10",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("BRIDGE_QUEUES", "BRIDGE_IGNORE_QUEUES", "BRIDGE_DETAIL_SECONDS"):
        monkeypatch.delenv(key, raising=False)
    SimulatedBrokerApi.queues = {"orders.created": queue(3, 1, 50), "ActiveMQ.DLQ": queue(4)}
    app = _lambda_app()
    clock = [T0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    monkeypatch.setattr("mq_cutover.clock.utcnow", lambda: clock[0])
    monkeypatch.setattr("mq_cutover.clock.sleep", sleep)
    event = json.loads((EVENTS / "functions" / "publish_metrics.json").read_text())
    summary = app.lambda_handler(event, lambda_context)
    # Default: every queue, the plan's default DLQ patterns ignored.
    default_set = QueueSet.of([], ["ActiveMQ.DLQ", "DLQ.*", "*.DLQ", "*.dlq"])
    # 60 s of Lambda time, 10 s kept back: a 50-second window, one sample every 10 s; the
    # per-queue detail with the first sample only (the next is due 60 s later).
    assert summary == {
        "queueSet": default_set.digest,
        "samples": 6,
        "failures": 0,
        "detailSamples": 1,
        "datums": 6 * 13 + 2,
        "putCalls": 6,
        "lastError": None,
    }
    posts = [r for r in SimulatedBrokerApi.requests if r[0] == "POST"]
    assert len(posts) == 6
    cw = aws("cloudwatch")
    (detail,) = _statistics(
        cw, "QueueSize", [*BROKER, {"Name": "Queue", "Value": "orders.created"}]
    )
    assert (detail["Maximum"], detail["SampleCount"]) == (3, 1)
    assert not _statistics(
        cw, "InFlightCount", [*BROKER, {"Name": "Queue", "Value": "orders.created"}]
    )
    aggregates = default_set.dimensions({"Broker": "onprem-1"})
    (messages,) = _statistics(cw, "SetMessages", aggregates)
    assert (messages["Maximum"], messages["SampleCount"]) == (3, 6)  # the DLQ's 4 apart
    (ignored,) = _statistics(cw, "SetIgnoredMessages", aggregates)
    assert ignored["Maximum"] == 4


@pytest.mark.parametrize(
    ("env", "expected_set", "detail_samples", "in_flight_published"),
    [
        (
            {"BRIDGE_QUEUES": "orders.*, billing", "BRIDGE_IGNORE_QUEUES": "-"},
            QueueSet.of(["orders.*", "billing"], []),
            1,
            False,
        ),
        (
            {
                "BRIDGE_QUEUES": "",
                "BRIDGE_IGNORE_QUEUES": "*.DLQ",
                "BRIDGE_DETAIL_SECONDS": "10",
                "BRIDGE_DETAIL_FIGURES": "all",
            },
            QueueSet.of([], ["*.DLQ"]),
            6,
            True,
        ),
    ],
)
def test_the_lambda_reads_its_queue_set_and_detail_from_its_environment(
    broker_api: str,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    env: dict[str, str],
    expected_set: QueueSet,
    detail_samples: int,
    in_flight_published: bool,
) -> None:
    for key, value in {
        "BRIDGE_SOURCE_TYPE": "activemq",
        "BRIDGE_SOURCE_URL": f"{broker_api}/api/jolokia",
        "BRIDGE_BROKER_NAME": "onprem-1",
        "BRIDGE_USERNAME": "monitor",
        "BRIDGE_DIMENSIONS": "Broker=onprem-1",
        "BRIDGE_INTERVAL_SECONDS": "10",
        **env,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BRIDGE_PASSWORD_SECRET_ARN", raising=False)
    app = _lambda_app()
    monkeypatch.setattr(app, "_source", lambda: activemq(broker_api))
    SimulatedBrokerApi.queues = {
        "orders.created": queue(3, 1, 50),
        "billing": queue(2),
        "audit": queue(9),
        "orders.DLQ": queue(4),
    }
    clock = [T0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    monkeypatch.setattr("mq_cutover.clock.utcnow", lambda: clock[0])
    monkeypatch.setattr("mq_cutover.clock.sleep", sleep)
    summary = app.lambda_handler({"trigger": "schedule"}, lambda_context)
    assert summary["queueSet"] == expected_set.digest
    assert (summary["samples"], summary["detailSamples"]) == (6, detail_samples)
    cw = aws("cloudwatch")
    expected = aggregate(read_activemq(activemq(broker_api)), expected_set)
    (messages,) = _statistics(cw, "SetMessages", expected_set.dimensions({"Broker": "onprem-1"}))
    assert messages["Maximum"] == expected.messages
    in_flight = _statistics(
        cw, "InFlightCount", [*BROKER, {"Name": "Queue", "Value": "orders.created"}]
    )
    assert bool(in_flight) == in_flight_published


def test_publish_metrics_command_samples_once_and_refuses_a_bad_plan(
    broker_api: str,
    aws: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mq_cutover_cli.cli import main
    from tests.conftest import EVENTS

    SimulatedBrokerApi.queues = {"orders.created": queue(7, 2, 70), "ActiveMQ.DLQ": queue(5)}
    plan = str(EVENTS / "plan-ordered.json")
    args = ["publish-metrics", "--plan", plan, "--source", "activemq"]
    args += ["--url", f"{broker_api}/api/jolokia", "--broker-name", "onprem-1", "--once"]
    args += ["--username", "monitor"]
    monkeypatch.delenv("MQ_CUTOVER_SOURCE_PASSWORD", raising=False)
    assert main(args) == 1  # no password in the environment: 401, said, nothing published
    assert "sample failed" in capsys.readouterr().err
    cw = aws("cloudwatch")
    assert not cw.list_metrics(Namespace="MqCutover/OnPrem")["Metrics"]
    monkeypatch.setenv("MQ_CUTOVER_SOURCE_PASSWORD", "s3cret")
    assert main(args) == 0
    out = capsys.readouterr().out
    planned = QueueSet.from_plan(parse_plan(Path(plan).read_text()))
    assert f"as QueueSet={planned.digest}" in out
    # The plan watches 3 queues and ActiveMQ.DLQ (ignored); the broker has one of them.
    assert (
        "1 of 2 queues: 7 messages, 2 in flight, 2 consumers, enqueued 70, 0 never draining, "
        "5 ignored -> MqCutover/OnPrem (15 datums, per-queue messages, 1 calls)"
    ) in out
    listed = cw.list_metrics(Namespace="MqCutover/OnPrem", MetricName="QueueSize")
    assert sorted(str(m["Dimensions"]) for m in listed["Metrics"]) == sorted(
        str([*BROKER, {"Name": "Queue", "Value": name}])
        for name in ("ActiveMQ.DLQ", "orders.created")
    )
    (point,) = _statistics(
        cw, "SetMessages", planned.dimensions({"Broker": "onprem-1"}), datetime.now(UTC)
    )
    assert point["Maximum"] == 7
    # The flags override the plan's set and detail.
    flags = ["--queues", "audit,orders.*", "--ignore-queues", "-", "--detail-figures", "all"]
    assert main([*args, *flags]) == 0
    out = capsys.readouterr().out
    overridden = QueueSet.of(["audit", "orders.*"], [])
    assert f"as QueueSet={overridden.digest}" in out and "per-queue all" in out
    assert "1 of 2 queues: 7 messages" in out and "0 ignored" in out
    assert _statistics(
        cw,
        "DequeueCount",
        [*BROKER, {"Name": "Queue", "Value": "orders.created"}],
        datetime.now(UTC),
    )
    assert main([*args, "--interval", "60", "--detail-seconds", "10"]) == 2
    assert "shorter than the sampling interval" in capsys.readouterr().err
    bad = tmp_path / "plan.json"
    bad.write_text('{"mode": "sideways"}')
    assert main(["publish-metrics", "--plan", str(bad), *args[3:]]) == 2
    assert "migrationId: Field required" in capsys.readouterr().err


def test_rabbitmq_without_statistics_is_refused_not_read_as_quiet(broker_api: str) -> None:
    """With management statistics off no queue has message_stats: every enqueue counter would
    read 0 and "producers quiet" would pass without evidence."""

    def no_stats(request: Any) -> Any:
        return {
            "items": [{"name": "q1", "messages": 3, "messages_unacknowledged": 0, "consumers": 1}],
            "page": 1,
            "page_count": 1,
        }

    with pytest.raises(MetricsSourceFailed, match="no message_stats"):
        read_rabbitmq(Source(SourceType.RABBITMQ, broker_api), fetch=no_stats)


def test_the_password_never_shows_in_a_repr_or_an_error() -> None:
    source = Source(SourceType.ACTIVEMQ, "http://127.0.0.1:9/api/jolokia", "b", "/", "u", "s3cret")
    assert "s3cret" not in repr(source)
    with pytest.raises(MetricsSourceFailed) as failure:
        read_activemq(source)
    assert "s3cret" not in str(failure.value)


# --- aggregates and detail ---------------------------------------------------------------------
FIXED = {"Broker": "onprem-1", "Site": "dc1"}  # "Site" sorts after "QueueSet": order kept


def _metrics() -> Any:
    return parse_plan(_plan_with_metrics()).on_prem.metrics.model_copy(update={"dimensions": FIXED})


def _published(cw: Any, queue_set: QueueSet, at: datetime) -> dict[str, float]:
    """Every aggregate published under `queue_set`'s digest at `at` (GetMetricData, 1 s)."""
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "MqCutover/OnPrem",
                    "MetricName": name.value,
                    "Dimensions": queue_set.dimensions(FIXED),
                },
                "Period": 1,
                "Stat": "Maximum",
            },
            "Label": name.value,
        }
        for i, name in enumerate(Aggregate)
    ]
    results = cw.get_metric_data(
        MetricDataQueries=queries, StartTime=at, EndTime=at + timedelta(seconds=1)
    )["MetricDataResults"]
    return {r["Label"]: r["Values"][0] for r in results if r["Values"]}


MIXED = {
    "orders.created": queue(5, 1, 900, consumers=2, expired=3),
    "orders.paid": queue(0, 0, 300, consumers=0),
    "orders.stuck": queue(7, 0, 70, consumers=0, expired=1),  # messages, no consumer
    "billing": queue(2, 2, 20, consumers=1),
    "orders.DLQ": queue(11, 0, 11, consumers=0),
    "ActiveMQ.DLQ": queue(4, 0, 4, consumers=0),
    "audit": queue(100, 0, 100),  # never selected below
}


def _expected(stats: list[Any], watched: set[str], ignored: set[str], at: datetime) -> dict:
    """The aggregates computed here from the per-queue figures, independently of `aggregate`."""
    kept = [s for s in stats if s.queue in watched]
    dead = [s for s in stats if s.queue in ignored]
    expected = {
        "SetMessages": sum(s.messages for s in kept),
        "SetInFlight": sum(s.in_flight for s in kept),
        "SetEnqueued": sum(s.enqueued for s in kept),
        "SetDequeued": sum(s.dequeued for s in kept),
        "SetConsumers": sum(s.consumers for s in kept),
        "SetQueuesReported": len(kept),
        "SetQueuesWithConsumers": sum(1 for s in kept if s.consumers),
        "SetQueuesNeverDraining": sum(1 for s in kept if s.messages and not s.consumers),
        "SetIgnoredMessages": sum(s.messages for s in dead),
        "SetIgnoredEnqueued": sum(s.enqueued for s in dead),
        "SetSampleTime": at.timestamp(),
    }
    if any(s.expired is not None for s in kept):
        expected["SetExpired"] = sum(s.expired or 0 for s in kept)
    return {k: float(v) for k, v in expected.items()}


@pytest.mark.parametrize("engine", ["activemq", "rabbitmq"])
def test_aggregates_are_the_sums_of_the_watched_queues_and_the_ignored_apart(
    broker_api: str, aws: Any, engine: str
) -> None:
    SimulatedBrokerApi.queues = dict(MIXED)
    source = (
        activemq(broker_api) if engine == "activemq" else Source(SourceType.RABBITMQ, broker_api)
    )
    stats = (read_activemq if engine == "activemq" else read_rabbitmq)(source)
    cw = aws("cloudwatch")
    # Names and a pattern; the DLQs match the ignore patterns; "audit" is not selected.
    watched = QueueSet.of(["billing", "orders.*", "ActiveMQ.DLQ"], ["ActiveMQ.DLQ", "*.DLQ"])
    result = sample(
        source,
        _metrics(),
        cw,
        T0,
        high_resolution=True,
        publishing=Publishing(watched),
        detail=False,
    )
    expected = _expected(
        stats,
        {"orders.created", "orders.paid", "orders.stuck", "billing"},
        {"orders.DLQ", "ActiveMQ.DLQ"},
        T0,
    )
    assert expected["SetMessages"] == 14 and expected["SetIgnoredMessages"] == 15  # not trivial
    assert ("SetExpired" in expected) == (engine == "activemq")  # RabbitMQ has no such counter
    assert _published(cw, watched, T0) == expected
    assert result["watched"] == 4 and result["messages"] == 14 and result["neverDraining"] == 1
    assert result["queueSet"] == watched.digest and result["detail"] is None
    # Nothing per queue without detail; the heartbeat counts every queue the bridge read.
    assert not cw.list_metrics(Namespace="MqCutover/OnPrem", MetricName="QueueSize")["Metrics"]
    base = [{"Name": k, "Value": v} for k, v in sorted(FIXED.items())]
    heartbeat = cw.get_metric_statistics(
        Namespace="MqCutover/OnPrem",
        MetricName="QueuesReported",
        Dimensions=base,
        StartTime=T0,
        EndTime=T0 + timedelta(seconds=60),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert heartbeat[0]["Maximum"] == len(MIXED)


def test_every_queue_when_the_set_names_none_and_another_set_has_another_digest(
    broker_api: str, aws: Any
) -> None:
    SimulatedBrokerApi.queues = dict(MIXED)
    source = activemq(broker_api)
    cw = aws("cloudwatch")
    everything = Publishing()  # every queue, the plan's default DLQ patterns
    sample(source, _metrics(), cw, T0, high_resolution=True, publishing=everything, detail=False)
    stats = read_activemq(source)
    expected = _expected(
        stats,
        {"orders.created", "orders.paid", "orders.stuck", "billing", "audit"},
        {"orders.DLQ", "ActiveMQ.DLQ"},
        T0,
    )
    assert _published(cw, everything.queue_set, T0) == expected
    # The datums' dimensions: the fixed ones sorted, then QueueSet=<digest>.
    listed = cw.list_metrics(Namespace="MqCutover/OnPrem", MetricName="SetMessages")["Metrics"]
    assert [m["Dimensions"] for m in listed] == [
        [
            {"Name": "Broker", "Value": "onprem-1"},
            {"Name": "Site", "Value": "dc1"},
            {"Name": "QueueSet", "Value": everything.queue_set.digest},
        ]
    ]
    # A drain watching another set finds nothing under its own digest.
    other = QueueSet.of(["orders.*"], ["*.DLQ"])
    assert other.digest != everything.queue_set.digest
    assert _published(cw, other, T0) == {}


def test_detail_messages_or_all_for_the_selected_queues_only(broker_api: str, aws: Any) -> None:
    SimulatedBrokerApi.queues = dict(MIXED)
    source = activemq(broker_api)
    cw = aws("cloudwatch")
    watched = QueueSet.of(["orders.*"], ["*.DLQ"])

    def per_queue(at: datetime) -> set[tuple[str, str]]:
        found = set()
        for page in cw.get_paginator("list_metrics").paginate(Namespace="MqCutover/OnPrem"):
            for metric in page["Metrics"]:
                dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
                if "Queue" in dims:
                    found.add((metric["MetricName"], dims["Queue"]))
        return found

    result = sample(
        source, _metrics(), cw, T0, high_resolution=True, publishing=Publishing(watched)
    )
    selected = ["orders.created", "orders.paid", "orders.stuck", "orders.DLQ"]  # DLQ too
    assert per_queue(T0) == {("QueueSize", q) for q in selected}
    assert result["detail"] == "messages" and result["datums"] == 13 + 4
    everything = Publishing(watched, 60, DetailFigures.ALL)
    result = sample(source, _metrics(), cw, T0, high_resolution=True, publishing=everything)
    names = {"QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount", "ConsumerCount"}
    assert per_queue(T0) == {(n, q) for q in selected for n in [*names, "ExpiredCount"]}
    assert result["detail"] == "all" and result["datums"] == 13 + 4 * 6
    # Resolutions: the aggregates 1 s when sampling faster than a minute; the detail 60 s at a
    # detail period of a minute or more, 1 s below it.
    from mq_cutover.metrics_bridge import sample_data

    stats = read_activemq(source)

    def resolutions(high: bool, detail_seconds: float) -> set[tuple[bool, int]]:
        data = sample_data(
            aggregate(stats, watched),
            _metrics(),
            T0,
            publishing=Publishing(watched, detail_seconds),
            high_resolution=high,
            queues_read=len(stats),
            detail=stats,
        )
        return {(d["MetricName"] == "QueueSize", d["StorageResolution"]) for d in data}

    assert resolutions(True, 60) == {(False, 1), (True, 60)}
    assert resolutions(True, 10) == {(False, 1), (True, 1)}
    assert resolutions(False, 60) == {(False, 60), (True, 60)}


def test_detail_goes_out_with_the_first_sample_then_every_detail_period(
    broker_api: str, aws: Any
) -> None:
    from mq_cutover.metrics_bridge import _http_json

    SimulatedBrokerApi.queues = {"a": queue(1), "b": queue(2)}
    clock = [T0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    def late(seconds: float) -> None:  # each sample a little late, as a real host takes them
        clock[0] += timedelta(seconds=seconds + 0.03)

    def flaky(request: Any) -> Any:
        if clock[0] < T0 + timedelta(seconds=2):  # the first two samples fail
            raise ConnectionRefusedError("connection refused")
        return _http_json(request)

    def detail_at(interval: float, duration: float, publishing: Publishing, **kw: Any) -> list:
        clock[0] = T0
        results: list[dict[str, Any]] = []
        summary = run(
            activemq(broker_api),
            _metrics(),
            aws("cloudwatch"),
            interval_seconds=interval,
            duration_seconds=duration,
            now=lambda: clock[0],
            sleep=kw.pop("sleep", sleep),
            publishing=publishing,
            on_sample=results.append,
            **kw,
        )
        assert summary["detailSamples"] == sum(1 for r in results if r.get("detail"))
        return [
            round((datetime.fromisoformat(r["at"]) - T0).total_seconds())
            for r in results
            if r.get("detail")
        ]

    minute = Publishing(detail_seconds=60)
    assert detail_at(1, 150, minute) == [0, 60, 120]
    assert detail_at(1, 150, minute, sleep=late) == [0, 60, 120]
    assert detail_at(10, 50, Publishing(detail_seconds=10)) == [0, 10, 20, 30, 40, 50]
    assert detail_at(5, 60, Publishing(detail_seconds=30)) == [0, 30, 60]
    # Sampling once a minute or slower: the detail with every sample, whatever the period.
    assert detail_at(60, 180, Publishing(detail_seconds=300)) == [0, 60, 120, 180]
    # A failed first sample publishes nothing; the detail goes out with the first that works.
    assert detail_at(1, 65, minute, fetch=flaky) == [2, 62]


def test_a_failed_read_publishes_nothing_never_zeros(broker_api: str, aws: Any) -> None:
    from mq_cutover.metrics_bridge import _http_json

    SimulatedBrokerApi.queues = {"a": queue(3)}
    cw = aws("cloudwatch")
    calls: list[Any] = []

    class Recording:
        def put_metric_data(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            cw.put_metric_data(**kwargs)

    def down(request: Any) -> Any:
        raise ConnectionRefusedError("connection refused")

    for fetch in (down, lambda r: {"status": 500, "error": "boom"}):
        with pytest.raises(MetricsSourceFailed):
            sample(
                activemq(broker_api), _metrics(), Recording(), T0, high_resolution=True, fetch=fetch
            )
    assert calls == [] and not cw.list_metrics()["Metrics"]
    summary = run(
        activemq(broker_api),
        _metrics(),
        Recording(),
        interval_seconds=1,
        duration_seconds=0,
        now=lambda: T0,
        sleep=lambda s: None,
        fetch=down,
    )
    assert (summary["samples"], summary["failures"], summary["datums"]) == (0, 1, 0)
    assert calls == []
    sample(
        activemq(broker_api), _metrics(), Recording(), T0, high_resolution=True, fetch=_http_json
    )
    assert len(calls) == 1  # the recording does record


def test_aggregate_counts_queues_by_the_same_rules_as_the_sums() -> None:
    from mq_cutover.metrics_bridge import QueueStats

    stats = [
        QueueStats("x", 0, 0, 1, 1, 0),  # empty, no consumer: neither with consumers nor stuck
        QueueStats("y", 3, 0, 3, 0, 0),  # stuck
        QueueStats("z", 3, 0, 3, 0, 2),
        QueueStats("y.DLQ", 8, 0, 8, 0, 0),
    ]
    figures = aggregate(stats, QueueSet.of([], ["*.DLQ"]))
    assert (figures.queues_reported, figures.queues_with_consumers) == (3, 1)
    assert (figures.queues_never_draining, figures.ignored_messages) == (1, 8)
    assert figures.expired is None and Aggregate.EXPIRED not in figures.values()

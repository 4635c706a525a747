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
from typing import Any, ClassVar

import pytest

from mq_cutover.drain import check_drain
from mq_cutover.errors import MetricsSourceFailed
from mq_cutover.metrics_bridge import Source, SourceType, read_activemq, read_rabbitmq, run, sample
from mq_cutover.plan import parse_plan

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
                "message_stats": {"publish": self.queues[name]["enq"], "deliver_get": 0},
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


def queue(size: int = 0, inflight: int = 0, enq: int = 100) -> dict[str, int]:
    return {"size": size, "inflight": inflight, "enq": enq, "deq": enq - size, "consumers": 2}


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
    sample(source, plan.on_prem.metrics, cw, T0 - timedelta(seconds=10), high_resolution=True)
    sample(source, plan.on_prem.metrics, cw, T0, high_resolution=True)
    busy = check_drain(plan, cw, None, T0 + timedelta(seconds=2))
    assert busy["messagesLeft"] == 4 and not busy["drained"]  # QueueSize includes in-flight
    assert busy["queuesWithMessages"] == [{"queue": "orders.paid", "messages": 4, "inFlight": 2}]
    SimulatedBrokerApi.queues["orders.paid"] = queue(0, 0, 100)
    sample(source, plan.on_prem.metrics, cw, T0 + timedelta(seconds=10), high_resolution=True)
    done = check_drain(plan, cw, busy, T0 + timedelta(seconds=12))
    assert done["drained"] and done["producersQuiet"]
    listed = cw.list_metrics(Namespace=plan.on_prem.metrics.namespace)["Metrics"]
    names = {m["MetricName"] for m in listed}
    assert {"QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount", "ConsumerCount"} <= names
    assert "QueuesReported" in names


def test_a_thousand_queues_go_out_in_batches_of_1000(broker_api: str, aws: Any) -> None:
    plan_metrics = parse_plan(_plan_with_metrics()).on_prem.metrics
    SimulatedBrokerApi.queues = {f"q{i:04d}": queue() for i in range(1000)}
    result = sample(activemq(broker_api), plan_metrics, aws("cloudwatch"), T0, high_resolution=True)
    assert result["queues"] == 1000 and result["datums"] == 5001 and result["putCalls"] == 6


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


def test_the_scheduled_lambda_samples_for_its_window_with_the_password_from_secrets(
    broker_api: str, aws: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    import importlib.util

    from tests.conftest import EVENTS, ROOT

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
    SimulatedBrokerApi.queues = {"orders.created": queue(3, 1, 50)}
    spec = importlib.util.spec_from_file_location(
        "publish_metrics_app", ROOT / "functions" / "publish_metrics" / "app.py"
    )
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    clock = [T0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    monkeypatch.setattr("mq_cutover.clock.utcnow", lambda: clock[0])
    monkeypatch.setattr("mq_cutover.clock.sleep", sleep)
    event = json.loads((EVENTS / "functions" / "publish_metrics.json").read_text())
    summary = app.lambda_handler(event, lambda_context)
    # 60 s of Lambda time, 10 s kept back: a 50-second window, one sample every 10 s.
    assert summary == {"samples": 6, "failures": 0, "lastError": None}
    posts = [r for r in SimulatedBrokerApi.requests if r[0] == "POST"]
    assert len(posts) == 6
    stats = aws("cloudwatch").get_metric_statistics(
        Namespace="MqCutover/OnPrem",
        MetricName="QueueSize",
        Dimensions=[
            {"Name": "Broker", "Value": "onprem-1"},
            {"Name": "Queue", "Value": "orders.created"},
        ],
        StartTime=T0 - timedelta(minutes=1),
        EndTime=T0 + timedelta(minutes=2),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert stats and stats[0]["Maximum"] == 3 and stats[0]["SampleCount"] == 6


def test_publish_metrics_command_samples_once_and_refuses_a_bad_plan(
    broker_api: str,
    aws: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mq_cutover_cli.cli import main
    from tests.conftest import EVENTS

    SimulatedBrokerApi.queues = {"orders.created": queue(7, 2, 70)}
    plan = str(EVENTS / "plan-ordered.json")
    args = ["publish-metrics", "--plan", plan, "--source", "activemq"]
    args += ["--url", f"{broker_api}/api/jolokia", "--broker-name", "onprem-1", "--once"]
    args += ["--username", "monitor"]
    monkeypatch.delenv("MQ_CUTOVER_SOURCE_PASSWORD", raising=False)
    assert main(args) == 1  # no password in the environment: 401, said, nothing published
    assert "sample failed" in capsys.readouterr().err
    monkeypatch.setenv("MQ_CUTOVER_SOURCE_PASSWORD", "s3cret")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 queues, 7 messages, 2 in flight -> MqCutover/OnPrem (6 datums, 1 calls)" in out
    listed = aws("cloudwatch").list_metrics(Namespace="MqCutover/OnPrem", MetricName="QueueSize")
    assert listed["Metrics"][0]["Dimensions"] == [
        {"Name": "Broker", "Value": "onprem-1"},
        {"Name": "Queue", "Value": "orders.created"},
    ]
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

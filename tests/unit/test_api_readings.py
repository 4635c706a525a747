"""Drain readings from the Amazon MQ broker's RabbitMQ management API (`target.metrics.source:
managementApi`), answered by a simulated management API: an injected fetch callable speaking
`GET /api/queues/{vhost}` JSON, or (for the Lambda handler) a urllib opener installed in the
test. The same rules as CloudWatch readings: missing is never zero, a failed read is never zero
and says why, K new readings, quiet needs two counter values, DLQs reported not waited for."""

from __future__ import annotations

import base64
import email.message
import importlib.util
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.api_readings import (
    NEW_READING_SECONDS,
    ManagementApiReadings,
    amazon_mq_readings,
    vhost_of,
)
from mq_cutover.broker_api import Endpoint
from mq_cutover.drain import (
    Purpose,
    Side,
    amazon_mq_side,
    on_prem_side,
    read_queues,
    watch_drain,
)
from mq_cutover.errors import DrainCheckFailed
from mq_cutover.metrics_bridge import Source, SourceType, read_rabbitmq
from mq_cutover.plan import MigrationPlan, parse_plan
from tests.conftest import ROOT
from tests.unit.test_drain import ALL_EMPTY, publish

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
URL = "https://b-1234.mq.us-east-1.amazonaws.com"
USER, PASSWORD = "orders-admin", "s3cret-Pa55word"
QUEUES = ["orders.created", "orders.paid", "orders.shipped"]


@dataclass
class Figures:
    messages: int = 0
    unacked: int = 0
    consumers: int = 1
    publish: int | None = 1000  # None: no message_stats (nothing ever published)


@dataclass
class SimulatedManagementApi:
    """Simulated: a RabbitMQ management API's `GET /api/queues/{vhost}` (paged, basic auth),
    called as the metrics bridge's fetch. `down`: queues listed without their figures (a queue
    whose node is down); `failure`: what every request raises instead of answering."""

    url: str = URL
    vhost: str = "orders"
    queues: dict[str, Figures] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    failure: Exception | None = None
    requests: list[str] = field(default_factory=list)
    password: str = PASSWORD
    username: str = USER

    def answer(self, url: str, authorization: str | None) -> tuple[int, Any]:
        self.requests.append(url)
        parsed = urllib.parse.urlparse(url)
        if self.failure is not None:
            raise self.failure
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if authorization != f"Basic {token}":
            return 401, {"error": "not_authorized", "reason": "Login failed"}
        expected = "/api/queues/" + urllib.parse.quote(self.vhost, safe="")
        if f"{parsed.scheme}://{parsed.netloc}" != self.url or parsed.path != expected:
            return 404, {"error": "Object Not Found", "reason": "Not Found"}
        query = dict(urllib.parse.parse_qsl(parsed.query))
        page, size = int(query["page"]), int(query["page_size"])
        names = sorted(self.queues)
        items = []
        for name in names[(page - 1) * size : page * size]:
            if name in self.down:
                items.append({"name": name, "state": "down"})
                continue
            q = self.queues[name]
            item: dict[str, Any] = {
                "name": name,
                "messages": q.messages,
                "messages_unacknowledged": q.unacked,
                "consumers": q.consumers,
            }
            if q.publish is not None:
                item["message_stats"] = {"publish": q.publish, "deliver_get": q.publish}
            items.append(item)
        return 200, {"items": items, "page": page, "page_count": max(1, -(-len(names) // size))}

    def __call__(self, request: urllib.request.Request) -> Any:
        status, body = self.answer(request.full_url, request.get_header("Authorization"))
        if status != 200:
            headers = email.message.Message()
            raise urllib.error.HTTPError(request.full_url, status, "refused", headers, None)
        return body


def rabbit_plan(plan: dict[str, Any], **drain: Any) -> MigrationPlan:
    """A created Amazon MQ for RabbitMQ 4.x broker, read through its management API."""
    create = plan["target"]["create"]
    create.update(
        engine="RABBITMQ",
        engineVersion="4.2",
        deploymentMode="SINGLE_INSTANCE",
        hostInstanceType="mq.m7g.large",
        subnetIds=create["subnetIds"][:1],
    )
    plan["target"]["protocol"] = "amqp"
    plan["target"]["metrics"] = {"source": "managementApi", "dimensions": {"VirtualHost": "orders"}}
    plan["topology"] = {"copy": False}
    plan["onPrem"]["url"] = "amqps://onprem-mq.example.internal:5671"
    plan["onPrem"]["metrics"]["periodSeconds"] = 10
    plan["drain"] = {"pollIntervalSeconds": 10, "consecutiveEmptyReadings": 2, **drain}
    return parse_plan(plan)


@pytest.fixture
def plan(ordered_plan: dict[str, Any]) -> MigrationPlan:
    # These tests publish the on-prem side per queue (a publisher of its own).
    ordered_plan["onPrem"]["metrics"]["readings"] = "perQueue"
    return rabbit_plan(ordered_plan)


@pytest.fixture
def api() -> SimulatedManagementApi:
    return SimulatedManagementApi(queues={q: Figures() for q in [*QUEUES, "ActiveMQ.DLQ"]})


def endpoint() -> Endpoint:
    return Endpoint(URL, USER, PASSWORD, "Amazon MQ")


def amazon_mq(plan: MigrationPlan, api: SimulatedManagementApi, connect: Any = endpoint) -> Side:
    """The Amazon MQ side of one Lambda call, read from the simulated management API."""
    return amazon_mq_side(plan, None, ManagementApiReadings(connect, vhost_of(plan), fetch=api))


class Clock:
    """Time for watch_drain: sleeping moves it, and the simulated broker changes as it passes."""

    def __init__(self, start: datetime, on_sleep: Any = None) -> None:
        self.now = start
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        if self.on_sleep:
            self.on_sleep(self.now)


def watch(
    plan: MigrationPlan,
    cw: Any,
    previous: dict[str, Any] | None,
    side: Side,
    clock: Clock,
    budget: float = 60,
    **kwargs: Any,
) -> dict[str, Any]:
    """One Lambda call's readings (a rollback's drain unless `purpose` says otherwise)."""
    return watch_drain(
        plan, cw, previous, budget_seconds=budget, now=lambda: clock.now, sleep=clock.sleep,
        purpose=kwargs.pop("purpose", Purpose.ROLLBACK_DRAIN), side=side, **kwargs,
    )  # fmt: skip


def one_call(
    plan: MigrationPlan, cw: Any, previous: dict[str, Any] | None, at: datetime, side: Side
) -> dict[str, Any]:
    """One Lambda call with time for one reading."""
    return watch(plan, cw, previous, side, Clock(at), budget=0)


def test_drained_after_k_new_readings_from_the_api(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    api.queues["orders.paid"] = Figures(messages=2, unacked=1)

    def consumed(_now: datetime) -> None:
        api.queues["orders.paid"] = Figures()

    clock = Clock(T0, consumed)
    result = watch(plan, aws("cloudwatch"), None, amazon_mq(plan, api), clock)
    # Reading 1 sees 2 messages (1 unacknowledged); readings 2 and 3 are the K = 2 empty ones.
    assert result["drained"] and result["producersQuiet"] and result["side"] == "amazonMq"
    assert result["readings"] == 3 and result["initialMessagesLeft"] == 2
    assert result["initialQueuesWithMessages"] == [
        {"queue": "orders.paid", "messages": 2, "inFlight": 1}
    ]
    assert result["lastReadingAt"] == (T0 + timedelta(seconds=20)).isoformat()
    assert result["missingCount"] == 0 and "readError" not in result
    # Every request went to the vhost of target.metrics.dimensions.VirtualHost.
    assert all(r.startswith(f"{URL}/api/queues/orders?") for r in api.requests)


def test_a_queue_the_api_does_not_list_or_lists_without_figures_is_missing(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    del api.queues["orders.shipped"]  # not listed at all
    api.down = {"orders.paid"}  # listed, no figures (its node is down)
    result = one_call(plan, aws("cloudwatch"), None, T0, amazon_mq(plan, api))
    assert result["missing"] == ["orders.paid", "orders.shipped"] and result["missingCount"] == 2
    assert not result["drained"] and result["messagesLeft"] == 0
    # The bridge reads the same way: a queue without figures is not published as 0.
    unreported: list[str] = []
    source = Source(SourceType.RABBITMQ, URL, vhost="orders", username=USER, password=PASSWORD)
    stats = read_rabbitmq(source, api, unreported=unreported)
    assert unreported == ["orders.paid"]
    assert "orders.paid" not in {s.queue for s in stats}


def test_an_api_failure_is_never_zero_and_says_why(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    cw = aws("cloudwatch")
    api.queues["ActiveMQ.DLQ"] = Figures(messages=4, consumers=0)
    api.failure = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    down = one_call(plan, cw, None, T0, amazon_mq(plan, api))
    assert down["missing"] == QUEUES and down["missingCount"] == 3
    assert not down["drained"] and down["messagesLeft"] == 0
    assert down["readError"].startswith("Amazon MQ management API: rabbitmq at https://b-1234")
    assert "Connection refused" in down["readError"]
    # The DLQ is still reported, its count unknown (never 0).
    assert down["ignored"] == [{"queue": "ActiveMQ.DLQ", "messages": None}]
    # A wrong password: HTTP 401, named; the password itself never appears.
    api.failure = None
    api.password = "rotated"
    refused = one_call(plan, cw, down, T0 + timedelta(seconds=30), amazon_mq(plan, api))
    assert refused["missingCount"] == 3 and "HTTP Error 401" in refused["readError"]
    assert PASSWORD not in json.dumps(refused)
    # Back: the figures come back and the error goes.
    api.password = PASSWORD
    back = one_call(plan, cw, refused, T0 + timedelta(seconds=60), amazon_mq(plan, api))
    assert back["missingCount"] == 0 and "readError" not in back
    assert back["ignored"] == [{"queue": "ActiveMQ.DLQ", "messages": 4}]


def test_the_endpoint_is_found_once_a_call_and_its_failure_is_a_failed_read(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    from mq_cutover.errors import BrokerApiFailed

    asked: list[str] = []

    def no_console_yet() -> Endpoint:
        asked.append("connect")
        raise BrokerApiFailed("Amazon MQ broker b-1234 reports no console URL yet")

    clock = Clock(T0)
    result = watch(plan, aws("cloudwatch"), None, amazon_mq(plan, api, no_console_yet), clock, 25)
    assert result["readings"] == 3 and asked == ["connect"]  # once per call, not per reading
    assert result["missingCount"] == 3 and not result["drained"]
    assert result["readError"] == (
        "Amazon MQ management API: Amazon MQ broker b-1234 reports no console URL yet"
    )
    assert api.requests == []


def test_quiet_needs_two_counter_values_then_sees_a_producer(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    def producer(now: datetime) -> None:
        if now == T0 + timedelta(seconds=20):
            api.queues["orders.paid"] = Figures(publish=1003)

    seen: list[dict[str, Any]] = []
    # One Lambda call, readings at 0, 10 and 20 s: the reader keeps the previous counters.
    third = watch(
        plan, aws("cloudwatch"), None, amazon_mq(plan, api), Clock(T0, producer), budget=20,
        progress=seen.append,
    )  # fmt: skip
    first, second = seen
    # Empty, but one counter value per queue proves nothing yet.
    assert first["consecutiveEmpty"] == 0 and not first["producersQuiet"]
    assert first["stillReceiving"] == [{"queue": q, "enqueued": None} for q in QUEUES]
    assert second["consecutiveEmpty"] == 1 and second["producersQuiet"]
    assert second["enqueueTotal"] == 3000
    # A producer still publishing to the broker: its queue is consumed at once (0 messages),
    # but its counter moved.
    assert third["stillReceiving"] == [{"queue": "orders.paid", "enqueued": 3}]
    assert third["consecutiveEmpty"] == 0 and not third["producersQuiet"]
    assert third["messagesLeft"] == 0 and third["readings"] == 3


def test_a_new_call_compares_with_the_previous_calls_counters(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    cw = aws("cloudwatch")
    first_call = watch(plan, cw, None, amazon_mq(plan, api), Clock(T0), budget=10)
    assert first_call["consecutiveEmpty"] == 1 and first_call["enqueueDigest"]
    # The next call (a new reader: nothing in memory) reads the same counters: it counts.
    later = T0 + timedelta(seconds=30)
    same = one_call(plan, cw, first_call, later, amazon_mq(plan, api))
    assert same["consecutiveEmpty"] == 2 and same["drained"]
    # Without the previous call's fingerprint, a single value proves nothing yet.
    blind = one_call(plan, cw, {**first_call, "enqueueDigest": None}, later, amazon_mq(plan, api))
    assert blind["consecutiveEmpty"] == 0 and not blind["producersQuiet"]
    # A counter that moved between the calls: not quiet.
    api.queues["orders.created"] = Figures(publish=1001)
    moved = one_call(plan, cw, first_call, later, amazon_mq(plan, api))
    assert moved["consecutiveEmpty"] == 0 and not moved["producersQuiet"]


def test_reads_within_one_statistics_interval_count_once(
    aws: Any, ordered_plan: dict[str, Any], api: SimulatedManagementApi
) -> None:
    """RabbitMQ refreshes queue statistics every 5 s: reads a second apart see one snapshot."""
    plan = rabbit_plan(ordered_plan, pollIntervalSeconds=1)
    result = watch(plan, aws("cloudwatch"), None, amazon_mq(plan, api), Clock(T0), budget=60)
    # Counted at 0 s (one counter value: not quiet), 10 s and 20 s; read every second.
    assert result["drained"] and result["readings"] == 2 * NEW_READING_SECONDS + 1
    assert result["lastReadingAt"] == (T0 + timedelta(seconds=20)).isoformat()
    # The same time twice (a retried call): one reading.
    again = one_call(
        plan, aws("cloudwatch"), result, T0 + timedelta(seconds=20), amazon_mq(plan, api)
    )
    assert again["consecutiveEmpty"] == result["consecutiveEmpty"]


def test_placement_reads_amazon_mq_from_the_api_and_on_prem_from_cloudwatch(
    aws: Any, plan: MigrationPlan, api: SimulatedManagementApi
) -> None:
    cw = aws("cloudwatch")
    on_prem = {"orders.created": 1, "orders.paid": 2, "orders.shipped": 1}
    for at in (T0 - timedelta(seconds=10), T0):
        publish(cw, plan, at, ALL_EMPTY, consumers=on_prem)
    api.queues["orders.paid"] = Figures(consumers=0)
    api.queues["orders.shipped"] = Figures(consumers=3)
    at = T0 + timedelta(seconds=5)
    other = amazon_mq(plan, api)
    reading = read_queues(
        plan, cw, at, None, side=on_prem_side(plan), purpose=Purpose.PLACEMENT, other=other
    )
    assert reading.unplaced == [{"queue": "orders.paid", "onPrem": 2, "amazonMq": 0}]
    assert not reading.met and reading.missing == []
    # The oldest of both brokers' stamps: CloudWatch's period, not the live read's time.
    assert reading.newest_at == T0
    api.queues["orders.paid"] = Figures(consumers=1)
    placed = read_queues(
        plan, cw, at, None, side=on_prem_side(plan), purpose=Purpose.PLACEMENT, other=other
    )
    assert placed.met and placed.unplaced == []
    # Amazon MQ's figures did not come from CloudWatch: it holds nothing in AWS/AmazonMQ.
    assert cw.list_metrics(Namespace="AWS/AmazonMQ")["Metrics"] == []
    # The API failing: every queue missing on that broker, never placed, and why.
    api.failure = urllib.error.URLError("timed out")
    blind = read_queues(
        plan, cw, at, None, side=on_prem_side(plan), purpose=Purpose.PLACEMENT, other=other
    )
    assert blind.missing == QUEUES and not blind.met and "timed out" in (blind.read_error or "")


def test_patterns_are_matched_against_the_apis_queues_and_dlqs_reported_not_waited_for(
    aws: Any, ordered_plan: dict[str, Any], api: SimulatedManagementApi
) -> None:
    ordered_plan["onPrem"]["queues"] = ["orders.*"]
    plan = rabbit_plan(ordered_plan)
    api.queues = {q: Figures() for q in QUEUES}
    api.queues["orders.DLQ"] = Figures(messages=7, consumers=0)
    api.queues["billing.paid"] = Figures(messages=9)  # does not match the pattern
    cw = aws("cloudwatch")  # holds nothing: discovery there would find no queue
    done = watch(plan, cw, None, amazon_mq(plan, api), Clock(T0), budget=20)
    assert done["watchedQueues"] == 3 and done["messagesLeft"] == 0
    # The DLQ holds 7 messages and has no consumer: reported, not waited for.
    assert done["drained"] and done["readings"] == 3 and done["neverDrainCount"] == 0
    assert done["ignored"] == [{"queue": "orders.DLQ", "messages": 7}]
    # Discovery failing: which queues match is unknown, so nothing is drained.
    api.failure = urllib.error.URLError("Connection reset")
    lost = one_call(plan, cw, done, T0 + timedelta(seconds=30), amazon_mq(plan, api))
    assert lost["watchedQueues"] == 0 and not lost["drained"]
    assert lost["readError"].startswith("Amazon MQ management API: queue discovery: ")


class SimulatedManagementApiHandler(urllib.request.BaseHandler):
    """Simulated: the Amazon MQ broker's console host, answered in-process (installed as the
    process's urllib opener, as the product's reads go through urlopen)."""

    handler_order = 100  # before the real HTTPS handler

    def __init__(self, api: SimulatedManagementApi) -> None:
        self.api = api

    def https_open(self, request: urllib.request.Request) -> Any:
        if not request.full_url.startswith(self.api.url):
            raise urllib.error.URLError(f"simulated network: no route to {request.host}")
        status, body = self.api.answer(request.full_url, request.get_header("Authorization"))
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        raw = io.BytesIO(json.dumps(body).encode())
        if status != 200:
            raise urllib.error.HTTPError(request.full_url, status, "refused", headers, raw)
        response = urllib.response.addinfourl(raw, headers, request.full_url, status)
        response.msg = "OK"  # type: ignore[attr-defined]  # what urllib's processors read
        return response


class Counted:
    def __init__(self, client: Any, calls: list[str]) -> None:
        self.client, self.calls = client, calls

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


@pytest.mark.parametrize("bare_password", [False, True])
def test_check_drain_lambda_reads_the_broker_it_is_given(
    aws: Any,
    ordered_plan: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    bare_password: bool,
) -> None:
    """The handler: DescribeBroker for the console URL and GetSecretValue for the user, once a
    call; a secret holding only a password is the created broker's user's (`orders-app`)."""
    aws("dynamodb").create_table(
        TableName="migrations",
        KeySchema=[{"AttributeName": "migrationId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "migrationId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("MIGRATIONS_TABLE", "migrations")
    secrets = aws("secretsmanager")
    value = PASSWORD if bare_password else json.dumps({"username": USER, "password": PASSWORD})
    secret_arn = secrets.create_secret(Name="mq-cutover/orders-app", SecretString=value)["ARN"]
    ordered_plan["target"]["create"]["users"][0]["passwordSecretArn"] = secret_arn
    plan = rabbit_plan(ordered_plan)
    broker = aws("mq").create_broker(
        BrokerName="orders-amazonmq", EngineType="RABBITMQ", EngineVersion="4.2",
        DeploymentMode="SINGLE_INSTANCE", HostInstanceType="mq.m7g.large",
        PubliclyAccessible=False, AutoMinorVersionUpgrade=True,
        Users=[{"Username": "orders-app", "Password": PASSWORD}],
    )  # fmt: skip
    console = aws("mq").describe_broker(BrokerId=broker["BrokerId"])["BrokerInstances"][0]
    api = SimulatedManagementApi(
        url=console["ConsoleURL"], queues={q: Figures() for q in QUEUES},
        username="orders-app" if bare_password else USER,
    )  # fmt: skip
    spec = importlib.util.spec_from_file_location(
        "check_drain_app", ROOT / "functions" / "check_drain" / "app.py"
    )
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    calls: list[str] = []
    monkeypatch.setattr(app, "secretsmanager", Counted(app.secretsmanager, calls))
    monkeypatch.setattr(app, "mq", Counted(app.mq, calls))
    clock = Clock(T0)
    monkeypatch.setattr("mq_cutover.clock.utcnow", lambda: clock.now)
    monkeypatch.setattr("mq_cutover.clock.sleep", clock.sleep)
    event = {
        "migrationId": plan.migration_id,
        "plan": plan.dump(),
        "previous": None,
        "purpose": "rollbackDrain",
        "side": "amazonMq",
        "metricBrokers": None,
        "brokerId": broker["BrokerId"],
        "producersQuiet": True,
    }
    urllib.request.install_opener(urllib.request.build_opener(SimulatedManagementApiHandler(api)))
    try:
        # 60 s of Lambda time, 30 s kept back: readings at 0, 10 and 20 s.
        result = app.lambda_handler(event, lambda_context)
        # Without the broker id every read fails and says so; nothing counts as empty.
        blind = app.lambda_handler({**event, "brokerId": None}, lambda_context)
    finally:
        urllib.request.install_opener(None)  # back to the default opener
    assert result["drained"] and result["side"] == "amazonMq" and result["readings"] == 3
    # The broker's URL and its user: once for the call, not once a reading.
    assert calls == ["describe_broker", "get_secret_value"]
    assert len(api.requests) == 3
    assert all(r.startswith(console["ConsoleURL"] + "/api/queues/orders?") for r in api.requests)
    assert blind["missingCount"] == 3 and not blind["drained"] and len(api.requests) == 3
    assert "brokerId" in blind["readError"]


def test_an_aws_error_finding_the_broker_fails_the_step(plan: MigrationPlan, aws: Any) -> None:
    """AccessDenied or an unknown broker is not a broker that cannot be read: the step fails
    (the state machine's Catch routes it), as a CloudWatch error does."""
    readings = amazon_mq_readings(plan, aws("secretsmanager"), aws("mq"), "b-not-there")
    side = amazon_mq_side(plan, None, readings)
    with pytest.raises(DrainCheckFailed, match="DescribeBroker failed"):
        read_queues(plan, aws("cloudwatch"), T0, QUEUES, side=side, purpose=Purpose.DRAIN)

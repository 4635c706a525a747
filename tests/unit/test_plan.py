"""The plan model: samples are valid, every error names its field, the schema file is current."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import Mode, json_schema, parse_plan
from tests.conftest import ROOT, as_rabbitmq

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mq-cutover/orders-app"


def test_sample_plans_are_valid(
    ordered_plan: dict[str, Any], unordered_plan: dict[str, Any]
) -> None:
    ordered = parse_plan(ordered_plan)
    unordered = parse_plan(unordered_plan)
    assert ordered.mode is Mode.ORDERED and unordered.mode is Mode.UNORDERED
    # Defaults are filled in and dumped back as camelCase.
    dumped = unordered.dump()
    assert dumped["approvals"]["gates"] == ["cutover", "stopOnPrem"]
    assert dumped["onPrem"]["metrics"]["queueDimension"] == "Queue"


def _problems(document: Any) -> list[str]:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(document)
    return caught.value.problems


def test_missing_field_is_named(ordered_plan: dict[str, Any]) -> None:
    del ordered_plan["producers"]
    assert _problems(ordered_plan) == ["producers: Field required"]


def test_invalid_values_are_named_with_their_path(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["mode"] = "fast"
    ordered_plan["consumers"]["parameters"][1] = "no-leading-slash"
    problems = _problems(ordered_plan)
    assert any(p.startswith("mode: Input should be 'ordered' or 'unordered'") for p in problems)
    assert any(
        p.startswith("consumers.parameters[1]: String should match pattern") for p in problems
    )


def test_unknown_field_is_refused(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["drain"]["pollEvery"] = 5
    assert _problems(ordered_plan) == ["drain.pollEvery: Extra inputs are not permitted"]


def test_password_in_plan_is_refused(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"]["create"]["users"][0]["password"] = "hunter2hunter2"
    assert _problems(ordered_plan) == [
        "target.create.users[0].password: Extra inputs are not permitted"
    ]


def test_active_standby_needs_two_subnets(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"]["create"]["subnetIds"] = ["subnet-0a1b2c3d4e5f60718"]
    (problem,) = _problems(ordered_plan)
    assert problem.startswith("target.create: subnetIds: ACTIVE_STANDBY_MULTI_AZ needs exactly 2")


def test_create_or_adopt_exactly_one(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"]["adoptBrokerId"] = "b-1234"
    assert _problems(ordered_plan) == ["target: give exactly one of create or adoptBrokerId"]


API = {"url": "http://rabbit.internal:15672", "secretArn": SECRET.replace("orders-app", "api")}


def test_a_created_rabbitmq_broker_needs_its_topology(ordered_plan: dict[str, Any]) -> None:
    (problem,) = _problems(as_rabbitmq(ordered_plan, on_prem_api=False))
    assert problem.startswith("(plan): topology: a new RabbitMQ broker starts empty")
    ordered_plan["topology"] = {"copy": False}
    assert not parse_plan(ordered_plan).topology_copied
    ordered_plan["topology"] = {"copy": True}
    (problem,) = _problems(ordered_plan)
    assert problem.startswith("topology: onPremApi: copying the topology reads")
    ordered_plan["topology"] = {"onPremApi": API}
    plan = parse_plan(ordered_plan)
    assert plan.topology_copied and plan.needs_management_api
    assert (
        plan.admin_secret_arn == ordered_plan["target"]["create"]["users"][0]["passwordSecretArn"]
    )


def test_an_adopted_broker_needs_the_amazon_mq_admin_secret(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"].pop("create")
    ordered_plan["target"].pop("failoverOptions", None)
    ordered_plan["target"]["adoptBrokerId"] = "b-1234"
    ordered_plan["topology"] = {"onPremApi": API}
    (problem,) = _problems(ordered_plan)
    assert "topology.amazonMqSecretArn: an adopted broker's management API" in problem
    ordered_plan["topology"]["amazonMqSecretArn"] = API["secretArn"]
    assert parse_plan(ordered_plan).admin_secret_arn == API["secretArn"]


def test_activemq_has_no_vhosts_nor_management_api_readings(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["topology"] = {"onPremApi": API, "vhosts": ["/"]}
    (problem,) = _problems(ordered_plan)
    assert "topology.vhosts: ActiveMQ has no virtual hosts" in problem
    ordered_plan["topology"] = {"onPremApi": API}
    ordered_plan["target"]["metrics"] = {"source": "managementApi"}
    (problem,) = _problems(ordered_plan)
    assert "managementApi reads a RabbitMQ broker's management API" in problem


def test_unordered_rabbitmq_is_the_shovel_procedure(unordered_plan: dict[str, Any]) -> None:
    as_rabbitmq(unordered_plan, on_prem_api=False)
    unordered_plan["topology"] = {"copy": False}
    (problem,) = _problems(unordered_plan)
    assert "topology.onPremApi: mode unordered on RabbitMQ defines a shovel per queue" in problem
    unordered_plan["topology"] = {"onPremApi": API, "vhosts": ["/", "billing"]}
    (problem,) = _problems(unordered_plan)
    assert "shovels the queues of one vhost" in problem
    unordered_plan["topology"] = {"onPremApi": API}
    unordered_plan["onPrem"]["queues"] = ["orders.*"]
    (problem,) = _problems(unordered_plan)
    assert "shovels each queue by name" in problem
    unordered_plan["onPrem"]["queues"] = ["orders.created"]
    unordered_plan["consumers"]["parameters"] = unordered_plan["consumers"]["parameters"][:1]
    plan = parse_plan(unordered_plan)
    assert plan.shovels  # one consumer is enough: consumers move first, all together
    assert plan.topology is not None
    assert plan.topology.shovel_ca_cert_file == "/etc/ssl/certs/ca-certificates.crt"


def test_parameter_in_both_groups_is_refused(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["consumers"]["parameters"].append(ordered_plan["producers"]["parameters"][0])
    (problem,) = _problems(ordered_plan)
    assert "share ['/mq-cutover/orders/checkout/broker-url']" in problem


def test_migration_id_must_be_label_safe(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["migrationId"] = "ssm-cutover"
    (problem,) = _problems(ordered_plan)
    assert problem.startswith("migrationId: must not start with 'aws' or 'ssm'")


def test_not_json_and_not_object() -> None:
    assert _problems("{nope")[0].startswith("(plan): not JSON")
    assert _problems([1, 2]) == ["(plan): expected a JSON object, got list"]


def test_schema_file_matches_the_model() -> None:
    on_disk = json.loads((ROOT / "schema" / "migration-plan.schema.json").read_text())
    assert on_disk == json_schema(), (
        "regenerate: mq-cutover schema > schema/migration-plan.schema.json"
    )


def _field_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> set[str]:
    """Every field path of the plan (e.g. target.create.brokerName) from its JSON Schema."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return _field_paths(schema, option, prefix)
    paths: set[str] = set()
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if child.get("type") == "array" and "$ref" in child.get("items", {}):
            paths.add(path)  # list items (users) are documented in their parent's row
            continue
        nested = _field_paths(schema, child, path)
        paths |= nested or {path}  # document the leaves
    return paths


def test_readme_documents_every_plan_field() -> None:
    schema = json_schema()
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## The migration plan") : readme.index("## How it runs")]
    for path in sorted(_field_paths(schema, schema, "")):
        leaf = path.split(".")[-1]
        assert f"`{path}`" in table or f"`{leaf}`" in table or f", {leaf}" in table, path


def test_polling_loops_must_fit_the_execution_history(ordered_plan: dict[str, Any]) -> None:
    # One reading a call, every second, for an hour and three 30-minute extensions.
    ordered_plan["drain"] = {
        "pollIntervalSeconds": 1,
        "timeoutMinutes": 60,
        "maxSecondsPerCheck": 0,
    }
    (problem,) = _problems(ordered_plan)
    # A rollback's two drains (on-prem, Amazon MQ) count with their own timeout (30 minutes
    # and the extensions); the placement check and the fence before the stop with theirs.
    assert problem.startswith(
        "(plan): the polling loops could take 36180 polls (drain: 9000, rollbackDrain: 14400, "
        "placement: 6300, fence: 6300"
    )
    assert "raise a pollIntervalSeconds or drain.maxSecondsPerCheck" in problem
    # 240 s of readings a call: 241 readings, then a 1-second wait -> 37 calls for 2.5 hours.
    ordered_plan["drain"]["maxSecondsPerCheck"] = 240
    assert parse_plan(ordered_plan).drain.seconds_per_poll() == 241


def test_unordered_needs_two_consumers_to_place_one_on_each_broker(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["consumers"]["parameters"] = unordered_plan["consumers"]["parameters"][:1]
    (problem,) = _problems(unordered_plan)
    assert "consumers.parameters: mode unordered needs at least 2 consumer parameters" in problem


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"randomize": True}, "randomize is set by mq-cutover"),
        ({"reconnectForever": True}, "reconnectForever is not a failover transport option"),
        ({"initialReconnectDelay": -5}, "initialReconnectDelay must not be negative"),
        ({"maxReconnectAttempts": "10"}, "maxReconnectAttempts must be a whole number"),
        ({"useExponentialBackOff": 1}, "useExponentialBackOff must be true or false"),
        ({"backOffMultiplier": 0}, "backOffMultiplier must be a number above 0"),
        ({"jms.prefetchPolicy.queuePrefetch": "1&randomize=true"}, "must be true, false"),
    ],
)
def test_failover_options_are_checked(
    ordered_plan: dict[str, Any], options: dict[str, Any], why: str
) -> None:
    ordered_plan["target"]["failoverOptions"] = options
    (problem,) = _problems(ordered_plan)
    assert problem.startswith("target.failoverOptions: "), problem
    assert why in problem


def test_connection_options_ride_on_the_failover_url(ordered_plan: dict[str, Any]) -> None:
    # A prefetch set in the clients' URL today would otherwise be lost at the cutover.
    ordered_plan["target"]["failoverOptions"] = {"jms.prefetchPolicy.queuePrefetch": 100}
    assert parse_plan(ordered_plan).target.failover_options == {
        "jms.prefetchPolicy.queuePrefetch": 100
    }


def test_failover_options_only_for_openwire(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["target"]["failoverOptions"] = {"maxReconnectAttempts": -1}
    assert parse_plan(ordered_plan).target.failover_options == {"maxReconnectAttempts": -1}
    ordered_plan["target"]["protocol"] = "stomp"
    (problem,) = _problems(ordered_plan)
    assert "failoverOptions: only OpenWire clients use the failover transport" in problem


def test_restart_hook_documents_are_the_shell_ones(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["consumers"]["restartHook"]["documentName"] = "AWS-ApplyPatchBaseline"
    (problem,) = _problems(unordered_plan)
    assert problem.startswith("consumers.restartHook.documentName: Input should be")


def test_packed_plan_round_trips_and_stays_small(ordered_plan: dict[str, Any]) -> None:
    from mq_cutover.plan import pack, summary

    ordered_plan["onPrem"]["queues"] = [f"app.queue-{i:04d}" for i in range(1000)]
    ordered_plan["producers"]["parameters"] = [
        f"/mq-cutover/fleet/producer-{i:04d}/broker-url" for i in range(500)
    ]
    ordered_plan["consumers"]["parameters"] = [
        f"/mq-cutover/fleet/consumer-{i:04d}/broker-url" for i in range(500)
    ]
    plan = parse_plan(ordered_plan)
    packed = pack(plan)
    assert parse_plan(packed) == plan
    assert len(json.dumps(plan.dump())) > 60_000 and len(packed) < 10_000
    brief = summary(plan)
    assert brief["producers"]["parameterCount"] == 500 and "parameters" not in brief["producers"]
    assert brief["onPrem"]["queueCount"] == 1000 and "queues" not in brief["onPrem"]
    assert brief["drain"] == plan.dump()["drain"]
    with pytest.raises(PlanInvalid, match="does not unpack"):
        parse_plan(packed[:-20])


def test_stale_limit_must_cover_two_periods(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["onPrem"]["metrics"]["staleAfterSeconds"] = 60  # the plan's period is 60 s
    (problem,) = _problems(ordered_plan)
    assert "staleAfterSeconds must be at least twice periodSeconds" in problem


def test_unordered_producers_count_towards_the_history_budget(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["producers"]["parameters"] = [f"/mq-cutover/p/{i}" for i in range(2400)]
    (problem,) = _problems(unordered_plan)
    assert "unorderedProducers: 2934" in problem


def test_restart_hook_waits_count_towards_the_history_budget(
    unordered_plan: dict[str, Any],
) -> None:
    """Each wait for a restart hook may take timeoutSeconds / pollIntervalSeconds checks; in
    unordered mode a producers' hook is waited for once per producer."""
    hook = {"commands": ["systemctl restart collector"], "targetTags": {"role": ["collector"]}}
    unordered_plan["producers"]["restartHook"] = hook
    plan = parse_plan(unordered_plan)  # defaults: 300 s, every 10 s: 31 checks a wait
    assert plan.producers.restart_hook is not None and plan.producers.restart_hook.polls() == 31
    unordered_plan["producers"]["parameters"] = [f"/mq-cutover/p/{i}" for i in range(60)]
    (problem,) = _problems(unordered_plan)
    # 60 producers + the rollback's = 61 waits; consumers: widen, narrow + 2 in a rollback.
    assert f"restartHooks: {61 * 31 + 4 * 31}" in problem
    assert "timeoutSeconds" in problem
    unordered_plan["producers"]["restartHook"] = {**hook, "pollIntervalSeconds": 60}
    assert parse_plan(unordered_plan).producers.restart_hook is not None


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("timeoutSeconds", 10, "greater than or equal to 30"),
        ("timeoutSeconds", 7200, "less than or equal to 3600"),
        ("pollIntervalSeconds", 1, "greater than or equal to 5"),
    ],
)
def test_restart_hook_timing_is_validated(
    unordered_plan: dict[str, Any], field: str, value: int, why: str
) -> None:
    unordered_plan["consumers"]["restartHook"][field] = value
    (problem,) = _problems(unordered_plan)
    assert problem.startswith(f"consumers.restartHook.{field}: Input should be {why}")


def test_a_rabbitmq_target_reads_amazon_mq_for_rabbitmq_metric_names(
    ordered_plan: dict[str, Any],
) -> None:
    as_rabbitmq(ordered_plan, on_prem_api=False)
    ordered_plan["topology"] = {"copy": False}
    metrics = parse_plan(ordered_plan).target.metrics
    assert (metrics.messages_metric, metrics.in_flight_metric, metrics.consumers_metric) == (
        "MessageCount",
        "MessageUnacknowledgedCount",
        "ConsumerCount",
    )
    assert metrics.enqueue_metric is None  # Amazon MQ for RabbitMQ has no enqueue counter
    assert metrics.dimensions == {"VirtualHost": "/"}
    # What the plan names is kept.
    ordered_plan["target"]["metrics"] = {"dimensions": {"VirtualHost": "billing"}}
    ordered_plan["target"]["metrics"]["messagesMetric"] = "MessageReadyCount"
    metrics = parse_plan(ordered_plan).target.metrics
    assert metrics.messages_metric == "MessageReadyCount"
    assert metrics.dimensions == {"VirtualHost": "billing"}
    assert metrics.consumers_metric == "ConsumerCount"


# Amazon MQ's own metrics (AWS/AmazonMQ) cover a broker's first 1,000 destinations (ActiveMQ)
# or 500 queues (RabbitMQ): "Quotas in Amazon MQ". More listed queues never report there.
QUOTAS = "https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/amazon-mq-limits.html"


def _queues(count: int) -> list[str]:
    return [f"app.queue-{i:05d}" for i in range(count)]


def test_more_listed_queues_than_amazon_mq_monitors_are_refused_naming_target_metrics(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["onPrem"]["queues"] = _queues(1001)
    (problem,) = _problems(ordered_plan)
    assert problem.startswith(
        "(plan): target.metrics: the plan lists 1001 queues the drain waits for (onPrem.queues, "
        "less onPrem.ignoreQueues), but Amazon MQ for ActiveMQ's own metrics (AWS/AmazonMQ) "
        "cover only the first 1000 destinations (queues and topics) of a broker (Quotas in "
        f"Amazon MQ, {QUOTAS}): the queues beyond them would never report, so a rollback's "
        "drain of Amazon MQ could never finish; "
    )
    assert "set target.metrics.namespace to that namespace" in problem
    assert "mq-cutover publish-metrics --detail-figures all" in problem
    assert "managementApi" not in problem  # an ActiveMQ broker has no management API reading
    # Exactly the quota passes; ignored names (DLQs) and patterns are not counted.
    ordered_plan["onPrem"]["queues"] = _queues(1000)
    assert len(parse_plan(ordered_plan).on_prem.queues) == 1000
    ordered_plan["onPrem"]["queues"] = [*_queues(1000), "app.queue-99999.DLQ", "billing.*"]
    assert len(parse_plan(ordered_plan).on_prem.queues) == 1002
    # A name listed twice is one queue.
    ordered_plan["onPrem"]["queues"] = [*_queues(1000), "app.queue-00000"]
    parse_plan(ordered_plan)


def test_unordered_refusal_names_the_placement_check_too(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["onPrem"]["queues"] = _queues(1001)
    (problem,) = _problems(unordered_plan)
    assert "drain of Amazon MQ (and the placement check) could never finish" in problem


def test_a_rabbitmq_broker_is_limited_to_500_queues_and_offered_its_management_api(
    ordered_plan: dict[str, Any],
) -> None:
    document = as_rabbitmq(ordered_plan)
    document["onPrem"]["queues"] = _queues(501)
    (problem,) = _problems(document)
    assert problem.startswith(
        "(plan): target.metrics: the plan lists 501 queues the drain waits for"
    )
    assert "Amazon MQ for RabbitMQ's own metrics (AWS/AmazonMQ) cover only the first 500 " in (
        problem
    )
    assert "ordered by number of consumers" in problem
    assert problem.endswith(
        "or set target.metrics.source to managementApi (read live from its management API)"
    )
    document["onPrem"]["queues"] = _queues(500)
    parse_plan(document)


def test_an_adopted_broker_of_unknown_engine_is_held_to_1000(ordered_plan: dict[str, Any]) -> None:
    del ordered_plan["target"]["create"]
    ordered_plan["target"]["adoptBrokerId"] = "b-1234"
    ordered_plan["onPrem"]["queues"] = _queues(1000)
    parse_plan(ordered_plan)
    ordered_plan["onPrem"]["queues"] = _queues(1001)
    (problem,) = _problems(ordered_plan)
    assert "cover only the first 1000 destinations of an ActiveMQ broker (500 queues of a " in (
        problem
    )
    assert "or set target.metrics.source to managementApi (read live from a RabbitMQ broker's" in (
        problem
    )


def test_a_bridge_namespace_or_the_management_api_reads_10000_queues(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["onPrem"]["queues"] = _queues(10_000)
    ordered_plan["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
    assert parse_plan(ordered_plan).target.metrics.namespace == "MqCutover/AmazonMq"
    document = as_rabbitmq(ordered_plan)
    document["target"]["metrics"] = {"source": "managementApi"}
    assert len(parse_plan(document).on_prem.queues) == 10_000
    # The same 10,000 in Amazon MQ's own namespace are refused, whichever way it is spelled.
    document["target"]["metrics"] = {"namespace": "AWS/AmazonMQ", "source": "cloudwatch"}
    (problem,) = _problems(document)
    assert problem.startswith("(plan): target.metrics: the plan lists 10000 queues")

"""producers.batchSize: the plan field, the history budget counted per batch, a batch written by
one or more Repoint Producer calls with one restart hook, and the names status/report derive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mq_cutover.contracts import RepointClientsEvent, RepointClientsResult
from mq_cutover.errors import ParameterConflict, PlanInvalid
from mq_cutover.gate_facts import render_facts, unlocks
from mq_cutover.parameters import ClientStep, repoint_clients, summarized
from mq_cutover.plan import MAX_POLLS, parse_plan
from mq_cutover_cli import operate
from tests.conftest import as_rabbitmq

BROKER = {"clientUrl": "ssl://amq-1:61617", "endpoints": ["ssl://amq-1:61617"]}
HOOK = {"commands": ["systemctl restart collector"], "instanceIds": ["i-0a1b2c3d4e5f60718"]}


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(document)
    return caught.value.problems


def producers(count: int) -> list[str]:
    return [f"/mq-cutover/fleet/producer-{i:05d}/broker-url" for i in range(count)]


# --- the plan field ---------------------------------------------------------------------------
def test_batch_size_defaults_to_one_by_one(unordered_plan: dict[str, Any]) -> None:
    plan = parse_plan(unordered_plan)
    assert plan.producers.batch_size == 1 and plan.producers.batches() == 3
    assert plan.dump()["producers"]["batchSize"] == 1
    unordered_plan["producers"]["batchSize"] = 2
    assert parse_plan(unordered_plan).producers.batches() == 2  # 2 + 1


@pytest.mark.parametrize("size", [0, -1, 1001, 2.5, "many"])
def test_batch_size_out_of_bounds_is_refused_naming_the_field(
    unordered_plan: dict[str, Any], size: Any
) -> None:
    unordered_plan["producers"]["batchSize"] = size
    (problem,) = _problems(unordered_plan)
    assert problem.startswith("producers.batchSize: "), problem


def test_consumers_have_no_batch_size(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["consumers"]["batchSize"] = 2
    assert _problems(unordered_plan) == ["consumers.batchSize: Extra inputs are not permitted"]


def test_batch_size_is_refused_in_ordered_mode(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["producers"]["batchSize"] = 1
    parse_plan(ordered_plan)  # the default, said out loud: fine
    ordered_plan["producers"]["batchSize"] = 10
    (problem,) = _problems(ordered_plan)
    assert problem.startswith("(plan): producers.batchSize: mode ordered moves every producer")


def test_batch_size_is_refused_with_shovels(unordered_plan: dict[str, Any]) -> None:
    """Unordered on RabbitMQ moves every producer at once once the shovels run."""
    as_rabbitmq(unordered_plan)
    parse_plan(unordered_plan)
    unordered_plan["producers"]["batchSize"] = 5
    (problem,) = _problems(unordered_plan)
    assert "producers.batchSize: mode unordered on RabbitMQ moves every producer" in problem


# --- the history budget -----------------------------------------------------------------------
def test_too_many_producers_one_by_one_names_the_smallest_batch_size_that_fits(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["producers"]["parameters"] = producers(2400)
    (problem,) = _problems(unordered_plan)
    assert "unorderedProducers: 2934" in problem
    found = problem.split("producers.batchSize ")[1].split(" ")[0]
    smallest = int(found)
    assert f"move producers in batches: producers.batchSize {smallest} or more fits (now 1)" in (
        problem
    )
    unordered_plan["producers"]["batchSize"] = smallest
    plan = parse_plan(unordered_plan)
    assert sum(plan._polls(smallest).values()) <= MAX_POLLS
    assert sum(plan._polls(smallest - 1).values()) > MAX_POLLS


def test_unordered_producers_cost_per_batch(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["producers"]["parameters"] = producers(10_000)
    unordered_plan["producers"]["batchSize"] = 100
    plan = parse_plan(unordered_plan)
    # 100 batches x (11 events + 7 for the second call of 50) = 200 polls' worth of history
    # (9 events a poll).
    assert plan._polls(100)["unorderedProducers"] == 200
    assert plan._polls(50)["unorderedProducers"] == 245  # 200 batches, one call each
    assert plan._polls(1)["unorderedProducers"] == 12_223


def test_ten_thousand_producers_and_queues_in_batches_of_100_pass_validation(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["producers"]["parameters"] = producers(10_000)
    unordered_plan["consumers"]["parameters"] = [
        f"/mq-cutover/fleet/consumer-{i:05d}/broker-url" for i in range(10_000)
    ]
    unordered_plan["onPrem"]["queues"] = [f"app.queue-{i:05d}" for i in range(10_000)]
    # AWS/AmazonMQ covers 1,000 destinations: more queues are read from a bridge's namespace
    unordered_plan["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
    (problem,) = _problems(unordered_plan)
    assert "producers.batchSize 8 or more fits (now 1)" in problem
    unordered_plan["producers"]["batchSize"] = 100
    plan = parse_plan(unordered_plan)
    assert plan.producers.batches() == 100 and len(plan.on_prem.queues) == 10_000


def test_a_restart_hook_is_waited_for_once_per_batch(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["producers"]["parameters"] = producers(10_000)
    unordered_plan["producers"]["restartHook"] = HOOK  # 31 checks a wait
    unordered_plan["producers"]["batchSize"] = 100
    (problem,) = _problems(unordered_plan)
    # 100 batches + the rollback's = 101 waits of 31 checks; consumers: 4 waits.
    assert f"restartHooks: {101 * 31 + 4 * 31}" in problem
    smallest = int(problem.split("producers.batchSize ")[1].split(" ")[0])
    assert smallest > 100
    unordered_plan["producers"]["batchSize"] = smallest
    plan = parse_plan(unordered_plan)
    assert (
        sum(plan._polls(smallest).values()) <= MAX_POLLS < sum(plan._polls(smallest - 1).values())
    )


def test_a_plan_too_large_even_in_batches_is_told_the_other_fixes(
    unordered_plan: dict[str, Any],
) -> None:
    unordered_plan["producers"]["parameters"] = producers(3)
    unordered_plan["drain"] = {"pollIntervalSeconds": 1, "maxSecondsPerCheck": 0}
    (problem,) = _problems(unordered_plan)
    assert "producers.batchSize" not in problem
    assert "raise a pollIntervalSeconds or drain.maxSecondsPerCheck" in problem


# --- a batch in Repoint Producer calls ----------------------------------------------------------
@pytest.fixture
def batch_plan(aws: Any, unordered_plan: dict[str, Any]) -> Any:
    unordered_plan["producers"]["parameters"] = producers(7)
    unordered_plan["producers"]["batchSize"] = 3
    unordered_plan["producers"]["restartHook"] = HOOK
    plan = parse_plan(unordered_plan)
    ssm = aws("ssm")
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    return plan, ssm


def _value(ssm: Any, name: str) -> str:
    return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])


def test_a_batch_writes_its_window_and_sends_one_restart(batch_plan: Any) -> None:
    plan, ssm = batch_plan
    names = plan.producers.parameters
    last = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=6, count=3)
    assert last["changed"] == names[6:7]  # the last batch is cut at the group's end
    assert (last["start"], last["next"], last["done"], last["remaining"]) == (6, 7, True, 0)
    middle = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=3, count=3)
    assert middle["changed"] == names[3:6] and middle["done"]
    assert [_value(ssm, n) for n in names] == [plan.on_prem.url] * 3 + [BROKER["clientUrl"]] * 4
    commands = ssm.list_commands()["Commands"]
    assert sorted(c["CommandId"] for c in commands) == sorted(
        [last["restartCommandId"], middle["restartCommandId"]]
    )
    with pytest.raises(ParameterConflict, match="no batch of 3 from number 7"):
        repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=7, count=3)


def test_a_batch_cut_short_by_time_restarts_once_when_finished(batch_plan: Any) -> None:
    """Time runs out after two of the batch's three producers: that call sends no restart and
    says when it last wrote; the next call finishes the batch and restarts it, even though the
    one producer left already pointed at Amazon MQ (it changes nothing itself); a retry of that
    call (its response lost) finds the command sent and sends no second one."""
    plan, ssm = batch_plan
    names = plan.producers.parameters
    ssm.put_parameter(Name=names[2], Value=BROKER["clientUrl"], Type="String", Overwrite=True)
    clock = iter([60_000, 1_000])  # time left before the second and the third producer
    first = repoint_clients(
        plan, ssm, ClientStep.PRODUCERS, BROKER, index=0, count=3, time_left_ms=lambda: next(clock)
    )
    assert first["changed"] == names[0:2] and not first["done"] and first["next"] == 2
    assert first["restartCommandId"] is None and ssm.list_commands()["Commands"] == []
    written = datetime.fromisoformat(first["lastWrite"])
    assert written == ssm.get_parameter(Name=names[1])["Parameter"]["LastModifiedDate"]
    event = RepointClientsEvent.model_validate(
        {
            "migrationId": plan.migration_id,
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:x",
            "plan": "p",
            "step": "producers",
            "broker": BROKER,
            "parameterIndex": 0,
            "parameterCount": 3,
            "from": first["next"],
            "writtenBefore": first["lastWrite"],
        }
    )
    assert event.written_before == written
    args = {"index": 0, "count": 3, "start": 2, "written_before": event.written_before}
    rest = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, **args)
    assert rest["changed"] == [] and rest["unchanged"] == names[2:3] and rest["done"]
    (command,) = ssm.list_commands()["Commands"]
    assert rest["restartCommandId"] == command["CommandId"]
    again = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, **args)
    assert again["restartCommandId"] == command["CommandId"]
    assert len(ssm.list_commands()["Commands"]) == 1
    # Each producer of the batch written once by this migration (the third not at all).
    versions = [len(ssm.get_parameter_history(Name=n)["Parameters"]) for n in names[:3]]
    assert versions == [2, 2, 2]  # the third: the test's own write before the run
    assert "lastWrite" not in rest
    assert (
        RepointClientsResult.model_validate(
            summarized(first, ("changed", "unchanged", "conflicts"))
        ).dump()["lastWrite"]
        == first["lastWrite"]
    )


def test_a_start_before_the_batch_is_moved_to_its_first(batch_plan: Any) -> None:
    plan, ssm = batch_plan
    result = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=3, count=3, start=0)
    assert result["start"] == 3 and result["changed"] == plan.producers.parameters[3:6]


def test_the_old_one_parameter_event_still_works(batch_plan: Any) -> None:
    plan, ssm = batch_plan
    event = RepointClientsEvent.model_validate(
        {
            "migrationId": plan.migration_id,
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:x",
            "plan": "p",
            "step": "producers",
            "broker": BROKER,
            "parameterIndex": 4,
        }
    )
    assert event.parameter_count is None and event.written_before is None
    result = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=4)
    assert result["changed"] == [plan.producers.parameters[4]] and result["done"]
    assert result["restartCommandId"]


# --- status/report and the gate facts ---------------------------------------------------------
def test_status_names_a_large_batch_from_its_counts_and_the_plan() -> None:
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    names = producers(1000)
    call = {
        "batch": 1,
        "step": "producers",
        "start": 250,
        "changed": names[250:300],
        "unchanged": [],
        "changedCount": 250,
        "unchangedCount": 0,
        "next": 500,
        "done": True,
        "batchChanged": 250,
        "restartCommandId": "c-1",
    }
    record = operate.Record(
        {},
        [],
        {"producers": {"parameters": names}, "consumers": {"parameters": ["/c/1"]}},
        steps=[operate.Step("Repoint Producer", "Task", at, at, output=call)],
    )
    (move,) = record.client_moves()
    assert move["names"] == names[250:500]
    places = record.where_clients_are()["producers"]
    assert [n for n, place in places.items() if place == "amazonMq"] == names[250:500]


def test_gate_facts_say_batches(unordered_plan: dict[str, Any]) -> None:
    unordered_plan["producers"]["restartHook"] = HOOK
    unordered_plan["producers"]["batchSize"] = 2
    plan = parse_plan(unordered_plan)
    unlocked = unlocks("placementTimeout", plan)
    (step,) = [s for s in unlocked["steps"] if s["step"] == "Repoint Producers One By One"]
    assert step["batchSize"] == 2
    assert step["what"] == "producers to Amazon MQ, in batches of 2, one batch at a time"
    text = "\n".join(render_facts({"gate": "placementTimeout", "unlocks": unlocked}))
    assert "restart hook (once per batch of 2)" in text
    unordered_plan["producers"]["batchSize"] = 1
    one = unlocks("placementTimeout", parse_plan(unordered_plan))
    (step,) = [s for s in one["steps"] if s["step"] == "Repoint Producers One By One"]
    assert step["what"] == "producers to Amazon MQ, one at a time"
    assert "(once per producer)" in "\n".join(render_facts({"unlocks": one}))


def test_the_preflight_history_estimate_counts_one_iteration_per_batch(
    unordered_plan: dict[str, Any],
) -> None:
    """Validate Plan's (and `mq-cutover preflight`'s) estimate from the state machine's own
    definition: the Map's iteration events count once per batch, and a batch larger than one
    call moves (50 parameters counted a call) adds the call's loop."""
    import json

    from mq_cutover.preflight import HISTORY_LIMIT, history_estimate, loop_events
    from tests.conftest import ROOT

    asl = json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())
    inner = asl["States"]["Repoint Producers One By One"]["ItemProcessor"]["States"]
    unordered_plan["producers"]["parameters"] = producers(10_000)
    unordered_plan["producers"]["batchSize"] = 8
    one_call = history_estimate(parse_plan(unordered_plan), asl)["unorderedProducers"]
    assert one_call % 1250 == 0  # 1,250 batches of 8
    per_batch = one_call // 1250
    unordered_plan["producers"]["batchSize"] = 100
    plan = parse_plan(unordered_plan)
    estimate = history_estimate(plan, asl)
    # 100 batches, each moved by two calls of 50: the call and its choice once more.
    assert estimate["unorderedProducers"] == 100 * (
        per_batch + loop_events(inner, "Repoint Producer")
    )
    assert sum(estimate.values()) < HISTORY_LIMIT

"""The rollback runs the cutover backwards, one action a call, from where clients point now."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.parameters import NAMES_SHOWN, ClientStep, repoint_clients
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.rollback import Action, next_action, roll_back_step
from tests.conftest import as_rabbitmq

BROKER = {
    "clientUrl": "failover:(ssl://amq-1:61617)",
    "endpoints": ["ssl://amq-1:61617"],
    "metricBrokers": ["amq-1"],
}


def _placed(producers: dict[str, int], consumers: dict[str, int]) -> dict[str, Any]:
    def names(group: str, counts: dict[str, int]) -> dict[str, list[str]]:
        return {
            place: [f"/{group}/{place}/{i}" for i in range(counts.get(place, 0))]
            for place in ("amazonMq", "widened", "onPrem")
        }

    return {"producers": names("p", producers), "consumers": names("c", consumers)}


@pytest.mark.parametrize(
    ("mode", "producers", "consumers", "memo", "expected"),
    [
        # Nothing moved: done.
        ("ordered", {"onPrem": 2}, {"onPrem": 2}, {}, (Action.DONE, None)),
        # Producers on Amazon MQ, consumers on-prem: the older backlog first, then consumers.
        ("ordered", {"amazonMq": 2}, {"onPrem": 2}, {}, (Action.DRAIN, "onPrem")),
        (
            "ordered",
            {"amazonMq": 2},
            {"onPrem": 2},
            {"drained": ["onPrem"]},
            (Action.CONSUMERS_TO_AMAZON_MQ, None),
        ),
        # Half the producers moved (a step failed midway): the same.
        ("ordered", {"amazonMq": 1, "onPrem": 1}, {"onPrem": 2}, {}, (Action.DRAIN, "onPrem")),
        # Consumers partly moved already: finish moving them (on-prem was drained for that).
        (
            "ordered",
            {"amazonMq": 2},
            {"amazonMq": 1, "onPrem": 1},
            {},
            (Action.CONSUMERS_TO_AMAZON_MQ, None),
        ),
        # Everyone on Amazon MQ: no consumer may be left on-prem (it would take the producers'
        # newest messages before Amazon MQ's), then producers back first.
        ("ordered", {"amazonMq": 2}, {"amazonMq": 2}, {}, (Action.DRAIN, "onPrem")),
        (
            "ordered",
            {"amazonMq": 2},
            {"amazonMq": 2},
            {"drained": ["onPremFence"]},
            (Action.PRODUCERS_BACK, None),
        ),
        # Producers back, consumers on Amazon MQ: empty it, then consumers back.
        (
            "ordered",
            {"onPrem": 2},
            {"amazonMq": 2},
            {"producersMoved": True},
            (Action.DRAIN, "amazonMq"),
        ),
        (
            "ordered",
            {"onPrem": 2},
            {"amazonMq": 2},
            {"producersMoved": True, "drained": ["amazonMq"]},
            (Action.CONSUMERS_BACK, None),
        ),
        # Unordered: consumers narrowed to Amazon MQ are widened again before producers go back.
        ("unordered", {"amazonMq": 2}, {"amazonMq": 2}, {}, (Action.WIDEN_CONSUMERS, None)),
        ("unordered", {"amazonMq": 2}, {"widened": 2}, {}, (Action.PRODUCERS_BACK, None)),
        (
            "unordered",
            {"onPrem": 2},
            {"widened": 2},
            {"producersMoved": True},
            (Action.DRAIN, "amazonMq"),
        ),
        # Widened, but no producer ever moved: nothing can be on Amazon MQ.
        ("unordered", {"onPrem": 2}, {"widened": 2}, {}, (Action.CONSUMERS_BACK, None)),
    ],
)
def test_next_action_runs_the_procedure_backwards(
    ordered_plan: dict[str, Any],
    mode: str,
    producers: dict[str, int],
    consumers: dict[str, int],
    memo: dict[str, Any],
    expected: tuple[Action, str | None],
) -> None:
    ordered_plan["mode"] = mode
    action, side, _ = next_action(parse_plan(ordered_plan), _placed(producers, consumers), memo)
    assert (action, side.value if side else None) == expected


@pytest.fixture
def plan(aws: Any, ordered_plan: dict[str, Any]) -> MigrationPlan:
    plan = parse_plan(ordered_plan)
    for name in plan.all_parameters:
        aws("ssm").put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    return plan


def _value(ssm: Any, name: str) -> str:
    return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])


def _run(plan: MigrationPlan, ssm: Any, memo: dict[str, Any]) -> dict[str, Any]:
    """One call as the deployed function makes it: the broker's URLs given."""
    return roll_back_step(plan, ssm, BROKER, memo)


def test_an_ordered_rollback_after_every_client_moved(aws: Any, plan: MigrationPlan) -> None:
    ssm = aws("ssm")
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, BROKER)
    fence = _run(plan, ssm, {})
    assert (fence["action"], fence["side"], fence["purpose"]) == ("drain", "onPrem", "fence")
    assert fence["wait"] == "onPremFence" and fence["restored"] == []
    first = _run(plan, ssm, {**fence["memo"], "drained": ["onPremFence"]})
    assert first["action"] == "producers-back"
    assert sorted(first["restored"]) == sorted(plan.producers.parameters)
    assert all(_value(ssm, n) == BROKER["clientUrl"] for n in plan.consumers.parameters)
    second = _run(plan, ssm, first["memo"])
    # Consumers stay on Amazon MQ until it is empty: the state machine drains it first.
    assert (second["action"], second["side"]) == ("drain", "amazonMq")
    assert second["memo"]["producersMoved"] and second["restored"] == []
    memo = {**second["memo"], "drained": ["amazonMq"]}
    third = _run(plan, ssm, memo)
    assert third["action"] == "consumers-back"
    assert all(_value(ssm, n) == plan.on_prem.url for n in plan.all_parameters)
    assert _run(plan, ssm, third["memo"])["finished"]


def test_someone_elses_edit_is_left_alone_and_the_rollback_goes_on(
    aws: Any, plan: MigrationPlan
) -> None:
    ssm = aws("ssm")
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    hotfix = "ssl://hotfix:61617"
    edited_consumer = plan.consumers.parameters[0]
    # The run moved this consumer, then someone else changed it (an edit *before* the run
    # touched a parameter is simply its value: the run moves and later restores that).
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, BROKER, only=edited_consumer)
    ssm.put_parameter(Name=edited_consumer, Value=hotfix, Type="String", Overwrite=True)
    # Producers on Amazon MQ, consumers on-prem; on-prem drained: consumers move to Amazon MQ,
    # except the one someone else edited, which is reported and never touched.
    moved = _run(plan, ssm, {"drained": ["onPrem"]})
    assert moved["action"] == "consumers-to-amazon-mq"
    assert moved["moved"] == plan.consumers.parameters[1:]
    assert [c["name"] for c in moved["conflicts"]] == [edited_consumer]
    assert moved["memo"]["conflicts"] == [edited_consumer]
    # An edited producer is left alone by the restore too (the ownership check runs: the
    # broker is given, as the deployed function gives it).
    edited_producer = plan.producers.parameters[0]
    ssm.put_parameter(Name=edited_producer, Value=hotfix, Type="String", Overwrite=True)
    back = _run(plan, ssm, {**moved["memo"], "drained": ["onPrem", "onPremFence"]})
    assert back["action"] == "producers-back"
    assert back["restored"] == plan.producers.parameters[1:]
    assert _value(ssm, edited_producer) == hotfix
    assert _value(ssm, edited_consumer) == hotfix
    drain = _run(plan, ssm, back["memo"])
    assert (drain["action"], drain["side"]) == ("drain", "amazonMq")
    done = _run(plan, ssm, {**drain["memo"], "drained": ["onPrem", "onPremFence", "amazonMq"]})
    assert done["action"] == "consumers-back"
    assert done["restored"] == plan.consumers.parameters[1:]
    assert [c["name"] for c in done["conflicts"]] == [edited_consumer]
    assert _run(plan, ssm, done["memo"])["finished"]
    assert _value(ssm, edited_consumer) == hotfix and _value(ssm, edited_producer) == hotfix


def test_a_resumed_call_starts_where_the_last_one_stopped(aws: Any, plan: MigrationPlan) -> None:
    ssm = aws("ssm")
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, BROKER)
    # No time for more than one parameter a call: the cursor carries the position.
    fenced = {"drained": ["onPremFence"]}
    first = roll_back_step(plan, ssm, BROKER, fenced, time_left_ms=lambda: 0)
    assert first["action"] == "producers-back" and len(first["restored"]) == 1
    assert first["cursor"] == {"action": "producers-back", "next": 1}
    second = roll_back_step(plan, ssm, BROKER, first["memo"], first["cursor"], lambda: 0)
    assert second["action"] == "producers-back" and len(second["restored"]) == 1
    assert set(first["restored"] + second["restored"]) == set(plan.producers.parameters)
    assert second["cursor"] == {"action": "producers-back", "next": 0}


def _shovel_plan(unordered_plan: dict[str, Any]) -> MigrationPlan:
    plan = parse_plan(as_rabbitmq(unordered_plan))
    assert plan.shovels
    return plan


@pytest.mark.parametrize(
    ("producers", "consumers", "memo", "expected"),
    [
        # Whatever moved: the shovels go first (they would keep moving on-prem messages).
        ({"onPrem": 2}, {"amazonMq": 2}, {}, (Action.REMOVE_SHOVELS, None)),
        ({"amazonMq": 2}, {"amazonMq": 2}, {}, (Action.REMOVE_SHOVELS, None)),
        # Then the ordered rules: no consumer on-prem (fence), producers back first ...
        ({"amazonMq": 2}, {"amazonMq": 2}, {"shovelsRemoved": True}, (Action.DRAIN, "onPrem")),
        (
            {"amazonMq": 2},
            {"amazonMq": 2},
            {"shovelsRemoved": True, "drained": ["onPremFence"]},
            (Action.PRODUCERS_BACK, None),
        ),
        # ... then Amazon MQ emptied (a shovel moved messages there), then consumers back.
        (
            {"onPrem": 2},
            {"amazonMq": 2},
            {"shovelsRemoved": True, "producersMoved": True},
            (Action.DRAIN, "amazonMq"),
        ),
        (
            {"onPrem": 2},
            {"amazonMq": 2},
            {"shovelsRemoved": True, "producersMoved": True, "drained": ["amazonMq"]},
            (Action.CONSUMERS_BACK, None),
        ),
        # A failure after Start Shovels, before any consumer moved: what the shovels moved
        # waits on Amazon MQ; consumers go there to empty it ...
        (
            {"onPrem": 2},
            {"onPrem": 2},
            {"shovelsRemoved": True, "shovelled": True, "producersMoved": True},
            (Action.CONSUMERS_TO_AMAZON_MQ, None),
        ),
        # ... (then the drain and consumers back, as above) and only then is it done.
        (
            {"onPrem": 2},
            {"onPrem": 2},
            {"shovelsRemoved": True, "shovelled": True, "drained": ["amazonMq"]},
            (Action.DONE, None),
        ),
        # No shovel had been defined: nothing can be on Amazon MQ.
        ({"onPrem": 2}, {"onPrem": 2}, {"shovelsRemoved": True}, (Action.DONE, None)),
    ],
)
def test_a_rollback_with_shovels_removes_them_first(
    unordered_plan: dict[str, Any],
    producers: dict[str, int],
    consumers: dict[str, int],
    memo: dict[str, Any],
    expected: tuple[Action, str | None],
) -> None:
    plan = _shovel_plan(unordered_plan)
    action, side, _ = next_action(plan, _placed(producers, consumers), memo)
    assert (action, side.value if side else None) == expected


def test_removing_the_shovels_marks_amazon_mq_for_a_drain(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    plan = _shovel_plan(unordered_plan)
    ssm = aws("ssm")
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    endpoint = "amqps://b-1-1.mq.us-east-1.amazonaws.com:5671"
    broker = {"clientUrl": endpoint, "endpoints": [endpoint], "engine": "RABBITMQ"}
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, broker)
    removed: list[int] = []

    def remove() -> dict[str, Any]:
        removed.append(1)
        return {"removed": ["mq-cutover.x.q"], "count": 1, "ran": 1}

    first = roll_back_step(plan, ssm, broker, {}, remove_shovels=remove)
    assert first["action"] == "remove-shovels" and removed == [1]
    assert first["memo"]["shovelsRemoved"] and first["memo"]["producersMoved"]
    assert first["shovels"] == {"removed": ["mq-cutover.x.q"], "count": 1, "ran": 1}
    # Consumers stay on Amazon MQ until what the shovels moved there is consumed.
    second = roll_back_step(plan, ssm, broker, first["memo"], remove_shovels=remove)
    assert (second["action"], second["side"]) == ("drain", "amazonMq") and removed == [1]
    with pytest.raises(ValueError, match="remove_shovels is needed"):
        roll_back_step(plan, ssm, broker, {})


def test_a_rollback_with_many_parameters_names_a_few_and_counts_them_all(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """Thousands of parameters: the result travels in the state, so it names the first
    NAMES_SHOWN of each list and counts every one; the memo keeps every conflict's name (the
    next call must leave them all alone)."""
    ordered_plan["producers"]["parameters"] = [f"/fleet/p-{i:03d}/url" for i in range(120)]
    plan = parse_plan(ordered_plan)
    ssm = aws("ssm")
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, BROKER)
    edited = plan.producers.parameters[:60]  # someone else changed 60 of them since
    for name in edited:
        ssm.put_parameter(Name=name, Value="ssl://hotfix:61617", Type="String", Overwrite=True)
    back = _run(plan, ssm, {"drained": ["onPremFence"]})
    assert back["action"] == "producers-back"
    assert (back["restoredCount"], back["conflictsCount"], back["movedCount"]) == (60, 60, 0)
    assert len(back["restored"]) == len(back["conflicts"]) == NAMES_SHOWN
    # Restored in reverse order: the names shown are the last producers'.
    assert back["restored"] == list(reversed(plan.producers.parameters))[:NAMES_SHOWN]
    assert back["memo"]["conflicts"] == sorted(edited)
    assert all(_value(ssm, n) == plan.on_prem.url for n in plan.producers.parameters[60:])
    assert all(_value(ssm, n) == "ssl://hotfix:61617" for n in edited)

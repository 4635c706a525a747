"""The rollback runs the cutover backwards, one action a call, from where clients point now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mq_cutover.errors import AwsThrottled
from mq_cutover.parameters import NAMES_SHOWN, ClientStep, repoint_clients
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.rollback import Action, next_action, producers_moved, roll_back_step
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


# --- a retried or redriven call (the memo it was given, not the one the failed try built) ---

PRODUCER_HOSTS = ["i-0a1b2c3d4e5f60718", "i-0b1c2d3e4f5a60718"]


class _Ssm:
    """The SSM client, with SendCommand throttled (after botocore's retries) while `throttled`,
    and every GetParameters call's names recorded."""

    def __init__(self, ssm: Any) -> None:
        self.ssm = ssm
        self.throttled = False
        self.get_parameters_names: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ssm, name)

    def get_parameters(self, **kwargs: Any) -> Any:
        self.get_parameters_names.append(list(kwargs["Names"]))
        return self.ssm.get_parameters(**kwargs)

    def send_command(self, **kwargs: Any) -> Any:
        if self.throttled:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "SendCommand",
            )
        return self.ssm.send_command(**kwargs)

    def label_reads(self) -> int:
        return sum(1 for names in self.get_parameters_names if ":" in names[0])


def _widened_unordered(
    aws: Any, unordered_plan: dict[str, Any], producers_hook: bool = True
) -> tuple[MigrationPlan, _Ssm]:
    """Unordered, stopped after every producer moved and before consumers were narrowed: the
    first rollback call is the producers' restore."""
    if producers_hook:
        unordered_plan["producers"]["restartHook"] = {
            "commands": ["systemctl restart telemetry-producers"],
            "instanceIds": PRODUCER_HOSTS,
        }
    plan = parse_plan(unordered_plan)
    ssm = _Ssm(aws("ssm"))
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    return plan, ssm


def _commands(ssm: _Ssm, comment: str) -> list[str]:
    return [c["CommandId"] for c in ssm.list_commands()["Commands"] if c["Comment"] == comment]


def test_a_retry_after_the_producers_restore_failed_drains_amazon_mq_first(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """The first call restores every producer, then their restart is throttled: the call fails
    (AwsThrottled, retried by the state machine) and its memo is lost. The retry, given the
    memo the first try had (empty), must not take the producers for never moved: it sends their
    restart, then Amazon MQ is drained before any consumer goes back."""
    plan, ssm = _widened_unordered(aws, unordered_plan)
    started = datetime.now(UTC) - timedelta(minutes=5)  # the execution began before the moves
    ssm.throttled = True
    with pytest.raises(AwsThrottled):
        roll_back_step(plan, ssm, BROKER, {}, started_at=started)
    assert all(_value(ssm, n) == plan.on_prem.url for n in plan.producers.parameters)
    assert _commands(ssm, f"mq-cutover {plan.migration_id}: rollback producers") == []
    ssm.throttled = False
    retry = roll_back_step(plan, ssm, BROKER, {}, started_at=started)
    # The restore again: nothing left to restore, and the restart the first try never sent.
    assert retry["action"] == "producers-back" and retry["restored"] == []
    sent = _commands(ssm, f"mq-cutover {plan.migration_id}: rollback producers")
    assert retry["restartCommandIds"] == {"producers": sent[0]} and len(sent) == 1
    assert retry["memo"]["producersMoved"] and retry["memo"]["producersBack"]
    assert ssm.label_reads() == 1  # the first batch of labels showed it
    drain = roll_back_step(plan, ssm, BROKER, retry["memo"], started_at=started)
    assert (drain["action"], drain["side"]) == ("drain", "amazonMq")
    assert all(_value(ssm, n) != plan.on_prem.url for n in plan.consumers.parameters)
    back = roll_back_step(
        plan, ssm, BROKER, {**drain["memo"], "drained": ["amazonMq"]}, started_at=started
    )
    assert back["action"] == "consumers-back"
    assert all(_value(ssm, n) == plan.on_prem.url for n in plan.all_parameters)


def test_a_retry_after_a_lost_response_finds_the_restart_already_sent(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """The producers' restore ran to the end (restart sent) and its response was lost: the
    retry, with the old memo, sends no second restart; it waits for the first one."""
    plan, ssm = _widened_unordered(aws, unordered_plan)
    first = roll_back_step(plan, ssm, BROKER, {})
    assert first["action"] == "producers-back" and first["restartCommandIds"]
    retry = roll_back_step(plan, ssm, BROKER, {})  # first["memo"] was lost
    assert retry["action"] == "producers-back" and retry["restored"] == []
    assert retry["restartCommandIds"] == first["restartCommandIds"]
    assert len(_commands(ssm, f"mq-cutover {plan.migration_id}: rollback producers")) == 1
    assert (roll_back_step(plan, ssm, BROKER, retry["memo"])["side"]) == "amazonMq"


def test_without_a_producers_hook_the_retry_goes_straight_to_the_drain(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    plan, ssm = _widened_unordered(aws, unordered_plan, producers_hook=False)
    roll_back_step(plan, ssm, BROKER, {})  # restored; its result lost
    retry = roll_back_step(plan, ssm, BROKER, {})
    assert (retry["action"], retry["side"]) == ("drain", "amazonMq")
    assert retry["memo"]["producersMoved"] and retry["memo"]["producersChecked"]


def test_an_ordered_retry_after_the_producers_restore_sends_their_restart(
    aws: Any, plan: MigrationPlan
) -> None:
    """Ordered: the memo already knew producers moved (the fence call saw them), but the call
    that restored them failed before their restart: the retry restores again (nothing), sends
    it, and only then drains Amazon MQ."""
    ordered = parse_plan(
        {
            **plan.model_dump(by_alias=True, exclude_none=True),
            "producers": {
                "parameters": list(plan.producers.parameters),
                "restartHook": {"commands": ["systemctl restart p"], "instanceIds": PRODUCER_HOSTS},
            },
        }
    )
    ssm = _Ssm(aws("ssm"))
    repoint_clients(ordered, ssm, ClientStep.PRODUCERS, BROKER)
    repoint_clients(ordered, ssm, ClientStep.CONSUMERS, BROKER)
    fence = roll_back_step(ordered, ssm, BROKER, {})
    assert fence["purpose"] == "fence" and fence["memo"]["producersOut"]
    memo = {**fence["memo"], "drained": ["onPremFence"]}
    ssm.throttled = True
    with pytest.raises(AwsThrottled):
        roll_back_step(ordered, ssm, BROKER, memo)
    ssm.throttled = False
    retry = roll_back_step(ordered, ssm, BROKER, memo)
    assert retry["action"] == "producers-back" and retry["restored"] == []
    assert list(retry["restartCommandIds"]) == ["producers"]
    assert ssm.label_reads() == 0  # the memo said: no label read
    drain = roll_back_step(ordered, ssm, BROKER, retry["memo"])
    assert (drain["action"], drain["side"]) == ("drain", "amazonMq")


def test_the_labels_are_read_only_when_the_memo_cannot_say(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """Nothing moved but consumers are widened (a failure before the first producer): the
    labels are read once, every producer, ten a call, and not again by the next call; with a
    producer on Amazon MQ, or a memo that knows, none are read."""
    unordered_plan["producers"]["parameters"] = [f"/fleet/p-{i:02d}/url" for i in range(25)]
    plan = parse_plan(unordered_plan)
    ssm = _Ssm(aws("ssm"))
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    first = roll_back_step(plan, ssm, BROKER, {})
    assert first["action"] == "consumers-back"
    assert first["memo"]["producersChecked"] and not first["memo"]["producersMoved"]
    # Each label: 3 calls of at most 10 selectors (the cutover and the rollback label).
    assert [len(n) for n in ssm.get_parameters_names if ":" in n[0]] == [10, 10, 5] * 2
    assert {
        n.rsplit(":", 1)[1] for names in ssm.get_parameters_names for n in names if ":" in n
    } == {
        f"cutover-{plan.migration_id}",
        f"rollback-{plan.migration_id}",
    }
    reads = ssm.label_reads()
    assert roll_back_step(plan, ssm, BROKER, first["memo"])["finished"]
    assert ssm.label_reads() == reads
    # A producer on Amazon MQ: it says so itself.
    repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, index=24)
    assert roll_back_step(plan, ssm, BROKER, {})["action"] == "producers-back"
    assert ssm.label_reads() == reads


def test_a_producer_moved_by_an_earlier_attempt_is_drained_for_but_not_restarted(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """An earlier attempt moved the producers and rolled them back; this one failed after
    widening consumers. Their labels say they moved (Amazon MQ is drained before consumers come
    back, as a precaution), but not since this execution started: no restart is sent."""
    plan, ssm = _widened_unordered(aws, unordered_plan)
    first = roll_back_step(plan, ssm, BROKER, {})  # the earlier attempt's restore
    assert first["action"] == "producers-back"
    later = datetime.now(UTC) + timedelta(seconds=1)  # this execution started after it
    step = roll_back_step(plan, ssm, BROKER, {}, started_at=later)
    assert (step["action"], step["side"]) == ("drain", "amazonMq")
    assert step["memo"]["producersMoved"] and not step["memo"].get("producersOut")
    assert len(_commands(ssm, f"mq-cutover {plan.migration_id}: rollback producers")) == 1
    assert ssm.label_reads() == 2 * len(range(0, len(plan.producers.parameters), 10))


def test_a_forward_write_never_labelled_is_found_by_the_rollback_label(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """A producer written by the migration that died before labelling it, then restored (the
    restore labels its version `rollback-<id>`): the second label says it moved."""
    plan, ssm = _widened_unordered(aws, unordered_plan, producers_hook=False)
    name = plan.producers.parameters[0]
    own = f"cutover-{plan.migration_id}"
    for producer in plan.producers.parameters:
        versions = ssm.get_parameter_history(Name=producer)["Parameters"]
        labelled = [v["Version"] for v in versions if own in v.get("Labels", [])]
        ssm.unlabel_parameter_version(Name=producer, ParameterVersion=labelled[0], Labels=[own])
    roll_back_step(plan, ssm, BROKER, {})  # restored (rollback label); its result lost
    found = producers_moved(plan, ssm, None)
    assert (found.moved, found.this_run) == (True, True)
    assert _value(ssm, name) == plan.on_prem.url
    assert (roll_back_step(plan, ssm, BROKER, {})["side"]) == "amazonMq"


def test_a_retry_after_the_consumers_restore_failed_sends_their_restart(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    """The last action, consumers back, restores them and its restart is throttled: the retry
    (same memo) finds every consumer on-prem, but does not end there: it restores again
    (nothing) and sends the restart the failed try never sent."""
    plan, ssm = _widened_unordered(aws, unordered_plan, producers_hook=False)
    assert plan.consumers.restart_hook is not None
    back = roll_back_step(plan, ssm, BROKER, {})
    drain = roll_back_step(plan, ssm, BROKER, back["memo"])
    assert drain["side"] == "amazonMq" and drain["memo"]["consumersOut"]
    memo = {**drain["memo"], "drained": ["amazonMq"]}
    ssm.throttled = True
    with pytest.raises(AwsThrottled):
        roll_back_step(plan, ssm, BROKER, memo)
    assert all(_value(ssm, n) == plan.on_prem.url for n in plan.all_parameters)
    ssm.throttled = False
    retry = roll_back_step(plan, ssm, BROKER, memo)
    assert retry["action"] == "consumers-back" and retry["restored"] == []
    sent = _commands(ssm, f"mq-cutover {plan.migration_id}: rollback consumers")
    assert retry["restartCommandIds"] == {"consumers": sent[0]} and len(sent) == 1
    assert roll_back_step(plan, ssm, BROKER, retry["memo"])["finished"]


# --- RabbitMQ shovels: a removal whose response was lost (removing them leaves no trace) ---


class _OnPremShovels:
    """This migration's shovels on the on-prem broker, {queue: state}; `remove` answers as
    `shovel_steps.remove` does (how many it removed, how many had connected) and removes them."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = dict(states)
        self.calls = 0

    def remove(self) -> dict[str, Any]:
        self.calls += 1
        names = [f"mq-cutover.x.{queue}" for queue in sorted(self.states)]
        ran = sum(1 for state in self.states.values() if state != "starting")
        self.states.clear()
        return {"removed": names, "count": len(names), "ran": ran}


def _clients_on_prem(plan: MigrationPlan, ssm: Any) -> dict[str, Any]:
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    endpoint = "amqps://b-1-1.mq.us-east-1.amazonaws.com:5671"
    return {"clientUrl": endpoint, "endpoints": [endpoint], "engine": "RABBITMQ"}


@pytest.mark.parametrize(
    "recorded",
    [
        {"shovelsRan": True},  # Start Shovels succeeded, then Move Consumers First failed
        {"shovelsStarted": True},  # Start Shovels failed after its shovels connected
    ],
)
def test_a_removal_retried_after_its_response_was_lost_still_drains_amazon_mq(
    aws: Any, unordered_plan: dict[str, Any], recorded: dict[str, Any]
) -> None:
    """The first call removed the shovels (two had run) and its response was lost: the retry,
    with the memo the state machine had, finds none, and still sends consumers to Amazon MQ to
    empty it before they come back."""
    plan = _shovel_plan(unordered_plan)
    ssm = aws("ssm")
    broker = _clients_on_prem(plan, ssm)
    on_prem = _OnPremShovels({"invoices.created": "running", "invoices.paid": "running"})
    memo = {"drained": [], **recorded}
    lost = roll_back_step(plan, ssm, broker, memo, remove_shovels=on_prem.remove)
    assert lost["shovels"]["ran"] == 2 and on_prem.states == {}
    retried = roll_back_step(plan, ssm, broker, memo, remove_shovels=on_prem.remove)
    assert retried["action"] == "remove-shovels" and on_prem.calls == 2
    assert (retried["shovels"]["count"], retried["shovels"]["ran"]) == (0, 0)
    assert retried["memo"]["shovelled"] and retried["memo"]["producersMoved"]
    following = roll_back_step(plan, ssm, broker, retried["memo"], remove_shovels=on_prem.remove)
    assert following["action"] == "consumers-to-amazon-mq"
    assert following["movedCount"] == len(plan.consumers.parameters)
    then = roll_back_step(plan, ssm, broker, following["memo"], remove_shovels=on_prem.remove)
    assert (then["action"], then["side"]) == ("drain", "amazonMq") and on_prem.calls == 2


@pytest.mark.parametrize(
    ("recorded", "states", "shovelled"),
    [
        # Start Shovels was never entered (a failure before it), or refused before defining
        # any (the state machine records nothing then): none can have run.
        ({}, {}, False),
        # It failed with shovels that never connected (found, all `starting`): none ran.
        ({"shovelsStarted": True}, {"invoices.created": "starting"}, False),
        # It failed, one had connected.
        ({"shovelsStarted": True}, {"invoices.created": "running"}, True),
        # It failed and none is left to look at: a lost removal or none defined, cannot be
        # told apart: taken to have run (consumers go to an empty Amazon MQ at worst).
        ({"shovelsStarted": True}, {}, True),
        # It succeeded (every shovel ran), whatever the removal finds.
        ({"shovelsRan": True}, {}, True),
        ({"shovelsRan": True}, {"invoices.created": "starting"}, True),
    ],
)
def test_whether_the_shovels_may_have_moved_messages(
    aws: Any,
    unordered_plan: dict[str, Any],
    recorded: dict[str, Any],
    states: dict[str, str],
    shovelled: bool,
) -> None:
    plan = _shovel_plan(unordered_plan)
    ssm = aws("ssm")
    broker = _clients_on_prem(plan, ssm)
    on_prem = _OnPremShovels(states)
    removed = roll_back_step(
        plan, ssm, broker, {"drained": [], **recorded}, remove_shovels=on_prem.remove
    )
    assert bool(removed["memo"].get("shovelled")) is shovelled
    assert bool(removed["memo"]["producersMoved"]) is shovelled
    after = roll_back_step(plan, ssm, broker, removed["memo"], remove_shovels=on_prem.remove)
    assert after["action"] == ("consumers-to-amazon-mq" if shovelled else "done")

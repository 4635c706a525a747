"""Reversible, idempotent parameter changes and a rollback that respects other people's edits."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.errors import ParameterConflict
from mq_cutover.parameters import (
    NAMES_SHOWN,
    ClientStep,
    repoint_clients,
    rollback_parameters,
    set_parameter,
    summarized,
    target_value,
)
from mq_cutover.plan import parse_plan

ON_PREM = "ssl://onprem-mq.example.internal:61617"
BROKER = {"clientUrl": "ssl://amq-1:61617", "endpoints": ["ssl://amq-1:61617"]}


@pytest.fixture
def ssm(aws: Any, ordered_plan: dict[str, Any]) -> Any:
    client = aws("ssm")
    plan = parse_plan(ordered_plan)
    for name in plan.all_parameters:
        client.put_parameter(Name=name, Value=ON_PREM, Type="String")
    return client


def _labels(ssm: Any, name: str) -> dict[int, list[str]]:
    history = ssm.get_parameter_history(Name=name)["Parameters"]
    return {h["Version"]: h.get("Labels", []) for h in history}


def test_first_change_labels_original_and_new_version(ssm: Any) -> None:
    name = "/mq-cutover/orders/checkout/broker-url"
    result = set_parameter(ssm, name, "ssl://amq-1:61617", "m1")
    assert result == {"name": name, "changed": True, "fromVersion": 1, "version": 2}
    assert _labels(ssm, name) == {1: ["pre-m1"], 2: ["cutover-m1"]}
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "ssl://amq-1:61617"


def test_second_identical_call_changes_nothing(ssm: Any) -> None:
    name = "/mq-cutover/orders/checkout/broker-url"
    set_parameter(ssm, name, "ssl://amq-1:61617", "m1")
    again = set_parameter(ssm, name, "ssl://amq-1:61617", "m1")
    written = again.pop("writtenAt")  # by this migration: its clients' restart is looked up
    assert again == {"name": name, "changed": False, "version": 2}
    assert written == ssm.get_parameter(Name=name)["Parameter"]["LastModifiedDate"]
    assert len(ssm.get_parameter_history(Name=name)["Parameters"]) == 2


def test_later_change_moves_own_label_and_keeps_pre(ssm: Any) -> None:
    name = "/mq-cutover/orders/fulfilment/broker-url"
    set_parameter(ssm, name, "failover:(x,y)?randomize=true", "m1")
    set_parameter(ssm, name, "failover:(y)", "m1")
    assert _labels(ssm, name) == {1: ["pre-m1"], 2: [], 3: ["cutover-m1"]}


def test_someone_elses_change_mid_migration_is_a_conflict(ssm: Any) -> None:
    name = "/mq-cutover/orders/fulfilment/broker-url"
    set_parameter(ssm, name, "failover:(x,y)?randomize=true", "m1")
    ssm.put_parameter(Name=name, Value="ssl://hand-edited:61617", Type="String", Overwrite=True)
    with pytest.raises(ParameterConflict, match="changed by someone else"):
        set_parameter(ssm, name, "failover:(y)", "m1")
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "ssl://hand-edited:61617"


def test_repoint_one_producer_only(ssm: Any, ordered_plan: dict[str, Any]) -> None:
    plan = parse_plan(ordered_plan)
    only = plan.producers.parameters[1]
    result = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, only=only)
    assert result["changed"] == [only]
    first = plan.producers.parameters[0]
    assert ssm.get_parameter(Name=first)["Parameter"]["Value"] == ON_PREM
    with pytest.raises(ParameterConflict, match="not one of the plan's producers"):
        repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, only=plan.consumers.parameters[0])


def test_widen_places_consumers_alternately_on_each_broker(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    assert len(plan.consumers.parameters) >= 2
    repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    for index, name in enumerate(plan.consumers.parameters):
        members = [ON_PREM, "ssl://amq-1:61617"]
        if index % 2:
            members.reverse()
        assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == (
            f"failover:({','.join(members)})?randomize=false"
        )
    # Done one at a time (a resumed call), the same consumer gets the same place.
    name = plan.consumers.parameters[1]
    again = repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER, only=name)
    assert again["unchanged"] == [name]


def test_rollback_restores_everything_and_is_idempotent(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    repoint_clients(plan, ssm, ClientStep.CONSUMERS, BROKER)
    report = rollback_parameters(plan, ssm, BROKER)
    assert report["restored"] == [
        *reversed(plan.producers.parameters),
        *reversed(plan.consumers.parameters),
    ]
    assert report["conflicts"] == []
    for name in plan.all_parameters:
        assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == ON_PREM
        assert _labels(ssm, name)[3] == ["rollback-orders-2026-12-01"]
    again = rollback_parameters(plan, ssm, BROKER)
    assert again["restored"] == [] and sorted(again["untouched"]) == sorted(plan.all_parameters)


def test_rollback_leaves_a_hand_edited_parameter_alone(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    edited = plan.producers.parameters[0]
    ssm.put_parameter(Name=edited, Value="ssl://hotfix:61617", Type="String", Overwrite=True)
    report = rollback_parameters(plan, ssm, BROKER)  # as the deployed function calls it
    assert [c["name"] for c in report["conflicts"]] == [edited]
    assert ssm.get_parameter(Name=edited)["Parameter"]["Value"] == "ssl://hotfix:61617"
    other = plan.producers.parameters[1]
    assert report["restored"] == [other]
    assert ssm.get_parameter(Name=other)["Parameter"]["Value"] == ON_PREM


def test_restart_hook_sends_a_command_only_when_something_changed(
    ssm: Any, unordered_plan: dict[str, Any], aws: Any
) -> None:
    plan = parse_plan(unordered_plan)
    for name in plan.all_parameters:
        aws("ssm").put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    first = repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    assert first["restartCommandId"]
    command = ssm.list_commands(CommandId=first["restartCommandId"])["Commands"][0]
    assert command["Parameters"]["commands"] == ["systemctl restart telemetry-consumers"]
    # Not delivered by the hook's timeout: never run; still running then: stopped. No client
    # restarts after the workflow stopped waiting for it.
    assert command["TimeoutSeconds"] == 300
    assert command["Parameters"]["executionTimeout"] == ["300"]
    # A retry (the first response was lost) sends no second command: it returns the one the
    # first try sent, so the workflow waits for it.
    second = repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    assert second["changed"] == [] and second["restartCommandId"] == first["restartCommandId"]
    assert len(ssm.list_commands()["Commands"]) == 1
    # A group none of whose URLs this migration wrote restarts nothing.
    assert repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)["restartCommandId"] is None


def test_a_crash_before_the_restart_hook_was_sent_sends_it_on_retry(
    ssm: Any, unordered_plan: dict[str, Any], aws: Any
) -> None:
    plan = parse_plan(unordered_plan)
    for name in plan.all_parameters:
        aws("ssm").put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    for index, name in enumerate(plan.consumers.parameters):  # written, labelled, then died
        set_parameter(
            ssm,
            name,
            target_value(ClientStep.WIDEN_CONSUMERS, plan, BROKER, index),
            plan.migration_id,
        )
    assert ssm.list_commands()["Commands"] == []
    retried = repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    assert retried["changed"] == [] and retried["restartCommandId"]
    (command,) = ssm.list_commands()["Commands"]
    assert command["CommandId"] == retried["restartCommandId"]


def test_a_crash_between_put_and_label_is_recovered(ssm: Any, ordered_plan: dict[str, Any]) -> None:
    """The Lambda died after put_parameter, before labelling: the retry and the rollback must
    still know that version is this migration's."""
    plan = parse_plan(ordered_plan)
    name = plan.producers.parameters[0]
    ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["pre-orders-2026-12-01"])
    ssm.put_parameter(Name=name, Value=BROKER["clientUrl"], Type="String", Overwrite=True)
    retried = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    assert name in retried["unchanged"]
    assert _labels(ssm, name)[2] == ["cutover-orders-2026-12-01"]
    assert name in rollback_parameters(plan, ssm, BROKER)["restored"]
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == ON_PREM


def test_rollback_of_an_unlabelled_write_needs_to_know_the_urls(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    name = plan.producers.parameters[0]
    ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["pre-orders-2026-12-01"])
    ssm.put_parameter(Name=name, Value=BROKER["clientUrl"], Type="String", Overwrite=True)
    # Without the broker's URLs the unlabelled version cannot be told from someone else's.
    report = rollback_parameters(plan, ssm, None)
    assert [c["name"] for c in report["conflicts"]] == [name]
    assert rollback_parameters(plan, ssm, BROKER)["restored"] == [name]


def test_rollback_restarts_the_clients_it_restored(
    aws: Any, unordered_plan: dict[str, Any]
) -> None:
    ssm = aws("ssm")
    plan = parse_plan(unordered_plan)
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value=plan.on_prem.url, Type="String")
    repoint_clients(plan, ssm, ClientStep.WIDEN_CONSUMERS, BROKER)
    report = rollback_parameters(plan, ssm, BROKER)
    assert sorted(report["restored"]) == sorted(plan.consumers.parameters)
    command_id = report["restartCommandIds"]["consumers"]
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert command["Comment"] == "mq-cutover telemetry-2026-12-01: rollback consumers"
    assert "producers" not in report["restartCommandIds"]  # none restored: none restarted
    # Retried (its response lost): the restart it sent is the one to wait for; none is sent again.
    again = rollback_parameters(plan, ssm, BROKER)
    assert again["restored"] == [] and again["restartCommandIds"] == {"consumers": command_id}
    comments = [c["Comment"] for c in ssm.list_commands()["Commands"]]
    assert comments.count("mq-cutover telemetry-2026-12-01: rollback consumers") == 1


def test_securestring_keeps_its_kms_key_and_tier(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ssm = aws("ssm")
    key = aws("kms").create_key()["KeyMetadata"]["KeyId"]
    name = "/mq-cutover/orders/checkout/broker-url"
    ssm.put_parameter(Name=name, Value=ON_PREM, Type="SecureString", KeyId=key, Tier="Advanced")
    set_parameter(ssm, name, "ssl://amq-1:61617", "m1")
    (described,) = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
        "Parameters"
    ]
    assert described["Type"] == "SecureString" and described["KeyId"] == key
    assert described["Tier"] == "Advanced"


def test_a_new_attempt_after_a_rollback_starts_from_the_original(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    rollback_parameters(plan, ssm, BROKER)
    retried = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)
    assert retried["changed"] == plan.producers.parameters
    name = plan.producers.parameters[0]
    assert _labels(ssm, name) == {
        1: [],
        2: [],
        3: ["rollback-orders-2026-12-01", "pre-orders-2026-12-01"],
        4: ["cutover-orders-2026-12-01"],
    }
    assert rollback_parameters(plan, ssm, BROKER)["restored"] == [
        *reversed(plan.producers.parameters)
    ]
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == ON_PREM


def test_a_short_budget_moves_on_from_where_the_last_call_stopped(
    ssm: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(ordered_plan)
    clock = iter([60_000, 10_000])  # time left before each parameter after the first
    first = repoint_clients(
        plan, ssm, ClientStep.CONSUMERS, BROKER, time_left_ms=lambda: next(clock)
    )
    assert first["changed"] == plan.consumers.parameters[:2] and first["done"]
    stopped = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, time_left_ms=lambda: 1_000)
    assert stopped == {**stopped, "next": 1, "done": False, "remaining": 1}
    rest = repoint_clients(
        plan, ssm, ClientStep.PRODUCERS, BROKER, time_left_ms=lambda: 1_000, start=stopped["next"]
    )
    assert rest["changed"] == plan.producers.parameters[1:] and rest["done"]
    back = rollback_parameters(plan, ssm, BROKER, time_left_ms=lambda: 1_000)
    assert back["next"] == 1 and not back["done"]
    while not back["done"]:
        back = rollback_parameters(
            plan, ssm, BROKER, time_left_ms=lambda: 1_000, start=back["next"]
        )
    assert all(
        ssm.get_parameter(Name=n)["Parameter"]["Value"] == ON_PREM for n in plan.all_parameters
    )


def test_a_call_over_many_parameters_is_summarized_for_the_state(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """The state machine gets the first NAMES_SHOWN names of each list and every count; the
    names handled are the group's parameters [start:next]."""
    ordered_plan["producers"]["parameters"] = [f"/fleet/p-{i:03d}/url" for i in range(130)]
    plan = parse_plan(ordered_plan)
    ssm = aws("ssm")
    for name in plan.producers.parameters:
        ssm.put_parameter(Name=name, Value=ON_PREM, Type="String")
    repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, only=plan.producers.parameters[7])
    calls = iter([10**6] * 99 + [0] * 10**3)  # time for 100 parameters, then none
    first = repoint_clients(
        plan, ssm, ClientStep.PRODUCERS, BROKER, time_left_ms=lambda: next(calls)
    )
    assert (first["start"], first["next"], first["done"]) == (0, 100, False)
    short = summarized(first, ("changed", "unchanged", "conflicts"))
    assert (short["changedCount"], short["unchangedCount"], short["conflictsCount"]) == (99, 1, 0)
    assert short["changed"] == [
        n for n in plan.producers.parameters[:51] if n != plan.producers.parameters[7]
    ]
    assert short["unchanged"] == [plan.producers.parameters[7]]
    assert len(short["changed"]) == NAMES_SHOWN and first["changed"] != short["changed"]
    rest = repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER, start=first["next"])
    assert (rest["start"], rest["next"], rest["done"], len(rest["changed"])) == (100, 130, True, 30)


def test_a_group_is_described_fifty_names_a_call_and_keeps_each_key_and_tier(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """DescribeParameters (each parameter's tier and KMS key) asks for 50 names a call, not one
    call a parameter, and each parameter still keeps its own key and tier, forward and back."""
    ssm = aws("ssm")
    keys = [aws("kms").create_key()["KeyMetadata"]["KeyId"] for _ in range(2)]
    names = [f"/fleet/p-{i:03d}/url" for i in range(120)]
    ordered_plan["producers"]["parameters"] = names
    plan = parse_plan(ordered_plan)
    for number, name in enumerate(names):
        secure = number % 3 == 0
        ssm.put_parameter(
            Name=name,
            Value=ON_PREM,
            Type="SecureString" if secure else "String",
            **({"KeyId": keys[number % 2]} if secure else {}),
            Tier="Advanced" if number % 5 == 0 else "Standard",
        )
    filters: list[list[str]] = []
    original = ssm.describe_parameters

    def describe(**kwargs: Any) -> Any:
        filters.append(kwargs["ParameterFilters"][0]["Values"])
        return original(**kwargs)

    ssm.describe_parameters = describe
    assert repoint_clients(plan, ssm, ClientStep.PRODUCERS, BROKER)["done"]
    assert sorted({tuple(f) for f in filters}) == [
        tuple(names[0:50]),
        tuple(names[50:100]),
        tuple(names[100:]),
    ]
    filters.clear()
    assert len(rollback_parameters(plan, ssm, BROKER)["restored"]) == 120
    assert {tuple(f) for f in filters} == {
        tuple(reversed(names))[start : start + 50] for start in (0, 50, 100)
    }
    found: dict[str, Any] = {}
    for start in range(0, 120, 50):
        page = original(
            ParameterFilters=[{"Key": "Name", "Values": names[start : start + 50]}],
            MaxResults=50,
        )
        while True:
            found.update({p["Name"]: p for p in page["Parameters"]})
            if not page.get("NextToken"):
                break
            page = original(
                ParameterFilters=[{"Key": "Name", "Values": names[start : start + 50]}],
                MaxResults=50,
                NextToken=page["NextToken"],
            )
    for number, name in enumerate(names):
        described = found[name]
        assert described["Tier"] == ("Advanced" if number % 5 == 0 else "Standard"), name
        if number % 3 == 0:
            assert described["Type"] == "SecureString" and described["KeyId"] == keys[number % 2]
        assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == ON_PREM

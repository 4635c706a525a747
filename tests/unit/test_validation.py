"""Account checks on a plan: read-only, and every problem names its field."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.errors import PlanInvalid
from mq_cutover.validation import validate_plan


@pytest.fixture
def ssm(aws: Any, ordered_plan: dict[str, Any]) -> Any:
    client = aws("ssm")
    for group in ("producers", "consumers"):
        for name in ordered_plan[group]["parameters"]:
            client.put_parameter(Name=name, Value="ssl://onprem:61617", Type="String")
    return client


def _validate(
    plan: dict[str, Any], ssm: Any, aws: Any, name: str | None = "orders-2026-12-01"
) -> Any:
    return validate_plan(
        plan, execution_name=name, parameter_prefix="/mq-cutover/", ssm=ssm, mq=aws("mq")
    )


def test_valid_plan_passes(ssm: Any, aws: Any, ordered_plan: dict[str, Any]) -> None:
    assert _validate(ordered_plan, ssm, aws).migration_id == "orders-2026-12-01"


def test_execution_name_must_be_the_migration_id(
    ssm: Any, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    with pytest.raises(
        PlanInvalid, match="the execution name 'console-run-1' must be the migration id"
    ):
        _validate(ordered_plan, ssm, aws, name="console-run-1")


def test_parameter_outside_the_stack_prefix(
    ssm: Any, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["consumers"]["parameters"][0] = "/other-team/secret-url"
    with pytest.raises(PlanInvalid) as caught:
        _validate(ordered_plan, ssm, aws)
    assert caught.value.problems == [
        "consumers.parameters[0]: /other-team/secret-url is outside /mq-cutover/, "
        "the only path this stack may change"
    ]


def test_missing_parameter_and_missing_broker(
    ssm: Any, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ordered_plan["producers"]["parameters"].append("/mq-cutover/orders/ghost/broker-url")
    del ordered_plan["target"]["create"]
    ordered_plan["target"]["adoptBrokerId"] = "b-0000"
    with pytest.raises(PlanInvalid) as caught:
        _validate(ordered_plan, ssm, aws)
    assert caught.value.problems == [
        "producers.parameters[2]: /mq-cutover/orders/ghost/broker-url does not exist",
        "target.adoptBrokerId: broker b-0000 not found",
    ]
    # Read-only: nothing was created or changed.
    assert aws("mq").list_brokers()["BrokerSummaries"] == []
    history = ssm.get_parameter_history(Name=ordered_plan["producers"]["parameters"][0])[
        "Parameters"
    ]
    assert len(history) == 1


def test_a_later_attempt_may_carry_a_suffix(
    ssm: Any, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    assert _validate(ordered_plan, ssm, aws, name="orders-2026-12-01--2").migration_id
    with pytest.raises(PlanInvalid):
        _validate(ordered_plan, ssm, aws, name="orders-2026-12-01-2")

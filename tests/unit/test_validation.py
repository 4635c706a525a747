"""Validate Plan = the preflight's checks, raised: every failed check is one PlanInvalid problem
naming its field, before any change (the account is seeded as in tests/unit/test_preflight.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import MigrationPlan
from mq_cutover.preflight import Clients
from mq_cutover.validation import validate_plan
from mq_cutover_cli.harness import STACK_NAME
from mq_cutover_cli.preflight_cmd import stack_settings
from tests.unit.test_preflight import Account, account


def _validate(acct: Account, plan: Any, name: str | None = "orders-2026-12-01") -> MigrationPlan:
    return validate_plan(
        plan,
        execution_name=name,
        stack=stack_settings(acct.client("cloudformation"), STACK_NAME),
        clients=Clients.from_factory(acct.client),
        now=acct.emulator.clock.now(),
    )


def test_valid_plan_passes_and_a_later_attempt_may_carry_a_suffix() -> None:
    with account() as acct:
        assert _validate(acct, acct.plan).migration_id == "orders-2026-12-01"
        assert _validate(acct, acct.plan, "orders-2026-12-01--2").migration_id
        with pytest.raises(PlanInvalid) as caught:
            _validate(acct, acct.plan, "orders-2026-12-01-2")
    assert caught.value.problems == [
        "migrationId: the execution name 'orders-2026-12-01-2' must be the migration id "
        "'orders-2026-12-01' (or 'orders-2026-12-01--<attempt>' for a later attempt), so that "
        "runs of one migration can be told and kept apart"
    ]


def test_every_failed_check_is_named_and_nothing_changes() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["producers"]["parameters"].append("/mq-cutover/orders/ghost/broker-url")
        plan["consumers"]["parameters"][0] = "/other-team/secret-url"
        del plan["target"]["create"]
        plan["target"]["adoptBrokerId"] = "b-0000"
        before = acct.state()
        with pytest.raises(PlanInvalid) as caught:
            _validate(acct, plan)
        assert acct.state() == before
    assert caught.value.problems == [
        "consumers.parameters[0]: /other-team/secret-url is outside /mq-cutover/, "
        "the only path this stack may change",
        "producers.parameters[2]: /mq-cutover/orders/ghost/broker-url does not exist",
        "target.adoptBrokerId: broker b-0000 not found",
    ]


def test_a_plan_that_does_not_parse_names_its_fields() -> None:
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        del plan["target"]["create"]["engine"]
        with pytest.raises(PlanInvalid) as caught:
            _validate(acct, plan)
    assert caught.value.problems == ["target.create.engine: Field required"]


def test_more_queues_than_amazon_mq_metrics_cover_are_refused_before_any_check() -> None:
    """1,001 listed queues read from AWS/AmazonMQ (ActiveMQ: the first 1,000 destinations)
    are refused by the plan's own rules, naming target.metrics; the account is not touched."""
    with account() as acct:
        plan = copy.deepcopy(acct.plan)
        plan["onPrem"]["queues"] = [f"app.queue-{i:04d}" for i in range(1001)]
        before = acct.state()
        with pytest.raises(PlanInvalid) as caught:
            _validate(acct, plan)
        assert acct.state() == before
        (problem,) = caught.value.problems
        assert problem.startswith("(plan): target.metrics: the plan lists 1001 queues")
        assert "only the first 1000 destinations" in problem
        # Read from a bridge's namespace instead, the plan goes on to the account's checks.
        plan["target"]["metrics"] = {"namespace": "MqCutover/AmazonMq"}
        with pytest.raises(PlanInvalid) as caught:
            _validate(acct, plan)
    # The account's on-prem bridge publishes only the sample plan's queues: the preflight names
    # the 1,001 listed ones it has no figures for, and nothing about target.metrics.
    assert [problem.split(":")[0] for problem in caught.value.problems] == ["onPrem.queues"]

"""Validate a plan against the plan schema and against the account, with read-only calls only.

Nothing here changes anything: a plan that fails never creates a broker or touches a parameter.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import MigrationPlan, parse_plan

ATTEMPT_SEPARATOR = "--"  # execution "orders-1--2" is attempt 2 of migration "orders-1"


def _missing_parameters(ssm: Any, names: list[str]) -> list[str]:
    missing: list[str] = []
    for offset in range(0, len(names), 10):  # GetParameters takes 10 names a call
        try:
            response = ssm.get_parameters(Names=names[offset : offset + 10])
        except ClientError as exc:
            raise_if_throttled(exc)
            raise
        missing.extend(response.get("InvalidParameters", []))
    return missing


def validate_plan(
    document: Any, *, execution_name: str | None, parameter_prefix: str, ssm: Any, mq: Any
) -> MigrationPlan:
    plan = parse_plan(document)
    problems: list[str] = []
    if execution_name is not None and not (
        execution_name == plan.migration_id
        or execution_name.startswith(f"{plan.migration_id}{ATTEMPT_SEPARATOR}")
    ):
        problems.append(
            f"migrationId: the execution name '{execution_name}' must be the migration id "
            f"'{plan.migration_id}' (or '{plan.migration_id}{ATTEMPT_SEPARATOR}<attempt>' for "
            "a later attempt), so that runs of one migration can be told and kept apart"
        )
    for group in ("producers", "consumers"):
        for index, name in enumerate(getattr(plan, group).parameters):
            if not name.startswith(parameter_prefix):
                problems.append(
                    f"{group}.parameters[{index}]: {name} is outside {parameter_prefix}, "
                    "the only path this stack may change"
                )
    if problems:
        raise PlanInvalid(problems)
    missing = set(_missing_parameters(ssm, plan.all_parameters))
    for group in ("producers", "consumers"):
        for index, name in enumerate(getattr(plan, group).parameters):
            if name in missing:
                problems.append(f"{group}.parameters[{index}]: {name} does not exist")
    if plan.target.adopt_broker_id:
        try:
            mq.describe_broker(BrokerId=plan.target.adopt_broker_id)
        except ClientError as exc:
            raise_if_throttled(exc)
            if exc.response["Error"]["Code"] not in ("NotFoundException", "NotFound"):
                raise
            problems.append(f"target.adoptBrokerId: broker {plan.target.adopt_broker_id} not found")
    if problems:
        raise PlanInvalid(problems)
    return plan

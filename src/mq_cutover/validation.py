"""Validate a plan against the plan schema and against the account, with read-only calls only.

Nothing here changes anything: a plan that fails never creates a broker or touches a parameter.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.approvers import Approver
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


def approval_problems(
    plan: MigrationPlan,
    *,
    required_gates: tuple[str, ...],
    approvers: dict[str, Approver],
    unsafe: list[str],
    minimum_quorum: int = 1,
) -> list[str]:
    """Gates the stack requires, and enough registered approvers who can be told apart."""
    problems = [
        f"approvals.gates: the stack requires the gate '{gate}' (stack parameter RequiredGates); "
        "a plan cannot switch it off"
        for gate in required_gates
        if gate not in plan.approvals.gates
    ]
    if not approvers:
        problems.append(
            "approvals: the stack has no approver who can vote (none registered with a "
            "confirmed subscription or an IAM principal: mq-cutover approvers add)"
        )
    if approvers and minimum_quorum > len(approvers):
        problems.append(
            f"approvals: the stack requires {minimum_quorum} different approvers at every gate "
            f"(stack parameter MinimumQuorum); it has {len(approvers)} who can vote "
            f"({', '.join(sorted(approvers))})"
        )
    for gate, quorum in sorted(plan.approvals.quorum.items()):
        # (a quorum at or below the stack's minimum is covered by the message above)
        if approvers and quorum > len(approvers) and quorum > minimum_quorum:
            problems.append(
                f"approvals.quorum.{gate}: needs {quorum} different approvers; the stack has "
                f"{len(approvers)} who can vote ({', '.join(sorted(approvers))})"
            )
    problems.extend(f"approvals: {problem}" for problem in unsafe)
    return problems


def validate_plan(
    document: Any,
    *,
    execution_name: str | None,
    parameter_prefix: str,
    ssm: Any,
    mq: Any,
    required_gates: tuple[str, ...] = (),
    minimum_quorum: int = 1,
    approvers: dict[str, Approver] | None = None,
    unsafe_approvals: list[str] | None = None,
) -> MigrationPlan:
    """The plan, checked. `approvers`/`unsafe_approvals`: the stack's registry and what is wrong
    with its subscriptions (None: not checked, for callers without a stack)."""
    plan = parse_plan(document)
    problems: list[str] = []
    if approvers is not None:
        problems.extend(
            approval_problems(
                plan,
                required_gates=required_gates,
                minimum_quorum=minimum_quorum,
                approvers=approvers,
                unsafe=unsafe_approvals or [],
            )
        )
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
